// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): its maps, the per-CPU tables' entries, the
 * parsed packet, and the two accessors everything uses (a counter, a blob word). */
#ifndef ACL_MAPS_H
#define ACL_MAPS_H

#ifndef ACL_BLOB_BYTES
#error "define ACL_BLOB_BYTES (a power of two) before including acl/prog.h"
#endif

#include "bpfkit_helpers.h"
#include "bpfkit_ringbuf.h"
#include "acl_blob.h"
#include "bpfkit_swap.h"
#include "bpfkit_pipeline.h"

/* Possible CPUs (set by user space before load): how many per-CPU flow caches to read. */
const volatile __u32 acl_nr_cpus = 1;

/* One compiled rule set. Two of them (a, b) are preallocated: user space writes the idle
 * one and points acl_blobs[0] at it. */
struct acl_blob_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE); /* user space writes rule sets through a mapping */
	__type(key, __u32);
	__uint(value_size, ACL_BLOB_BYTES);
};

struct acl_blob_map acl_blob_a SEC(".maps");
struct acl_blob_map acl_blob_b SEC(".maps");

/* The active rule set: the swap slot (bpfkit_swap.h) a rule-set change flips. Updating
 * it from user space returns only after running programs finished (synchronize_rcu), so
 * the old blob can be rewritten right after. Empty until the first rule set. */
BPFKIT_SWAP_SLOT(acl_blobs, struct acl_blob_map);

/* Counter slots per CPU in acl_rule_counters (set by user space before load: 2 x maxRules). */
const volatile __u32 acl_ctr_slots = 1;

/* Packets and bytes per rule: one region of acl_ctr_slots counters per possible CPU, the
 * counter of a rule's slot (stable for a rule id) at cpu * acl_ctr_slots + slot. A plain
 * array, not a per-CPU one: its lookup is an address computed inline, so counting costs
 * one memory access, where a per-CPU array first loads the element's per-CPU pointer
 * from a table (for a rule not counted lately, two dependent cache misses). Each CPU
 * writes only its own region (no atomic; a line is shared only at the edge of two regions
 * when maxRules is odd). User space reads and zeroes counters through the map's mapping
 * (BPF_F_MMAPABLE: the values start on a page). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set by user space: possible CPUs x acl_ctr_slots */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} acl_rule_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ACL_STAT_MAX);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} acl_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set by user space */
	__type(key, struct acl_flow_key);
	__type(value, struct acl_flow_state);
} acl_flows SEC(".maps");

/* Per-CPU memory of the flows this CPU last reported or suppressed: ACL_FM_SETS sets of
 * ACL_FM_WAYS entries, a flow's set chosen by a hash of its key (the same set on every
 * CPU), so packets of a flood of thousands of flows are suppressed here without a lookup
 * in (or an atomic on) the shared flow table, and without reading the clock more than once
 * per tick. `count` grows while the entry holds `key`; it moves into the flow's `seen` when
 * the entry takes another flow (or before it would overflow), and whoever reports the flow
 * adds the counts every CPU's set holds for it, so no suppressed packet is left out of the
 * next event. Private to this program: user space never reads it. CPU c's sets are
 * elements c x ACL_FM_SETS .. of a plain array (bpfkit_cpu_elem: no per-CPU pointer table to
 * load first), page-aligned (BPF_F_MMAPABLE), so an entry is exactly one cache line. */
#define ACL_FM_SETS 4096 /* a power of two */
#define ACL_FM_WAYS 4
#define ACL_FM_COUNT_MAX 0x80000000u /* a count this high moves into the flow's `seen` */
struct acl_cpu_flow {
	struct acl_flow_key key; /* family 0 (never a packet's): empty */
	__u64 last_ns; /* the flow's last event, as known on this CPU */
	__u32 count; /* packets of `key` suppressed on this CPU while it held `key` */
	__u32 tick; /* jiffies (low 32 bits) when last_ns was last found within the interval */
};

_Static_assert(sizeof(struct acl_cpu_flow) == 64, "a flow-memory entry is one cache line");

struct acl_flow_set {
	struct acl_cpu_flow w[ACL_FM_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ACL_FM_SETS); /* set by user space: possible CPUs x ACL_FM_SETS */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct acl_flow_set);
} acl_flow_cache SEC(".maps");

