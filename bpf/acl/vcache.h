// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): the per-CPU verdict cache in front of the
 * tree walk (classify.h), set-associative (maps.h: acl_verdicts).
 *
 * Live, a walk of a large rule set for a packet of a flow not seen lately costs several
 * hundred ns (the nodes and records it reads are not in the CPU's caches), ten times the
 * cost of everything else the program does; so the cache holds thousands of flows per CPU,
 * and a set of ACL_VC_WAYS keeps flows whose hashes collide from evicting each other. */
#ifndef ACL_VCACHE_H
#define ACL_VCACHE_H

#include "maps.h"
#include "hash.h"
#include "classify.h"

/* The packet's key packed for the cache: IPv4 in 3 of the 6 words (the rest zero), IPv6 in
 * all 6; the last word of each holds proto (9 bits) and l4 (IPv4: bit 16, IPv6: bit 9),
 * the family (IPv4: 4 in bits 24-31 of word 2; IPv6: bit 11 of word 5, which is zero for
 * IPv4 below the count bits, so the families never meet) and the ingress ifindex (high
 * half). Bits 12..31 of word 5 stay zero here: in a cache entry they hold its count of
 * suppressed packets (ACL_VC_COUNT_MASK), which every compare masks out. */
#define ACL_VK6_FAMILY (1u << 11)
_Static_assert(ACL_VC_COUNT_SHIFT > 11, "the count bits lie above the IPv6 tail's");
static __always_inline void acl_vkey_of(struct acl_vkey *v, const struct acl_pkt *pkt, int fam)
{
	const volatile __u32 *k = pkt->key;

	if (fam == 4) {
		v->p[0] = ((__u64)k[1] << 32) | k[0];
		v->p[1] = ((__u64)k[3] << 32) | k[2];
		v->p[2] = ((__u64)k[5] << 32) | k[4] | k[6] << 16 | 4 << 24;
		v->p[3] = v->p[4] = v->p[5] = 0;
		return;
	}
#pragma unroll
	for (int i = 0; i < 5; i++)
		v->p[i] = ((__u64)k[2 * i + 1] << 32) | k[2 * i];
	v->p[5] = ((__u64)k[11] << 32) | k[10] | k[12] << 9 | ACL_VK6_FAMILY;
}

/* The set of a packet's flow, in the verdict cache and in the rate limiter's flow memory
 * (report.h) alike: a hash of the packed key without the ingress ifindex and the "has L4"
 * bit, so a function of the flow's addresses, ports, protocol and family only (the flow
 * memory needs the same set for a flow on every CPU and for every packet of it). One hash
 * for both, computed from the parsed packet alone: the flow memory's address does not
 * wait for the verdict (its slot and tag), so its line can be fetched beside the verdict
 * cache's instead of after it. Returns the set in the low bits (ACL_VC_SETS) and the
 * flow's preferred way above them (acl_way_at): both tables look there first and put a
 * new flow there when it is free, so a lookup reads one way's line, not the lines of the
 * ways before it (with one flow per set on average, a third of the flows would otherwise
 * sit behind another way). */
_Static_assert(ACL_FM_SETS == ACL_VC_SETS && ACL_FM_WAYS == ACL_VC_WAYS,
               "the verdict cache and the flow memory share the set and preferred way of a flow");
#define ACL_VKEY_TAIL_MASK 0xff00ffffull /* of IPv4's last word: proto and family */
#define ACL_VKEY6_TAIL_MASK 0x9ffull /* of IPv6's last word: proto and family */
static __always_inline __u32 acl_flow_set_of(const struct acl_vkey *v, int fam)
{
	__u64 m[ACL_VC_KEY64];

#pragma unroll
	for (int i = 0; i < ACL_VC_KEY64; i++)
		m[i] = v->p[i];
	if (fam == 4)
		m[2] &= ACL_VKEY_TAIL_MASK;
	else
		m[5] &= ACL_VKEY6_TAIL_MASK;
	return acl_slot64(m, ACL_VC_KEY64, ACL_VC_SETS * ACL_VC_WAYS);
}

/* The i-th way to look at in the set of `h` (acl_flow_set_of), starting at its preferred one. */
#define acl_way_at(h, i) ((((h) / ACL_VC_SETS) + (i)) & (ACL_VC_WAYS - 1))

struct acl_verdict {
	__u32 meta; /* the best record's meta, ACL_VC_NO_RULE: no rule matched */
	__u32 tag; /* its tag (0 for none) */
};

/* The entry holds the packet's key (of this or an older rule set). */
static __always_inline int acl_ventry_is(const struct acl_ventry *x, const struct acl_vkey *vk)
{
	return acl_eq64(x->key.p, vk->p, ACL_VC_KEY64 - 1) && !((x->key.p[5] ^ vk->p[5]) & ~ACL_VC_COUNT_MASK);
}

/* The entry's packets suppressed in it (report.h), of the flow (key, slot, tag) it names. */
static __always_inline __u32 acl_ventry_count(const struct acl_ventry *x)
{
	return (x->key.p[5] & ACL_VC_COUNT_MASK) >> ACL_VC_COUNT_SHIFT;
}

/* The entry holds a packet of the rate limiter's flow `fk` of family `fam` whose packed
 * key is `vk`: the same addresses, ports, protocol and family (ingress ifindex, the l4 bit
 * and the count aside, none of which is in a flow key) and the same rule (slot and tag;
 * the rule set does not matter: a flow's rule is the same across sets while slot and tag
 * are). */
static __always_inline int acl_ventry_holds(const struct acl_ventry *x, const struct acl_vkey *vk, int fam,
                                            const struct acl_flow_key *fk)
{
	__u64 m2 = fam == 4 ? ACL_VKEY_TAIL_MASK : ~0ull;
	__u64 m5 = fam == 4 ? ~ACL_VC_COUNT_MASK : ACL_VKEY6_TAIL_MASK;

	return x->gen && (x->meta & ACL_SLOT_MASK) == fk->slot && x->tag == fk->tag &&
	       ((x->key.p[0] ^ vk->p[0]) | (x->key.p[1] ^ vk->p[1]) | ((x->key.p[2] ^ vk->p[2]) & m2) |
	        (x->key.p[3] ^ vk->p[3]) | (x->key.p[4] ^ vk->p[4]) | ((x->key.p[5] ^ vk->p[5]) & m5)) == 0;
}

/* The rate limiter's flow key of a packed key (acl_vkey_of backwards; a verdict-cache
 * entry's count bits are masked out) and the rule's slot and tag: addresses in network
 * order (IPv4 in the first 4 bytes), ports (or ICMP type and code) in host order, protocol,
 * family. Written as six 64-bit stores: the rate limiter compares and hashes flow keys 64
 * bits at a time, and a load that spans several smaller stores cannot be forwarded from
 * the store buffer (a stall of several ns). */
static __always_inline void acl_vkey_fk(const struct acl_vkey *k, struct acl_flow_key *fk, __u32 slot, __u32 tag)
{
	const __u64 *p = k->p;
	__u64 *w = (__u64 *)fk;

#define ACL_NET64(x) ((__u64)bpf_htonl((__u32)(x)) | (__u64)bpf_htonl((__u32)((x) >> 32)) << 32)
	if (p[5] & ACL_VK6_FAMILY) {
		w[0] = ACL_NET64(p[0]);
		w[1] = ACL_NET64(p[1]);
		w[2] = ACL_NET64(p[2]);
		w[3] = ACL_NET64(p[3]);
		w[4] = (__u16)p[4] | (__u64)(__u16)(p[4] >> 32) << 16 | (p[5] & ACL_PROTO_MAX) << 32 | 6ull << 48;
	} else {
		w[0] = bpf_htonl((__u32)p[0]);
		w[1] = 0;
		w[2] = bpf_htonl((__u32)(p[0] >> 32));
		w[3] = 0;
		w[4] = (__u16)p[1] | (__u64)(__u16)(p[1] >> 32) << 16 | (p[2] & ACL_PROTO_MAX) << 32 | 4ull << 48;
	}
#undef ACL_NET64
	w[5] = slot | (__u64)tag << 32;
}
_Static_assert(sizeof(struct acl_flow_key) == 48 && __builtin_offsetof(struct acl_flow_key, sport) == 32 &&
                       __builtin_offsetof(struct acl_flow_key, family) == 38 &&
                       __builtin_offsetof(struct acl_flow_key, slot) == 40,
               "acl_vkey_fk writes the flow key as six 64-bit words");

/* The rate limiter's flow key of an entry. */
static __always_inline void acl_ventry_fk(const struct acl_ventry *x, struct acl_flow_key *fk)
{
	acl_vkey_fk(&x->key, fk, x->meta & ACL_SLOT_MASK, x->tag);
}

/* Adds `n` suppressed packets to the flow's `seen` with the fetching (fully ordered) form
 * of the add. For a count handed over by a CPU's entry, call it AFTER the entry's count was
 * zeroed: any CPU that sees the count in `seen` then sees the zeroing too (report.h:
 * acl_cached_counts never finds one count in both; the plain form of the add orders
 * nothing on weakly ordered CPUs). */
static __always_inline void acl_seen_add(struct acl_flow_state *st, __u64 n)
{
	__u64 old = __sync_fetch_and_add(&st->seen, n);

	asm volatile("" : : "r"(old)); /* used: keeps the fetching form */
}

/* Before an entry takes another key or rule set: moves the packets it suppressed into its
 * flow's `seen` (as the flow memory does, report.h: acl_cache_hand_over), zeroed first. */
static __always_inline void acl_ventry_hand_over(struct acl_ventry *x)
{
	struct acl_flow_key fk __attribute__((aligned(8)));
	struct acl_flow_state *st;
	__u32 n = acl_ventry_count(x);

	if (!n)
		return;
	x->key.p[5] &= ~ACL_VC_COUNT_MASK;
	acl_ventry_fk(x, &fk);
	st = bpf_map_lookup_elem(&acl_flows, &fk);
	if (st)
		acl_seen_add(st, n);
}

/* The best record's meta and tag for the packet's key (meta ACL_VC_NO_RULE: none): from
 * this CPU's verdict cache when it holds the key for the rule set in force, otherwise from
 * the trees (and remembered, in the first way from the preferred one that holds no verdict
 * of this rule set, else in a random way). `h`: acl_flow_set_of. Returns the cache entry
 * that now holds the verdict (NULL without the cache), for the rate limiter's fast path. */
static __always_inline struct acl_ventry *acl_lookup(const __u8 *blob, struct acl_pkt *pkt, const struct acl_vkey *vk,
                                                     int fam, __u32 flags, __u32 h, struct acl_verdict *out)
{
	__u32 gen = acl_w(blob, ACL_H_GEN), rec;
	struct acl_ventry *e = NULL;
	struct acl_vset *vs;

	if (!(flags & ACL_FLAG_NO_CACHE)) {
		vs = bpfkit_cpu_elem(&acl_verdicts, ACL_VC_SETS, h & (ACL_VC_SETS - 1));
		if (vs) {
#pragma unroll
			for (int i = 0; i < ACL_VC_WAYS; i++) {
				struct acl_ventry *x = &vs->w[acl_way_at(h, i)];

				if (x->gen == gen && acl_ventry_is(x, vk)) {
					acl_count(ACL_STAT_CACHED, 0);
					out->meta = x->meta;
					out->tag = x->tag;
					return x;
				}
			}
#pragma unroll
			for (int i = ACL_VC_WAYS - 1; i >= 0; i--)
				if (vs->w[acl_way_at(h, i)].gen != gen)
					e = &vs->w[acl_way_at(h, i)];
			if (!e)
				e = &vs->w[bpf_get_prandom_u32() & (ACL_VC_WAYS - 1)];
		}
	}
	acl_count(ACL_STAT_WALKS, 0);
	if (fam == 4)
		rec = acl_classify_v4((const struct acl_blob_mem *)blob, (const struct acl_key_mem *)pkt->key);
	else
		rec = acl_classify_v6((const struct acl_blob_mem *)blob, (const struct acl_key_mem *)pkt->key);
	out->meta = rec ? acl_w(blob, rec + 1) : ACL_VC_NO_RULE;
	out->tag = rec ? acl_w(blob, rec + 2) : 0;
	if (e) {
		acl_ventry_hand_over(e);
		e->key = *vk;
		e->meta = out->meta;
		e->tag = out->tag;
		e->until = 0;
		e->gen = gen;
	}
	return e;
}

#endif
