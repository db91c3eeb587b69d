/* AclFirewall: layout of the compiled rule set ("blob") and of the records the XDP
 * program shares with user space. This header is the one source of truth: the XDP program
 * (bpf/acl/) and the tree builder (addon/acl/) include it, and the build generates
 * lib/modules/acl/layout.gen.ts from it (scripts/gen-acl-layout.mjs: every ACL_X macro
 * becomes X, enum acl_stat becomes ACL_STATS). Change a value here, never there;
 * test/unit/acl-blob-contract.test.ts fails if the two disagree.
 *
 * A blob is one array-map value of ACL_BLOB_BYTES, read as 32-bit words (host order):
 *   header  ACL_HDR_WORDS words (ACL_H_* offsets)
 *   nodes   internal: [ctl, child_0 .. child_{2^bits-1}]   ctl = dim | shift << 8 | bits << 16
 *           leaf:     [ACL_LEAF | count, rec_0 .. rec_{count-1}]  (word offsets, by priority)
 *           A pointer (a child, a tree's root) is a node's or leaf's word offset, or
 *           ACL_PTR_EMPTY (a leaf of no record) or ACL_PTR_REC | the offset of a record (a
 *           leaf of that one record): the walk ends there without loading a leaf.
 *   records [prio, meta, tag, lo_0, hi_0, .., lo_{D-1}, hi_{D-1}]  meta = slot | action << 24
 *           (tag: changes when a slot gets a new rule, so the event rate limiter does not
 *           carry a flow's state over to another rule)
 *   source  the rule set as JSON (UTF-8) for a process that adopts a pinned firewall
 *
 * Macro values are integer expressions of literals (the generator evaluates + - * / << >>
 * | & and parentheses) or brace lists of them.
 */
#ifndef ACL_BLOB_H
#define ACL_BLOB_H

#include <linux/types.h>

/* scripts/gen-acl-layout.mjs reads one #define per line: not reformatted */
/* clang-format off */

#define ACL_BLOB_MAGIC 0x41434c31u /* 'ACL1' */
#define ACL_BLOB_VERSION 4 /* ACL_H_VERSION: user space refuses to adopt other versions */
#define ACL_HDR_WORDS 80
/* The largest rule set a program variant addresses (bpf/acl_xl.bpf.c). */
#define ACL_MAX_BLOB_BYTES (256u << 20)
/* The memory bound per record (one rule x source x destination combination of a family):
 * a family's trees get at most ACL_TREE_WORDS words per record plus ACL_TREE_BASE_WORDS,
 * whatever the rules' shape; what a tree cannot separate within its share goes to
 * further trees (at most ACL_MAX_TREES per family). A variant holds ACL_RULE_BYTES per
 * rule of its capacity (lib/modules/acl/options.ts): a rule without address lists makes
 * at most one IPv4 and one IPv6 record, (ACL_REC_HDR + 2 x dims + ACL_TREE_WORDS) words
 * each, 440 bytes together, and the rest is for its JSON source. */
#define ACL_TREE_WORDS 32
#define ACL_TREE_BASE_WORDS 2048
#define ACL_RULE_BYTES 1000

/* Header word offsets (lib/modules/acl/layout.ts writeBlobHeader writes them all). */
#define ACL_H_MAGIC 0
#define ACL_H_VERSION 1
#define ACL_H_USED 2        /* words in use */
#define ACL_H_GEN 3         /* rule-set generation */
#define ACL_H_FLAGS 4       /* ACL_FLAG_* */
#define ACL_H_INTERVAL_MS 5 /* event interval per flow */
#define ACL_H_V4_TREES 6    /* number of IPv4 trees */
#define ACL_H_V6_TREES 7
/* The overlay (incremental changes, lib/modules/acl/delta.ts): records added since the
 * compile, checked one by one after the trees. *_OVL_AT: word offset of a list of record
 * word offsets, *_OVL_N: its length (at most ACL_OVL_MAX). A removed rule's records are
 * made unmatchable in place (dimension 0: lo > hi). */
