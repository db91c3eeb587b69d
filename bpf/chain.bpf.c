// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ServiceChainer: classifies packets at XDP and marks them for Linux policy routing.
 *
 * A packet that arrives unserviced must first go through a service (firewall, IDS...)
 * that hands it back unmodified; traffic that comes back from the service goes
 * upstream. Since the service does not change the packet, the path is told from where
 * and how it arrived: ingress interface, source MAC, VLAN id, tunnel VNI (from the
 * Decapsulator's metadata), source/destination prefix, protocol, destination port.
 *
 * Classification is tuple-space search (TSS). Rules are grouped by shape: which fields
 * they match and the prefix lengths of their CIDRs. For each shape the packet's fields
 * are masked to the shape and looked up once in a hash keyed by (generation, shape,
 * masked fields): chain_rules6 for shapes with IPv6 prefixes, chain_rules4 (a key of 32
 * bytes instead of 56) for all others. Shapes are ordered by the best (lowest) rank of their rules,
 * so the walk stops as soon as no later shape can beat the match in hand. Cost: one
 * hash lookup per shape visited, independent of the number of rules.
 *
 * Verdict: XDP_PASS (the chainer marks), or with chain_forward XDP_REDIRECT for the
 * marked packets it routes itself (bpfkit_chain_fwd.h). A matched packet gets the mark of
 * its action (a service, or upstream) in the bpfkit metadata (bpfkit_meta.h) with
 * BPFKIT_META_F_MARK; tc_chain_mark (below, a TC ingress program) copies it into
 * skb->mark, which `ip rule fwmark` routes on.
 *
 * Atomic updates: the config (shape table, marks) is double-buffered through the swap
 * slot (bpfkit_swap.h); the rule hash is double-buffered by the generation in its key
 * (the config copy's index), as the Decapsulator's VNI allowlist is. A packet reads the
 * config once and looks up only its generation: the whole old or the whole new set.
 */
#include "parsing.h"
#include <linux/pkt_cls.h>
#include "bpfkit_meta.h"
#include "bpfkit_swap.h"
#include "bpfkit_pipeline.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CHAIN_MAX_SHAPES 32
#define CHAIN_MAX_SERVICES 32
#define CHAIN_UPSTREAM 0xffu /* action: upstream, not a service */
#define CHAIN_NO_RANK 0xffffffffu

/* chain_shape.fields */
#define CF_IFINDEX (1u << 0)
#define CF_SMAC (1u << 1)
#define CF_VLAN (1u << 2)
#define CF_VNI (1u << 3)
#define CF_SRC (1u << 4)
#define CF_DST (1u << 5)
#define CF_PROTO (1u << 6)
#define CF_DPORT (1u << 7)
#define CF_NEEDS_IP (CF_SRC | CF_DST | CF_PROTO | CF_DPORT)

/* counters[] slots: services 0..31, then these */
#define CNT_UPSTREAM CHAIN_MAX_SERVICES
#define CNT_UNCLASSIFIED (CHAIN_MAX_SERVICES + 1)
#define CNT_META_FAILED (CHAIN_MAX_SERVICES + 2)
#define CNT_PACKETS (CHAIN_MAX_SERVICES + 3) /* every packet seen */
#define CNT_SLOTS (CHAIN_MAX_SERVICES + 4)

/* A shape: which fields its rules match, and how much of the addresses. */
struct chain_shape {
	__u32 fields; /* CF_* */
	__u32 best_rank; /* lowest rank of its rules: the walk's early exit */
	__u32 family; /* 4 or 6 when CF_SRC/CF_DST, else 0 */
	__u32 src_mask[4]; /* network order; IPv4 in word 0 */
	__u32 dst_mask[4];
};

struct chain_config {
	__u32 gen; /* 0 or 1: the rule hash generation this copy uses */
	__u32 nshapes;
	__u32 upstream_mark;
	__u32 rule_base; /* first rule_stats slot of this generation */
	__u32 service_mark[CHAIN_MAX_SERVICES];
	struct chain_shape shapes[CHAIN_MAX_SHAPES];
};

/* The rule hash key: a packet's fields masked to one shape. 56 bytes. */
struct chain_key {
	__u32 gen_shape; /* gen << 8 | shape index */
	__u32 ifindex;
	__u32 vni;
	__u8 smac[6];
	__u16 vlan; /* VLAN id of the outer tag, host order */
	__u8 family;
	__u8 proto;
	__be16 dport;
	__u32 src[4];
	__u32 dst[4];
};
_Static_assert(sizeof(struct chain_key) == 56, "chain_key is 56 bytes");

/* The same for shapes without IPv6 prefixes (IPv4 prefixes or none): 32 bytes, so the
 * lookups most rule sets make hash and compare 8 words instead of 14. */
struct chain_key4 {
	__u32 gen_shape;
	__u32 ifindex;
	__u32 vni;
	__u8 smac[6];
	__u16 vlan;
	__u8 family;
	__u8 proto;
	__be16 dport;
	__u32 src;
	__u32 dst;
};
_Static_assert(sizeof(struct chain_key4) == 32, "chain_key4 is 32 bytes");

struct chain_rule {
	__u32 rank; /* position in first-match order: lower wins */
	__u32 rule; /* the rule's index in the set (its counter) */
	__u32 action; /* service index or CHAIN_UPSTREAM */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chain_config);
} chain_config_a SEC(".maps"), chain_config_b SEC(".maps");
BPFKIT_SWAP_SLOT_INIT(chain_config, __typeof__(chain_config_a), chain_config_a);

/* Two generations of rules; max_entries set at load (2 x limits.maxRules). Rules of
 * IPv6-prefix shapes in chain_rules6, all others in chain_rules4. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct chain_key);
	__type(value, struct chain_rule);
} chain_rules6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct chain_key4);
	__type(value, struct chain_rule);
} chain_rules4 SEC(".maps");

/* Per rule: slot rule_base + rule (two generations). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} chain_rule_stats SEC(".maps");

/* The configuration as user space gave it (JSON), for a process adopting a pinned
 * chainer: two halves, one per config copy, so the half of the copy in force always
 * describes it. Never read here; max_entries set at load. */
struct chain_state_chunk {
	__u8 b[4096];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct chain_state_chunk);
} chain_state SEC(".maps");

