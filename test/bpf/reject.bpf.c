// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A program the verifier must reject: it reads packet data without a bounds check. */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	return data[12] == 0x08 ? XDP_PASS : XDP_DROP;
}
