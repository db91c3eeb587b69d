/* AclFirewall XDP program, shared by the size variants bpf/acl*.bpf.c (each defines
 * ACL_BLOB_BYTES, the size of one compiled rule set, before including this file).
 *
 * Per packet: parse Ethernet/VLAN/IPv4/IPv6 (extension headers up to
 * BPFKIT_MAX_IPV6_EXT) and the first bytes of TCP/UDP/SCTP/UDP-Lite/DCCP (ports) or
 * ICMP/ICMPv6 (type, code) into a key of 32-bit words; look up the active rule set
 * through `acl_blobs[0]` ONCE (so a packet is judged by one whole set); walk its
 * decision trees; count; drop on deny; report deny/log decisions through the ring
 * buffer, at most one event per flow and rule per interval.
 *
 * Fields the program cannot read are matched as absent: a non-first fragment or a
 * packet whose L4 header is cut short has l4 = 0 and ports 0, so only rules without
 * port/ICMP selectors can match it; an IPv6 packet whose extension headers cannot be
 * walked also has proto ACL_PROTO_UNKNOWN, which only "any protocol" rules match.
 */
#ifndef ACL_PROG_H
#define ACL_PROG_H

#ifndef ACL_BLOB_BYTES
#error "define ACL_BLOB_BYTES (a power of two) before including acl_prog.h"
#endif

#define BPFKIT_MAX_IPV6_EXT 8
#include "bpfkit_helpers.h"
#include "bpfkit_ringbuf.h"
#include "parsing.h"
#include "acl_blob.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/* The active rule set: the single pointer a rule-set swap flips. Updating it from user
 * space returns only after running programs finished (synchronize_rcu), so the old
 * blob can be rewritten right after. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct acl_blob_map);
} acl_blobs SEC(".maps");

/* Packets and bytes per rule, indexed by the rule's slot (stable for a rule id). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* set by user space: the slot capacity */
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} acl_rule_stats SEC(".maps");

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

/* Per-CPU memory of the flows this CPU last reported or suppressed, ACL_FLOW_MEM entries
 * direct-mapped by a hash of the flow key (the same slot on every CPU): packets of a flood
 * of up to about that many flows are suppressed here without a lookup in (or an atomic
 * on) the shared flow table, and without reading the clock more than once per tick.
 * `count` grows while the entry holds `key`; it moves into the flow's `seen` when the
 * entry takes another flow, and whoever reports the flow adds the counts every CPU's entry
 * in that slot holds for it, so no suppressed packet is left out of the next event.
 * Private to this program: user space never reads it. */
struct acl_cpu_flow {
	struct acl_flow_key key; /* family 0 (never a packet's): empty */
	__u64 last_ns;           /* the flow's last event, as known on this CPU */
	__u64 count;             /* packets of `key` suppressed on this CPU while it held `key` */
	__u64 tick;              /* jiffies when last_ns was last found within the interval */
};

struct acl_flow_mem {
	struct acl_cpu_flow e[ACL_FLOW_MEM];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct acl_flow_mem);
} acl_flow_cache SEC(".maps");

BPFKIT_RINGBUF(acl_events, 1 << 20);

/* The cache's view of a key: its first ACL_VKEY_WORDS words as 64-bit pairs, built from
 * 32-bit loads. The parser stored the words one by one, and a 64-bit load that spans two
 * separate 32-bit stores cannot be forwarded from the store buffer (an x86 stall of ~5 ns,
 * on the critical path of the slot's address). */
struct acl_vkey {
	__u64 p[ACL_VKEY_WORDS / 2];
};

/* Per-CPU verdict cache: the last classification of each of ACL_VCACHE_ENTRIES
 * direct-mapped flows (by hash of the whole key), valid only for the rule set whose
 * generation it names. A hit skips the tree walk; the counters, the event rate limit and
 * the action still run for every packet. */
struct acl_ventry {
	__u32 gen; /* rule-set generation the verdict was computed with; 0: empty */
	__u32 rec; /* the best record's word offset in that rule set, 0: no rule matched */
	struct acl_vkey key;
};

struct acl_vcache {
	struct acl_ventry e[ACL_VCACHE_ENTRIES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct acl_vcache);
} acl_verdicts SEC(".maps");