/* classification slots (CNT_SLOTS), then forwarding outcomes (bpfkit_chain_fwd.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_SLOTS + 14);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} chain_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	bpfkit_count(bpf_map_lookup_elem(&chain_counters, &slot), bytes);
}

#include "bpfkit_chain_fwd.h"
_Static_assert(FWD_SLOTS == 14, "chain_counters holds the forwarding outcomes");

/* The packet's fields, unmasked. */
struct chain_pkt {
	struct chain_key k;
	__u32 have; /* CF_* the packet has values for */
};

static __always_inline void parse(struct xdp_md *ctx, struct chain_pkt *p)
{
	struct bpfkit_cursor c = bpfkit_cursor_xdp(ctx);
	struct bpfkit_xdp_meta *m = bpfkit_xdp_meta_get(ctx);
	struct ethhdr *eth;
	__u32 vlans = 0;
	int l3, l4 = -1;

	p->k.ifindex = ctx->ingress_ifindex;
	p->have = CF_IFINDEX;
	if (m && (m->flags & BPFKIT_META_F_VNI)) {
		p->k.vni = m->vni;
		p->have |= CF_VNI;
	}
	l3 = bpfkit_parse_eth(&c, &eth, &vlans);
	if (l3 < 0)
		return;
	__builtin_memcpy(p->k.smac, eth->h_source, ETH_ALEN);
	p->have |= CF_SMAC;
	if (vlans) {
		struct bpfkit_vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > (void *)(long)ctx->data_end)
			return;
		p->k.vlan = bpf_ntohs(vh->tci) & 0x0fff;
		p->have |= CF_VLAN;
	}
	if (l3 == ETH_P_IP) {
		struct iphdr *iph;

		l4 = bpfkit_parse_ipv4(&c, &iph);
		if (l4 < 0)
			return;
		p->k.family = 4;
		p->k.src[0] = iph->saddr;
		p->k.dst[0] = iph->daddr;
		if (bpfkit_ipv4_is_later_fragment(iph))
			l4 = -2; /* protocol known, no ports */
		p->k.proto = iph->protocol;
	} else if (l3 == ETH_P_IPV6) {
		struct bpfkit_ipv6_ext_info ext = {};
		struct ipv6hdr *ip6;

		l4 = bpfkit_parse_ipv6(&c, &ip6);
		if (l4 < 0)
			return;
		p->k.family = 6;
		__builtin_memcpy(p->k.src, &ip6->saddr, 16);
		__builtin_memcpy(p->k.dst, &ip6->daddr, 16);
		if (bpfkit_ipv6_is_ext(l4)) {
			l4 = bpfkit_skip_ipv6_ext(&c, l4, &ext);
			if (l4 < 0) {
				/* addresses known, protocol not */
				p->have |= CF_SRC | CF_DST;
				return;
			}
			if (ext.frag_offset) {
				p->k.proto = l4;
				p->have |= CF_SRC | CF_DST | CF_PROTO;
				return;
			}
		}
		p->k.proto = l4;
	} else {
		return;
	}
	p->have |= CF_SRC | CF_DST | CF_PROTO;
	if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP || l4 == IPPROTO_SCTP) {
		/* source and destination ports are the first 4 bytes of all three */
		__be16 *ports = bpfkit_pull(&c, 4);

		if (ports) {
			p->k.dport = ports[1];
			p->have |= CF_DPORT;
		}
	}
}

