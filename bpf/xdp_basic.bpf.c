// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Minimal XDP programs: the floors benchmarks compare against, and the transmit
 * program that turns BPF_PROG_TEST_RUN live-frames mode into a traffic generator
 * (every frame it is fed is sent out of the interface it "arrived" on). */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}