struct acl_pkt {
	__u32 key[ACL_KEY_WORDS]; /* word ACL_VKEY_FAMILY: 4 or 6 */
	/* the flow as the rate limiter keys it (addresses in network order, IPv4 in the first
	 * 4 bytes, ports in host order); acl_report fills in slot and tag */
	struct acl_flow_key fk;
	__u8 flags; /* ACL_EV_* */
} __attribute__((aligned(8))); /* the flow key is written and compared 64 bits at a time */

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

/* Reads the ports (or ICMP type/code) at the cursor. Returns 1 if present. */
static __always_inline int acl_parse_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt)
{
	__u16 p = pkt->fk.proto;

	if (p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP || p == IPPROTO_UDPLITE || p == IPPROTO_DCCP) {
		__be16 *ports = bpfkit_pull(c, 4);

		if (!ports)
			return 0;
		pkt->fk.sport = bpf_ntohs(ports[0]);
		pkt->fk.dport = bpf_ntohs(ports[1]);
		return 1;
	}
	if (p == IPPROTO_ICMP || p == 58 /* IPPROTO_ICMPV6 */) {
		__u8 *tc = bpfkit_pull(c, 2);

		if (!tc)
			return 0;
		pkt->fk.sport = tc[0];
		pkt->fk.dport = tc[1];
		return 1;
	}
	return -1; /* a protocol without selectable L4 fields */
}

/* Pointer to record `r` (a word offset), or NULL if it would not fit in the blob. The
 * offset is bounded once, so the fields are read at constant offsets from it. */
static __always_inline const __u32 *acl_rec(const __u8 *blob, __u32 r, const int dims)
{
	__u64 off = (__u64)r << 2;

	if (off > ACL_BLOB_BYTES - 4 * (ACL_REC_HDR + 2 * dims))
		return NULL;
	return (const __u32 *)(blob + off);
}

/* Record `rec` matches the key in all `dims` dimensions. */
static __always_inline int acl_match(const __u32 *rec, const __u32 *key, const int dims)
{
	/* read the key words here, once each for both bounds: hoisted out of the record loop
	 * (which the compiler does unless the pointer is opaque) they are spilled to the stack
	 * and reloaded for every bound */
	asm volatile("" : "+r"(key));
#pragma unroll
	for (int d = 0; d < dims; d++) {
		__u32 k = key[d];

		if (k < rec[ACL_REC_HDR + 2 * d] || k > rec[ACL_REC_HDR + 2 * d + 1])
			return 0;
	}
	return 1;
}

/* Walks the family's trees; returns the word offset of the best matching record or 0. */
static __always_inline __u32 acl_classify(const __u8 *blob, const __u32 *key, const int dims, const __u32 ntrees_at,
					  const __u32 roots_at)
{
	const __u32 *hdr = (const __u32 *)blob; /* header words: indices below ACL_HDR_WORDS, no mask */
	__u32 best_prio = 0xffffffffu, best = 0;
	__u32 ntrees = hdr[ntrees_at];

	for (__u32 t = 0; t < ACL_MAX_TREES; t++) {
		__u32 p, ctl = 0, cnt;
		__u64 leaf;

		if (t >= ntrees)
			break;
		if (hdr[roots_at + 2 * t + 1] >= best_prio)
			continue; /* nothing in this tree can beat the match we have */
		p = hdr[roots_at + 2 * t];
		for (int i = 0; i < ACL_MAX_DEPTH; i++) {
			__u64 off = (__u64)p << 2;
			__u32 v;

			if (off > ACL_BLOB_BYTES - 4)
				break;
			ctl = *(const __u32 *)(blob + off);
			if (ctl & ACL_LEAF)
				break;
			v = key[ctl & (ACL_KEY_WORDS - 1)];
			v = (v >> ((ctl >> 8) & 31)) & ((1u << ((ctl >> 16) & 31)) - 1);
			off = (__u64)(p + 1 + v) << 2;
			if (off > ACL_BLOB_BYTES - 4)
				break;
			p = *(const __u32 *)(blob + off);
		}
		if (!(ctl & ACL_LEAF)) {
			acl_count(ACL_STAT_CORRUPT, 0);
			continue;
		}
		cnt = ctl & 0xffff;
		leaf = (__u64)(p + 1) << 2;
		for (__u32 j = 0; j < ACL_LEAF_MAX; j++) {
			const __u32 *rec;
			__u64 off = leaf + 4 * j;
			__u32 r;

			asm volatile("" : "+r"(off)); /* the verifier must see the check on the offset the load uses */
			if (j >= cnt || off > ACL_BLOB_BYTES - 4)
				break;
			r = *(const __u32 *)(blob + off);
			rec = acl_rec(blob, r, dims);
			if (!rec)
				break;
			if (rec[0] >= best_prio)
				break; /* records are in priority order */
			if (acl_match(rec, key, dims)) {
				best_prio = rec[0];
				best = r;
				break;
			}
		}
	}
	return best;
}

