// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): the tree walk (the per-CPU verdict cache in
 * front of it is vcache.h). */
#ifndef ACL_CLASSIFY_H
#define ACL_CLASSIFY_H

#include "maps.h"
#include "hash.h"

/* Pointer to record `r` (a word offset), or NULL if it would not fit in the blob. The
 * offset is bounded once, so the fields are read at constant offsets from it. */
static __always_inline const __u32 *acl_rec(const __u8 *blob, __u32 r, const int dims)
{
	__u64 off = (__u64)r << 2;

	if (off > ACL_BLOB_BYTES - 4 * (ACL_REC_HDR + 2 * dims))
		return NULL;
	return (const __u32 *)(blob + off);
}

/* Pointer `p` leads to a node or a leaf to load: neither ACL_PTR_EMPTY nor ACL_PTR_REC | a
 * record (acl_blob.h), both of which end the walk without a load. */
static __always_inline int acl_ptr_loads(__u32 p)
{
	return p - 1 < ACL_PTR_REC - 1;
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
                                          const __u32 roots_at, const __u32 ovl_at)
{
	const __u32 *hdr = (const __u32 *)blob; /* header words: indices below ACL_HDR_WORDS, no mask */
	__u32 best_prio = 0xffffffffu, best = 0;
	__u32 ntrees = hdr[ntrees_at];
	/* the trees' (root, best prio, root ctl) triples, stepped through by pointer: indexed by
	 * t, each tree's head took twice the instructions (the index computed again from t) */
	const __u32 *rt = hdr + roots_at;

	for (__u32 t = 0; t < ACL_MAX_TREES; t++, rt += ACL_ROOT_WORDS) {
		__u32 p, ctl, cnt;
		__u64 leaf;

		if (t >= ntrees)
			break;
		if (rt[1] >= best_prio)
			continue; /* nothing in this tree can beat the match we have */
		p = rt[0];
		/* the root's ctl from the header, not from the node: a tree's walk is a chain of
		 * dependent loads (ctl, key word, child, ...), one link shorter this way */
		ctl = rt[2];
		if (acl_ptr_loads(p)) {
			for (int i = 0; i < ACL_MAX_DEPTH; i++) {
				__u64 off;
				__u32 v;

				if (ctl & ACL_LEAF)
					break;
				v = key[ctl & (ACL_KEY_WORDS - 1)];
				v = (v >> ((ctl >> 8) & 31)) & ((1u << ((ctl >> 16) & 31)) - 1);
				off = (__u64)(p + 1 + v) << 2;
				if (off > ACL_BLOB_BYTES - 4)
					break;
				p = *(const __u32 *)(blob + off);
				if (!acl_ptr_loads(p))
					break;
				off = (__u64)p << 2;
				if (off > ACL_BLOB_BYTES - 4)
					break;
				ctl = *(const __u32 *)(blob + off);
			}
		}
		if (p == ACL_PTR_EMPTY)
			continue;
		if (p & ACL_PTR_REC) {
			const __u32 *rec = acl_rec(blob, p & ~ACL_PTR_REC, dims);

			if (rec && rec[0] < best_prio && acl_match(rec, key, dims)) {
				best_prio = rec[0];
				best = p & ~ACL_PTR_REC;
			}
			continue;
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
	/* the overlay: records added since the compile, in no order (ACL_H_*_OVL_AT, _N) */
	__u32 on = hdr[ovl_at + 1], oat = hdr[ovl_at];

	for (__u32 j = 0; j < ACL_OVL_MAX; j++) {
		const __u32 *rec;
		__u64 off = ((__u64)oat + j) << 2;
		__u32 r;

		asm volatile("" : "+r"(off));
		if (j >= on || off > ACL_BLOB_BYTES - 4)
			break;
		r = *(const __u32 *)(blob + off);
		rec = acl_rec(blob, r, dims);
		if (!rec)
			break;
		if (rec[0] < best_prio && acl_match(rec, key, dims)) {
			best_prio = rec[0];
			best = r;
		}
	}
	return best;
}

/* The walk for each family as a global function: the verifier checks a global function once,
 * by itself, and the program's paths see only its result. Inlined, the walk of up to
 * ACL_MAX_TREES trees was checked again on every path that reaches it (cache miss, each
 * family), which took the program past the verifier's budget of 1M instructions. */
struct acl_blob_mem {
	__u8 b[ACL_BLOB_BYTES];
};
struct acl_key_mem {
	__u32 w[ACL_KEY_WORDS];
};

__noinline __u32 acl_classify_v4(const struct acl_blob_mem *blob, const struct acl_key_mem *key)
{
	if (!blob || !key)
		return 0;
	return acl_classify(blob->b, key->w, ACL_V4_DIMS, ACL_H_V4_TREES, ACL_H_V4_ROOTS, ACL_H_V4_OVL_AT);
}

__noinline __u32 acl_classify_v6(const struct acl_blob_mem *blob, const struct acl_key_mem *key)
{
	if (!blob || !key)
		return 0;
	return acl_classify(blob->b, key->w, ACL_V6_DIMS, ACL_H_V6_TREES, ACL_H_V6_ROOTS, ACL_H_V6_OVL_AT);
}

#endif
