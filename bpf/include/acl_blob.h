/* AclFirewall: layout of the compiled rule set ("blob") and of the records the XDP
 * program shares with user space. Twin of lib/modules/acl/layout.ts: keep the two in sync.
 *
 * A blob is one array-map value of ACL_BLOB_BYTES, read as 32-bit words (host order):
 *   header  ACL_HDR_WORDS words (ACL_H_* offsets)
 *   nodes   internal: [ctl, child_0 .. child_{2^bits-1}]   ctl = dim | shift << 8 | bits << 16
 *           leaf:     [ACL_LEAF | count, rec_0 .. rec_{count-1}]  (word offsets, by priority)
 *   records [prio, meta, tag, lo_0, hi_0, .., lo_{D-1}, hi_{D-1}]  meta = slot | action << 24
 *   source  the rule set as JSON for a process that adopts a pinned firewall
 */
#ifndef ACL_BLOB_H
#define ACL_BLOB_H

#include <linux/types.h>

#define ACL_BLOB_MAGIC 0x41434c31u /* 'ACL1' */
#define ACL_HDR_WORDS 64
/* The largest rule set a program variant addresses (bpf/acl_xl.bpf.c). */
#define ACL_MAX_BLOB_BYTES (64u << 20)

#define ACL_H_MAGIC 0
#define ACL_H_VERSION 1
#define ACL_H_USED 2
#define ACL_H_GEN 3
#define ACL_H_FLAGS 4
#define ACL_H_INTERVAL_MS 5
#define ACL_H_V4_TREES 6
#define ACL_H_V6_TREES 7
#define ACL_H_V4_ROOTS 8 /* ACL_MAX_TREES x (root, best prio) */
#define ACL_H_V6_ROOTS 16

#define ACL_FLAG_DEFAULT_DENY 1u
#define ACL_FLAG_EVENTS_DEFAULT 2u
#define ACL_FLAG_NO_EVENTS 4u /* report nothing (counters only) */
#define ACL_FLAG_NO_CACHE 8u  /* classify every packet by the trees (no verdict cache) */

#define ACL_MAX_TREES 4
#define ACL_LEAF 0x80000000u
#define ACL_LEAF_MAX 32
#define ACL_MAX_DEPTH 24
#define ACL_REC_HDR 3

#define ACL_ACT_ALLOW 0
#define ACL_ACT_DENY 1
#define ACL_ACT_LOG 2
#define ACL_SLOT_MASK 0xffffffu
#define ACL_SLOT_DEFAULT 0xffffffu /* events of the default action */

/* Key words per family: the dimensions the tree cuts and records bound. */
#define ACL_V4_DIMS 7  /* src, dst, sport, dport, proto, ifindex, l4 */
#define ACL_V6_DIMS 13 /* src[4], dst[4], sport, dport, proto, ifindex, l4 */
#define ACL_KEY_WORDS 16
/* The verdict cache keys on the first ACL_VKEY_WORDS key words: the dimensions of either
 * family (never cut beyond word 12) and, in word ACL_VKEY_FAMILY, the family. */
#define ACL_VKEY_WORDS 14
#define ACL_VKEY_FAMILY 13
#define ACL_VCACHE_ENTRIES 256
/* proto value of a packet whose upper-layer protocol could not be found (IPv6
 * extension headers truncated or beyond the walk bound): matches only "any". */
#define ACL_PROTO_UNKNOWN 256

/* Per-CPU misc counters (acl_stats), in the order of ACL_STATS in layout.ts. */
enum acl_stat {
	ACL_STAT_DEFAULT_ALLOW, /* no rule matched, default allow */
	ACL_STAT_DEFAULT_DENY,  /* no rule matched, default deny */
	ACL_STAT_NON_IP,        /* not IPv4/IPv6 (ARP, ...): passed */
	ACL_STAT_UNPARSED,      /* L4 header missing/truncated or IPv6 ext walk failed: matched as no L4 */
	ACL_STAT_FRAGMENT,      /* non-first fragments: matched as no L4 */
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
	__u64 seen;     /* packets of this flow and rule (atomic add) */
	__u64 reported; /* `seen` at the last event */
};

/* Most CPUs whose cached counts a report adds (CPUs beyond it hand theirs over when
 * their cache entry changes flow). */
#define ACL_MAX_CPUS 256

/* Flows each CPU's rate-limiter memory holds (direct-mapped; a power of two). */
#define ACL_FLOW_MEM 256

#endif
