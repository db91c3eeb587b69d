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
 * all 6; the last word of each holds proto (9 bits), l4 (bit 16), the family (bits 24-31,
 * so the families never meet) and the ingress ifindex (high half). */
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
	v->p[5] = ((__u64)k[11] << 32) | k[10] | k[12] << 16 | 6 << 24;
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
#define ACL_VKEY_TAIL_MASK 0xff00ffffull /* of the last word: proto and family */
static __always_inline __u32 acl_flow_set_of(const struct acl_vkey *v, int fam)
{
	__u64 m[ACL_VC_KEY64];

#pragma unroll
	for (int i = 0; i < ACL_VC_KEY64; i++)
		m[i] = v->p[i];
	if (fam == 4)
		m[2] &= ACL_VKEY_TAIL_MASK;
	else
		m[5] &= ACL_VKEY_TAIL_MASK;
	return acl_slot64(m, ACL_VC_KEY64, ACL_VC_SETS * ACL_VC_WAYS);
}

/* The i-th way to look at in the set of `h` (acl_flow_set_of), starting at its preferred one. */
#define acl_way_at(h, i) ((((h) / ACL_VC_SETS) + (i)) & (ACL_VC_WAYS - 1))

struct acl_verdict {
	__u32 rec; /* the best record's word offset, 0: none */
	__u32 meta; /* its meta and tag (when rec != 0) */
	__u32 tag;
};

/* The best record for the packet's key (rec 0: none), with its meta and tag: from this
 * CPU's verdict cache when it holds the key for the rule set in force, otherwise from the
 * trees (and remembered, in the first way from the preferred one that holds no verdict of
 * this rule set, else in a random way). `h`: acl_flow_set_of. */
static __always_inline void acl_lookup(const __u8 *blob, struct acl_pkt *pkt, const struct acl_vkey *vk, int fam,
                                       __u32 flags, __u32 h, struct acl_verdict *out)
{
	__u32 gen = acl_w(blob, ACL_H_GEN), rec;
	struct acl_ventry *e = NULL;
	struct acl_vset *vs;

	if (!(flags & ACL_FLAG_NO_CACHE)) {
		vs = acl_cpu_elem(&acl_verdicts, ACL_VC_SETS, h & (ACL_VC_SETS - 1));
		if (vs) {
#pragma unroll
			for (int i = 0; i < ACL_VC_WAYS; i++) {
				struct acl_ventry *x = &vs->w[acl_way_at(h, i)];

				if (x->gen == gen && acl_eq64(x->key.p, vk->p, ACL_VC_KEY64)) {
					acl_count(ACL_STAT_CACHED, 0);
					out->rec = x->rec;
					out->meta = x->meta;
					out->tag = x->tag;
					return;
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
	out->rec = rec;
	out->meta = rec ? acl_w(blob, rec + 1) : 0;
	out->tag = rec ? acl_w(blob, rec + 2) : 0;
	if (e) {
		e->key = *vk;
		e->rec = rec;
		e->meta = out->meta;
		e->tag = out->tag;
		e->gen = gen;
	}
}

#endif