/* Word i of k times an odd constant, or 0 when i >= n (n a constant: the compiler keeps
 * only the terms below it, with no loop and no table load). */
#define ACL_TERM(k, n, i, m) ((n) > (i) ? (k)[i] * (m) : 0)

/* A slot in a direct-mapped table of `slots` (a power of two) for the first `n` (a
 * constant, 1..7) 64-bit words of a key: independent multiplies, xor-ed. */
static __always_inline __u32 acl_slot64(const __u64 *k, const int n, const __u32 slots)
{
	__u64 h = ACL_TERM(k, n, 0, 0x9e3779b97f4a7c15ull) ^ ACL_TERM(k, n, 1, 0xc2b2ae3d27d4eb4full) ^
		  ACL_TERM(k, n, 2, 0x165667b19e3779f9ull) ^ ACL_TERM(k, n, 3, 0x27d4eb2f165667c5ull) ^
		  ACL_TERM(k, n, 4, 0x85ebca77c2b2ae63ull) ^ ACL_TERM(k, n, 5, 0xff51afd7ed558ccdull) ^
		  ACL_TERM(k, n, 6, 0xc4ceb9fe1a85ec53ull);

	return (__u32)(h >> 32) & (slots - 1);
}

/* Word i of x xor word i of y, or 0 when i >= n (n a constant, as for ACL_TERM). */
#define ACL_DIFF(x, y, n, i) ((n) > (i) ? (x)[i] ^ (y)[i] : 0)

/* The first `n` (a constant, 1..7) 64-bit words of x and y are equal. */
static __always_inline int acl_eq64(const __u64 *x, const __u64 *y, const int n)
{
	return (ACL_DIFF(x, y, n, 0) | ACL_DIFF(x, y, n, 1) | ACL_DIFF(x, y, n, 2) | ACL_DIFF(x, y, n, 3) |
		ACL_DIFF(x, y, n, 4) | ACL_DIFF(x, y, n, 5) | ACL_DIFF(x, y, n, 6)) == 0;
}

_Static_assert(sizeof(struct acl_flow_key) % 8 == 0 && sizeof(struct acl_flow_key) <= 56, "acl_eq64/acl_slot64 see a flow key whole");

static __always_inline int acl_key_eq(const struct acl_flow_key *a, const struct acl_flow_key *b)
{
	return acl_eq64((const __u64 *)a, (const __u64 *)b, sizeof(*a) / 8);
}

/* Points this CPU's flow memory at `fk` (its count starts again unless it held `fk`). */
static __always_inline void acl_cache_take(struct acl_cpu_flow *fc, const struct acl_flow_key *fk, __u64 last_ns)
{
	if (!acl_key_eq(&fc->key, fk)) {
		__builtin_memcpy(&fc->key, fk, sizeof(*fk));
		fc->count = 0;
	}
	fc->last_ns = last_ns;
	fc->tick = bpf_jiffies64() - 1; /* not this tick: the next packet reads the clock */
}

/* Packets of `fk` suppressed in the CPUs' flow memories (read after the flow's `seen`:
 * a count that moves into `seen` meanwhile is then missed once and reported next
 * time, never counted twice). */
static __always_inline __u64 acl_cached_counts(const struct acl_flow_key *fk, __u32 at)
{
	__u64 sum = 0;
	__u32 zero = 0;

	for (__u32 cpu = 0; cpu < ACL_MAX_CPUS; cpu++) {
		struct acl_flow_mem *m;
		struct acl_cpu_flow *c;

		if (cpu >= acl_nr_cpus)
			break;
		m = bpf_map_lookup_percpu_elem(&acl_flow_cache, &zero, cpu);
		if (!m)
			continue;
		c = &m->e[at & (ACL_FLOW_MEM - 1)];
		if (acl_key_eq(&c->key, fk))
			sum += c->count;
	}
	return sum;
}

