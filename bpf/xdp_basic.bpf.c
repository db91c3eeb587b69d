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

/* Sets the source port of each IPv4/UDP frame to the next of `tx_flows` ports from
 * `tx_port_base` (tx_flows a power of two), then transmits it: the live-frames generator
 * of a flood of many flows (live frames keep what the program wrote, so every frame
 * sent is rewritten). UDP checksums are left as they are: send frames without one. */
const volatile __u32 tx_flows = 1;
const volatile __u16 tx_port_base = 1024;
__u32 tx_next;

SEC("xdp")
int xdp_tx_flows(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	if (data + 14 + 20 + 8 > end || p[12] != 0x08 || p[13] != 0x00 || p[14] != 0x45 || p[23] != 17)
		return XDP_TX;
	*(__be16 *)(p + 34) = bpf_htons(tx_port_base + (tx_next++ & (tx_flows - 1)));
	return XDP_TX;
}
