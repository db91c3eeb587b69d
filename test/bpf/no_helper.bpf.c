// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A program calling a helper no kernel has (id 9999), as a program built for a newer
 * kernel calls one the running kernel lacks: the verifier answers "invalid func unknown#9999".
 */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static long (*const bpf_not_in_any_kernel)(void) = (void *)9999;

SEC("xdp")
int xdp_no_helper(struct xdp_md *ctx)
{
	return bpf_not_in_any_kernel() ? XDP_PASS : XDP_DROP;
}