/* Reports a decision, at most once per flow and rule per interval. */
static __always_inline void acl_report(struct xdp_md *ctx, struct acl_pkt *pkt, const __u8 *blob, __u32 slot, __u32 tag,
				       __u32 action, __u32 len)
{
	struct acl_flow_key *fk = &pkt->fk;
	__u64 interval_ns = (__u64)acl_w(blob, ACL_H_INTERVAL_MS) * 1000000;
	struct acl_flow_state *st;
	struct acl_flow_mem *mem;
	struct acl_cpu_flow *fc;
	struct acl_event *e;
	__u64 now, suppressed = 0;
	__u32 zero = 0, at;

	mem = bpf_map_lookup_elem(&acl_flow_cache, &zero);
	if (!mem)
		return;
	*(__u64 *)&fk->slot = slot | (__u64)tag << 32; /* one store: see acl_key_tail */
	at = acl_slot64((const __u64 *)fk, sizeof(*fk) / 8, ACL_FLOW_MEM);
	fc = &mem->e[at];
	if (acl_key_eq(&fc->key, fk)) {
		/* The flood's fast path: the flow this CPU's memory holds in its slot. The rate limit
		 * needs only tick precision, and the coarse clock moves only with the tick: while
		 * jiffies has not moved since the flow was last found within its interval, it
		 * still is (an update of the coarse clock that lands just after jiffies moved
		 * can make an event at most one tick late, never early). */
		__u64 tick = bpf_jiffies64();

		if (tick == fc->tick)
			goto suppress;
		now = bpf_ktime_get_coarse_ns();
		if (now - fc->last_ns < interval_ns) {
			fc->tick = tick;
suppress:
			fc->count++; /* per-CPU: no atomic, no shared cache line */
			acl_count(ACL_STAT_SUPPRESSED, 0);
			return;
		}
	} else {
		now = bpf_ktime_get_coarse_ns();
		/* the memory moves to another flow: hand the old flow its suppressed packets */
		if (fc->count) {
			struct acl_flow_state *old = bpf_map_lookup_elem(&acl_flows, &fc->key);

			if (old)
				__sync_fetch_and_add(&old->seen, fc->count);
			fc->count = 0;
		}
	}
	st = bpf_map_lookup_elem(&acl_flows, fk);
	if (st) {
		__sync_fetch_and_add(&st->seen, 1);
		if (now - st->last_ns < interval_ns) {
			/* reported recently (maybe by another CPU): suppress here from now on */
			acl_cache_take(fc, fk, st->last_ns);
			acl_count(ACL_STAT_SUPPRESSED, 0);
			return;
		}
	}
	e = bpfkit_rb_reserve(acl_events, sizeof(*e));
	if (!e)
		return; /* counted in acl_events_lost; `seen` keeps the packet for the next event */
	if (st) {
		__u64 total = st->seen;

		total += acl_cached_counts(fk, at);
		/* packets since the last event, this one excluded */
		suppressed = total - st->reported - 1;
		st->reported = total;
		st->last_ns = now;
	} else {
		struct acl_flow_state init = { .last_ns = now, .seen = 1, .reported = 1 };

		bpf_map_update_elem(&acl_flows, fk, &init, BPF_NOEXIST);
	}
	acl_cache_take(fc, fk, now);
	e->ktime_ns = bpf_ktime_get_ns();
	e->gen = acl_w(blob, ACL_H_GEN);
	e->slot = slot;
	e->suppressed = suppressed > 0xffffffffu ? 0xffffffffu : (__u32)suppressed;
	e->ifindex = ctx->ingress_ifindex;
	e->pkt_len = len;
	e->action = action;
	e->family = fk->family;
	e->proto = fk->proto;
	e->sport = fk->sport;
	e->dport = fk->dport;
	e->flags = pkt->flags;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	__builtin_memcpy(e->src, fk->src, 16);
	__builtin_memcpy(e->dst, fk->dst, 16);
	bpfkit_rb_submit(e);
	acl_count(ACL_STAT_EVENTS, 0);
}

