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

static __always_inline void acl_vkey_of(struct acl_vkey *v, const struct acl_pkt *pkt)
{
	const volatile __u32 *k = pkt->key;

#pragma unroll
	for (int i = 0; i < ACL_VKEY_WORDS / 2; i++)
		v->p[i] = ((__u64)k[2 * i + 1] << 32) | k[2 * i];
}

/* The best record for the packet's key (0: none): from this CPU's verdict cache when it
 * holds the key for the rule set in force, otherwise from the trees (and remembered, in
 * the set's first way that holds no verdict of this rule set, else in a random way). */
static __always_inline __u32 acl_lookup(const __u8 *blob, struct acl_pkt *pkt, int fam, __u32 flags)
{
	__u32 gen = acl_w(blob, ACL_H_GEN), rec, at;
	struct acl_ventry *e = NULL;
	struct acl_vset *vs = NULL;
	struct acl_vkey v;

	if (!(flags & ACL_FLAG_NO_CACHE)) {
		acl_vkey_of(&v, pkt);
		at = acl_slot64(v.p, ACL_VKEY_WORDS / 2, ACL_VC_SETS);
		vs = bpf_map_lookup_elem(&acl_verdicts, &at);
		if (vs) {
#pragma unroll
			for (int w = 0; w < ACL_VC_WAYS; w++) {
				if (vs->w[w].gen == gen && acl_eq64(vs->w[w].key.p, v.p, ACL_VKEY_WORDS / 2)) {
					acl_count(ACL_STAT_CACHED, 0);
					return vs->w[w].rec;
				}
			}
#pragma unroll
			for (int w = ACL_VC_WAYS - 1; w >= 0; w--)
				if (vs->w[w].gen != gen)
					e = &vs->w[w];
			if (!e)
				e = &vs->w[bpf_get_prandom_u32() & (ACL_VC_WAYS - 1)];
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

#endif