/* One shape's lookup with the packet's fields masked to it (IPv6-prefix shapes). */
static __always_inline struct chain_rule *lookup6(const struct chain_shape *s, const struct chain_pkt *p,
                                                  __u32 gen_shape)
{
	struct chain_key k = {};
	__u32 f = s->fields;

	k.gen_shape = gen_shape;
	if (f & CF_IFINDEX)
		k.ifindex = p->k.ifindex;
	if (f & CF_VNI)
		k.vni = p->k.vni;
	if (f & CF_SMAC)
		__builtin_memcpy(k.smac, p->k.smac, 6);
	if (f & CF_VLAN)
		k.vlan = p->k.vlan;
	k.family = 6;
	if (f & CF_PROTO)
		k.proto = p->k.proto;
	if (f & CF_DPORT)
		k.dport = p->k.dport;
	if (f & CF_SRC) {
		k.src[0] = p->k.src[0] & s->src_mask[0];
		k.src[1] = p->k.src[1] & s->src_mask[1];
		k.src[2] = p->k.src[2] & s->src_mask[2];
		k.src[3] = p->k.src[3] & s->src_mask[3];
	}
	if (f & CF_DST) {
		k.dst[0] = p->k.dst[0] & s->dst_mask[0];
		k.dst[1] = p->k.dst[1] & s->dst_mask[1];
		k.dst[2] = p->k.dst[2] & s->dst_mask[2];
		k.dst[3] = p->k.dst[3] & s->dst_mask[3];
	}
	return bpf_map_lookup_elem(&chain_rules6, &k);
}

/* The same for every other shape (IPv4 prefixes or none). */
static __always_inline struct chain_rule *lookup4(const struct chain_shape *s, const struct chain_pkt *p,
                                                  __u32 gen_shape)
{
	struct chain_key4 k = {};
	__u32 f = s->fields;

	k.gen_shape = gen_shape;
	if (f & CF_IFINDEX)
		k.ifindex = p->k.ifindex;
	if (f & CF_VNI)
		k.vni = p->k.vni;
	if (f & CF_SMAC)
		__builtin_memcpy(k.smac, p->k.smac, 6);
	if (f & CF_VLAN)
		k.vlan = p->k.vlan;
	if (f & (CF_SRC | CF_DST))
		k.family = 4;
	if (f & CF_PROTO)
		k.proto = p->k.proto;
	if (f & CF_DPORT)
		k.dport = p->k.dport;
	if (f & CF_SRC)
		k.src = p->k.src[0] & s->src_mask[0];
	if (f & CF_DST)
		k.dst = p->k.dst[0] & s->dst_mask[0];
	return bpf_map_lookup_elem(&chain_rules4, &k);
}

/* Looks shape `s` up for the packet and keeps the hit in *best when it ranks better.
 * A global function: the verifier checks it once, not once per shape of the loop and
 * per combination of the fields before it. */