/* After the IP header(s): a later fragment has no L4 header; otherwise read the ports or
 * ICMP type/code (a cut-short header counts as unparsed). */
static __always_inline void acl_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt, __u32 len, int later_fragment)
{
	int l4;

	if (later_fragment) {
		pkt->flags |= ACL_EV_FRAGMENT;
		acl_count(ACL_STAT_FRAGMENT, len);
		return;
	}
	l4 = acl_parse_l4(c, pkt);
	if (l4 > 0)
		pkt->flags |= ACL_EV_L4;
	else if (l4 == 0)
		acl_count(ACL_STAT_UNPARSED, len);
}

/* The key words after the addresses: sport, dport, proto, ifindex, l4 (from `at`); and
 * the flow key's sport..family rewritten as one 64-bit store, as its addresses were (the
 * rate limiter compares flow keys 64 bits at a time, and a load that spans several
 * smaller stores cannot be forwarded from the store buffer: a stall of several ns). */
static __always_inline void acl_key_tail(struct xdp_md *ctx, struct acl_pkt *pkt, const int at)
{
	*(__u64 *)&pkt->fk.sport = pkt->fk.sport | (__u32)pkt->fk.dport << 16 | (__u64)pkt->fk.proto << 32 |
				   (__u64)pkt->fk.family << 48;
	pkt->key[at] = pkt->fk.sport;
	pkt->key[at + 1] = pkt->fk.dport;
	pkt->key[at + 2] = pkt->fk.proto;
	pkt->key[at + 3] = ctx->ingress_ifindex;
	pkt->key[at + 4] = pkt->flags & ACL_EV_L4;
}

/* Parses the packet into `pkt`. Returns 4 or 6, 0 for non-IP, -1 for a broken IP header. */
static __always_inline int acl_parse(struct xdp_md *ctx, struct acl_pkt *pkt, __u32 len)
{
	struct bpfkit_cursor c = bpfkit_cursor_xdp(ctx);
	struct ethhdr *eth;
	int proto = bpfkit_parse_eth(&c, &eth, NULL);

	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		int ip = bpfkit_parse_ipv4(&c, &iph);

		if (ip < 0)
			return -1;
		pkt->fk.family = 4;
		pkt->fk.proto = ip;
		*(__u64 *)pkt->fk.src = iph->saddr; /* bytes 0-3, and zeros to 7: one store */
		*(__u64 *)pkt->fk.dst = iph->daddr;
		pkt->key[0] = bpf_ntohl(iph->saddr);
		pkt->key[1] = bpf_ntohl(iph->daddr);
		acl_l4(&c, pkt, len, bpfkit_ipv4_is_later_fragment(iph));
		acl_key_tail(ctx, pkt, 2);
		return 4;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		struct bpfkit_ipv6_ext_info info = {};
		int nh = bpfkit_parse_ipv6(&c, &ip6);

		if (nh < 0)
			return -1;
		pkt->fk.family = 6;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pkt->key[i] = bpf_ntohl(ip6->saddr.in6_u.u6_addr32[i]);
			pkt->key[4 + i] = bpf_ntohl(ip6->daddr.in6_u.u6_addr32[i]);
		}
#pragma unroll
		for (int i = 0; i < 2; i++) { /* 64-bit stores: see acl_key_tail */
			((__u64 *)pkt->fk.src)[i] = ip6->saddr.in6_u.u6_addr32[2 * i] | (__u64)ip6->saddr.in6_u.u6_addr32[2 * i + 1] << 32;
			((__u64 *)pkt->fk.dst)[i] = ip6->daddr.in6_u.u6_addr32[2 * i] | (__u64)ip6->daddr.in6_u.u6_addr32[2 * i + 1] << 32;
		}
		nh = bpfkit_skip_ipv6_ext(&c, nh, &info);
		if (nh < 0) {
			pkt->fk.proto = ACL_PROTO_UNKNOWN;
			acl_count(ACL_STAT_UNPARSED, len);
		} else {
			pkt->fk.proto = nh;
			acl_l4(&c, pkt, len, info.frag_offset != 0);
		}
		acl_key_tail(ctx, pkt, 8);
		return 6;
	}
	return 0;
}

