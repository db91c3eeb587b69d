// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): the slot hash and the 64-bit compare that
 * the verdict cache (classify.h) and the rate limiter's flow memory (report.h) share. */
#ifndef ACL_HASH_H
#define ACL_HASH_H

#include "acl_blob.h"

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

_Static_assert(sizeof(struct acl_flow_key) % 8 == 0 && sizeof(struct acl_flow_key) <= 56,
               "acl_eq64/acl_slot64 see a flow key whole");

static __always_inline int acl_key_eq(const struct acl_flow_key *a, const struct acl_flow_key *b)
{
	return acl_eq64((const __u64 *)a, (const __u64 *)b, sizeof(*a) / 8);
}

#endif