#define ACL_H_V4_OVL_AT 8
#define ACL_H_V4_OVL_N 9
#define ACL_H_V6_OVL_AT 10
#define ACL_H_V6_OVL_N 11
#define ACL_H_DELTA_OFF 12 /* byte offset of the overlay's JSON source (0: none) */
#define ACL_H_DELTA_LEN 13 /* its length in bytes */
#define ACL_H_SRC_OFF 24    /* word offset of the JSON source */
#define ACL_H_SRC_LEN 25    /* its length in bytes */
#define ACL_H_RULES 26      /* user rules */
#define ACL_H_RECORDS 27    /* records (rule x address combinations) */
#define ACL_H_CREATED_LO 28 /* Date.now() of the compile, low and high 32 bits */
#define ACL_H_CREATED_HI 29
/* ACL_MAX_TREES x (root, best prio, root ctl): the root node's ctl word (0 when the root is
 * ACL_PTR_EMPTY or ACL_PTR_REC) repeated here, so a walk reads it with the root instead
 * of after it (one load fewer in the chain of dependent loads every tree's walk is) */
#define ACL_ROOT_WORDS 3
#define ACL_H_V4_ROOTS 32
#define ACL_H_V6_ROOTS 56

#define ACL_FLAG_DEFAULT_DENY 1u
#define ACL_FLAG_EVENTS_DEFAULT 2u
#define ACL_FLAG_NO_EVENTS 4u /* report nothing (counters only) */
#define ACL_FLAG_NO_CACHE 8u  /* classify every packet by the trees (no verdict cache) */

#define ACL_MAX_TREES 8 /* per family: the partitions, then trees of what they spilled */
#define ACL_LEAF 0x80000000u
#define ACL_PTR_EMPTY 0 /* a pointer to an empty leaf (word 0 is the header's, never a node) */
#define ACL_PTR_REC 0x80000000u /* a pointer to one record: a leaf of it, inline */
#define ACL_LEAF_MAX 32  /* longest leaf the program scans */
#define ACL_MAX_DEPTH 24 /* deepest tree the program walks */
#define ACL_MAX_CUT_BITS 16 /* widest cut (bits of one field consumed by one node) */
#define ACL_REC_HDR 3
#define ACL_OVL_MAX 64 /* overlay records per family */

#define ACL_ACT_ALLOW 0
#define ACL_ACT_DENY 1
#define ACL_ACT_LOG 2
#define ACL_SLOT_MASK 0xffffffu    /* a record's meta: slot | action << 24 */
#define ACL_SLOT_DEFAULT 0xffffffu /* events of the default action */

/* Key words per family: the dimensions the tree cuts and records bound. */
#define ACL_V4_DIMS 7  /* src, dst, sport, dport, proto, ifindex, l4 */
#define ACL_V6_DIMS 13 /* src[4], dst[4], sport, dport, proto, ifindex, l4 */
/* Bits of each dimension, in key order. */
#define ACL_V4_WIDTHS { 32, 32, 16, 16, 9, 32, 1 }
#define ACL_V6_WIDTHS { 32, 32, 32, 32, 32, 32, 32, 32, 16, 16, 9, 32, 1 }
/* Index of the first of the trailing (sport, dport, proto, ifindex, l4) dimensions. */
#define ACL_V4_PORTS_AT 2
#define ACL_V6_PORTS_AT 8
#define ACL_KEY_WORDS 16
/* The verdict cache keys on the first ACL_VKEY_WORDS key words: the dimensions of either
 * family (never cut beyond word 12) and, in word ACL_VKEY_FAMILY, the family. */
#define ACL_VKEY_WORDS 14
#define ACL_VKEY_FAMILY 13
#define ACL_VCACHE_ENTRIES 256
/* proto value of a packet whose upper-layer protocol could not be found (IPv6
 * extension headers truncated or beyond the walk bound): matches only "any". */