static __always_inline void acl_vkey_of(struct acl_vkey *v, const struct acl_pkt *pkt)
{
	const volatile __u32 *k = pkt->key;

#pragma unroll
	for (int i = 0; i < ACL_VKEY_WORDS / 2; i++)
		v->p[i] = ((__u64)k[2 * i + 1] << 32) | k[2 * i];
}

/* The best record for the packet's key (0: none): from this CPU's verdict cache when it
 * holds the key for the rule set in force, otherwise from the trees (and remembered). */
static __always_inline __u32 acl_lookup(const __u8 *blob, struct acl_pkt *pkt, int fam, __u32 flags)
{
	__u32 gen = acl_w(blob, ACL_H_GEN), zero = 0, rec;
	struct acl_ventry *e = NULL;
	struct acl_vkey v;

	if (!(flags & ACL_FLAG_NO_CACHE)) {
		struct acl_vcache *vc = bpf_map_lookup_elem(&acl_verdicts, &zero);

		if (vc) {
			acl_vkey_of(&v, pkt);
			e = &vc->e[acl_slot64(v.p, ACL_VKEY_WORDS / 2, ACL_VCACHE_ENTRIES)];
			if (e->gen == gen && acl_eq64(e->key.p, v.p, ACL_VKEY_WORDS / 2)) {
				acl_count(ACL_STAT_CACHED, 0);
				return e->rec;
			}
		}
	}
	acl_count(ACL_STAT_WALKS, 0);
	if (fam == 4)
		rec = acl_classify(blob, pkt->key, ACL_V4_DIMS, ACL_H_V4_TREES, ACL_H_V4_ROOTS);
	else
		rec = acl_classify(blob, pkt->key, ACL_V6_DIMS, ACL_H_V6_TREES, ACL_H_V6_ROOTS);
	if (e) {
		e->key = v;
		e->rec = rec;
		e->gen = gen;
	}
	return rec;
}

SEC("xdp")
int xdp_acl(struct xdp_md *ctx)
{
	struct acl_pkt pkt;
	__u32 zero = 0;
	__u32 len = ctx->data_end - ctx->data;
	const __u8 *blob;
	void *inner;
	__u32 rec, flags, meta, action, slot;
	int fam;

	__builtin_memset(&pkt, 0, sizeof(pkt));
	fam = acl_parse(ctx, &pkt, len);
	if (fam == 0) {
		acl_count(ACL_STAT_NON_IP, len);
		return XDP_PASS;
	}
	inner = bpf_map_lookup_elem(&acl_blobs, &zero);
	blob = inner ? bpf_map_lookup_elem(inner, &zero) : NULL;
	if (!blob || acl_w(blob, ACL_H_MAGIC) != ACL_BLOB_MAGIC) {
		acl_count(ACL_STAT_NO_RULES, len);
		return XDP_PASS;
	}
	flags = acl_w(blob, ACL_H_FLAGS);
	if (fam < 0) {
		acl_count(ACL_STAT_MALFORMED, len);
		return (flags & ACL_FLAG_DEFAULT_DENY) ? XDP_DROP : XDP_PASS;
	}
	pkt.key[ACL_VKEY_FAMILY] = fam;
	rec = acl_lookup(blob, &pkt, fam, flags);
	if (!rec) {
		if (!(flags & ACL_FLAG_DEFAULT_DENY)) {
			acl_count(ACL_STAT_DEFAULT_ALLOW, len);
			return XDP_PASS;
		}
		acl_count(ACL_STAT_DEFAULT_DENY, len);
		if ((flags & (ACL_FLAG_EVENTS_DEFAULT | ACL_FLAG_NO_EVENTS)) == ACL_FLAG_EVENTS_DEFAULT)
			acl_report(ctx, &pkt, blob, ACL_SLOT_DEFAULT, 0, ACL_ACT_DENY, len);
		return XDP_DROP;
	}
	meta = acl_w(blob, rec + 1);
	slot = meta & ACL_SLOT_MASK;
	action = meta >> 24;
	bpfkit_count(bpf_map_lookup_elem(&acl_rule_stats, &slot), len);
	if (action != ACL_ACT_ALLOW && !(flags & ACL_FLAG_NO_EVENTS))
		acl_report(ctx, &pkt, blob, slot, acl_w(blob, rec + 2), action, len);
	return action == ACL_ACT_DENY ? XDP_DROP : XDP_PASS;
}

#endif