__noinline int chain_shape_lookup(const struct chain_shape *s, const struct chain_pkt *p, __u32 gen_shape,
                                  struct chain_rule *best)
{
	struct chain_rule *r;

	if (!s || !p || !best)
		return 0;
	if (s->fields & ~p->have)
		return 0; /* the packet lacks a field this shape matches on */
	if ((s->fields & (CF_SRC | CF_DST)) && s->family != p->k.family)
		return 0;
	r = s->family == 6 ? lookup6(s, p, gen_shape) : lookup4(s, p, gen_shape);
	if (!r || r->rank >= best->rank)
		return 0;
	best->rank = r->rank;
	best->rule = r->rule;
	best->action = r->action;
	return 1;
}

/* The best rule for the packet into *best (rank CHAIN_NO_RANK: none). */
static __always_inline void classify(const struct chain_config *cfg, const struct chain_pkt *p, struct chain_rule *best)
{
	__u32 n = cfg->nshapes;

	best->rank = CHAIN_NO_RANK;
	for (__u32 i = 0; i < CHAIN_MAX_SHAPES; i++) {
		const struct chain_shape *s;

		if (i >= n)
			break;
		s = &cfg->shapes[i];
		if (s->best_rank >= best->rank)
			break; /* shapes are sorted by best_rank: nothing later can win */
		chain_shape_lookup(s, p, cfg->gen << 8 | i, best);
	}
}

static __always_inline int chain_frame(struct xdp_md *ctx)
{
	const struct chain_config *cfg = bpfkit_swap_current(&chain_config);
	__u64 bytes = bpf_xdp_get_buff_len(ctx);
	struct chain_pkt p = {};
	struct chain_rule r;
	struct bpfkit_xdp_meta *m;
	__u32 mark, action, slot;

	count(CNT_PACKETS, bytes);
	if (!cfg) {
		count(CNT_UNCLASSIFIED, bytes);
		return XDP_PASS;
	}
	parse(ctx, &p);
	classify(cfg, &p, &r);
	if (r.rank == CHAIN_NO_RANK) {
		count(CNT_UNCLASSIFIED, bytes);
		return XDP_PASS;
	}
	action = r.action;
	slot = cfg->rule_base + r.rule;
	bpfkit_count(bpf_map_lookup_elem(&chain_rule_stats, &slot), bytes);
	if (action == CHAIN_UPSTREAM) {
		mark = cfg->upstream_mark;
		count(CNT_UPSTREAM, bytes);
	} else if (action < CHAIN_MAX_SERVICES) {
		mark = cfg->service_mark[action];
		count(action, bytes);
	} else {
		count(CNT_UNCLASSIFIED, bytes); /* cannot happen: user space writes valid actions */
		return XDP_PASS;
	}
	if (chain_forward && chain_fwd(ctx, mark, CNT_SLOTS, bytes) == XDP_REDIRECT)
		return XDP_REDIRECT;
	/* invalidates packet pointers: after classification */
	m = bpfkit_xdp_meta_ensure(ctx);
	if (!m) {
		count(CNT_META_FAILED, bytes);
		return XDP_PASS;
	}
	m->mark = mark;
	m->flags |= BPFKIT_META_F_MARK;
	return XDP_PASS;
}

/* Alone, the verdict is returned; as an XdpPipeline stage, XDP_PASS continues with the
 * next stage. */
SEC("xdp")
int xdp_chain(struct xdp_md *ctx)
{
	return bpfkit_pipeline_next(ctx, chain_frame(ctx));
}

/* TC ingress: copies the mark the XDP stage wrote into the metadata to skb->mark, for
 * `ip rule fwmark`. Packets without our metadata or without a mark are untouched. Returns
 * TC_ACT_UNSPEC (tcx: TCX_NEXT), not TC_ACT_OK: it decides nothing, so TC programs after it
 * on the same hook (a user's, another module's) still run; with none, the packet passes. */
SEC("tc")
int tc_chain_mark(struct __sk_buff *skb)
{
	struct bpfkit_xdp_meta *m = bpfkit_skb_meta_get(skb);

	if (m && (m->flags & BPFKIT_META_F_MARK))
		skb->mark = m->mark;
	return TC_ACT_UNSPEC;
}