#define ACL_PROTO_UNKNOWN 256
#define ACL_PROTO_MAX 511 /* the proto dimension is 9 bits wide */

/* Per-CPU misc counters (acl_stats). User space names them after the members:
 * ACL_STAT_NON_IP is `nonIp` in ACL_STATS (lib/modules/acl/layout.gen.ts). */
enum acl_stat {
	ACL_STAT_DEFAULT_ALLOW, /* no rule matched, default allow */
	ACL_STAT_DEFAULT_DENY,  /* no rule matched, default deny */
	ACL_STAT_NON_IP,        /* not IPv4/IPv6 (ARP, ...): passed */
	ACL_STAT_UNPARSED,      /* L4 header missing/truncated or IPv6 ext walk failed: matched as no L4 */
	ACL_STAT_FRAGMENTS,     /* non-first fragments: matched as no L4 */
	ACL_STAT_MALFORMED,     /* broken IPv4/IPv6 header: default action */
	ACL_STAT_NO_RULES,      /* no rule set installed: passed */
	ACL_STAT_CORRUPT,       /* tree walk did not reach a leaf (never expected) */
	ACL_STAT_EVENTS,        /* events written to the ring */
	ACL_STAT_SUPPRESSED,    /* events not written: same flow and rule within the interval */
	ACL_STAT_WALKS,         /* packets classified by walking the trees */
	ACL_STAT_CACHED,        /* packets classified by the verdict cache */
	ACL_STAT_MAX,
};

/* One policy decision, as written to the ring buffer (72 bytes). */
struct acl_event {
	__u64 ktime_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 gen;        /* rule-set generation that judged the packet */
	__u32 slot;       /* rule counter slot, ACL_SLOT_DEFAULT for the default action */
	__u32 suppressed; /* packets of this flow and rule not reported since the last event */
	__u32 ifindex;    /* ingress interface */
	__u32 pkt_len;    /* frame length */
	__u8 action;      /* ACL_ACT_* */
	__u8 family;      /* 4 or 6 */
	__u16 proto;      /* IP protocol, ACL_PROTO_UNKNOWN if not found */
	__u16 sport;      /* host order; ICMP type */
	__u16 dport;      /* host order; ICMP code */
	__u8 flags;       /* bit 0: L4 header present, bit 1: non-first fragment */
	__u8 _pad[3];
	__u8 src[16];     /* network order; IPv4 in the first 4 bytes */
	__u8 dst[16];
};

#define ACL_EV_L4 1
#define ACL_EV_FRAGMENT 2
/* bytes of one event record (user space decodes it: lib/modules/acl/events.ts) */
#define ACL_EVENT_SIZE 72
#ifdef __cplusplus
static_assert(sizeof(struct acl_event) == ACL_EVENT_SIZE, "struct acl_event is ACL_EVENT_SIZE bytes");
#else
_Static_assert(sizeof(struct acl_event) == ACL_EVENT_SIZE, "struct acl_event is ACL_EVENT_SIZE bytes");
#endif

/* Rate limiter: one event per (flow, rule) per interval. */
struct acl_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u16 proto;
	__u8 family;
	__u8 _pad;
	__u32 slot;
	__u32 tag; /* the rule's tag: a reused slot does not inherit old flows */
};

struct acl_flow_state {
	__u64 last_ns;  /* time of the last event */
	__u64 seen;     /* packets of this flow and rule counted here as suppressed: handed over by the CPUs,
	                 * suppressed at this table, or reporters whose event found the ring full (atomic add) */
	__u64 reported; /* suppressed packets (`seen` + the CPUs' held counts) at the last event */
};

/* Most CPUs whose cached counts a report adds (CPUs beyond it hand theirs over when
 * their cache entry changes flow). */
#define ACL_MAX_CPUS 256

/* Flows each CPU's rate-limiter memory holds (direct-mapped; a power of two). */
#define ACL_FLOW_MEM 256

/* clang-format on */

#endif