BPFKIT_RINGBUF(acl_events, 1 << 20);

/* This CPU's coarse clock as last read, and the tick (jiffies, inlined by the JIT) it was
 * read in: the coarse clock moves only with the tick, so while jiffies has not moved the
 * cached value is the clock's (report.h: acl_now_coarse). One line per CPU, always hot. */
struct acl_clock {
	__u64 tick;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct acl_clock);
} acl_clock SEC(".maps");

/* The cache's view of a key: the dimensions of the packet's family packed into 48 bytes
 * (vcache.h: acl_vkey_of), built from 32-bit loads. The parser stored the words one by
 * one, and a 64-bit load that spans two separate 32-bit stores cannot be forwarded from
 * the store buffer (an x86 stall of ~5 ns, on the critical path of the set's address). */
#define ACL_VC_KEY64 6
struct acl_vkey {
	__u64 p[ACL_VC_KEY64];
};

/* Per-CPU verdict cache (vcache.h): the last classification of up to ACL_VC_SETS x
 * ACL_VC_WAYS flows (a flow's set by hash of the whole key), each valid only for the rule
 * set whose generation it names. A hit skips the tree walk and the read of the record in
 * the rule set (its meta and tag are in the entry: one cache line per flow); the counters,
 * the event rate limit and the action still run for every packet. Sized so that the flows
 * of a busy link (thousands) stay: a walk that misses the CPU caches costs far more than
 * the 1 MiB per CPU. */
#define ACL_VC_SETS 4096 /* a power of two */
#define ACL_VC_WAYS 4
/* The entry also carries the rate limiter's fast path for its flow (report.h), so a
 * suppressed packet of a cached flow touches this one line: `until`, and `count` in the
 * spare bits 12..31 of the key's last word (vcache.h: acl_vkey_of leaves them zero, the
 * compares mask them out). */
#define ACL_VC_NO_RULE ACL_SLOT_DEFAULT /* meta of "no rule matched" (no record has this slot) */
#define ACL_VC_COUNT_SHIFT 12
#define ACL_VC_COUNT_MASK 0xfffff000ull /* of key.p[5] */
#define ACL_VC_COUNT_MAX (ACL_VC_COUNT_MASK >> ACL_VC_COUNT_SHIFT)
#define ACL_VC_UNTIL_SHIFT 20 /* `until` counts coarse-clock ns >> 20 (~1.05 ms) */
struct acl_ventry {
	__u32 gen; /* rule-set generation the verdict was computed with; 0: empty */
	__u32 meta; /* the best record's meta (slot | action << 24), ACL_VC_NO_RULE: none */
	__u32 tag; /* that record's tag (0 for none) */
	/* the flow (key, slot, tag) is suppressed while (coarse ns >> ACL_VC_UNTIL_SHIFT) is
	 * below this (0: not known); its packets suppressed here are counted in key.p[5] */
	__u32 until;
	struct acl_vkey key;
};

_Static_assert(sizeof(struct acl_ventry) == 64, "a verdict is one cache line");

struct acl_vset {
	struct acl_ventry w[ACL_VC_WAYS];
};

/* CPU c's sets are elements c x ACL_VC_SETS .. (as for acl_flow_cache). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ACL_VC_SETS); /* set by user space: possible CPUs x ACL_VC_SETS */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct acl_vset);
} acl_verdicts SEC(".maps");

struct acl_pkt {
	__u32 key[ACL_KEY_WORDS]; /* word ACL_VKEY_FAMILY: 4 or 6 */
	__u8 flags; /* ACL_EV_* */
} __attribute__((aligned(8)));

static __always_inline void acl_count(__u32 stat, __u64 bytes)
{
	bpfkit_count(bpf_map_lookup_elem(&acl_stats, &stat), bytes);
}

/* Word `off` of the blob (header fields, a record's meta and tag); offsets wrap inside the
 * blob, so a damaged blob can give wrong answers but never an out-of-bounds read. The tree
 * walk instead range-checks its offsets (a compare beside the dependent loads rather than
 * a mask in their path) and counts an offset beyond the blob as a corrupt tree. */
static __always_inline __u32 acl_w(const __u8 *blob, __u32 off)
{
	return *(const __u32 *)(blob + (((__u64)off << 2) & (ACL_BLOB_BYTES - 4)));
}

#endif
