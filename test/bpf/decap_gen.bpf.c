// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Traffic generator for live-frames mode (XdpProgram.generate) that re-stamps the first
 * 128 bytes of every frame from a template before transmitting it (XDP_TX).
 *
 * Why not plain xdp_tx: live-frames mode copies the packet into each page once, when the
 * page pool creates the page, and recycles pages without copying again. A receiver that
 * changes the packet in place (the Decapsulator writes its metadata over the dead outer
 * UDP/VXLAN headers and rewrites the inner MAC) would hand corrupted frames back to the
 * generator. Stamping costs the same for every scenario a benchmark compares. */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define STAMP 128

/* the first STAMP bytes of the frame (frames must be at least STAMP bytes long); read
 * through volatile loads so the compiler cannot fold the (zero) initial value */
const volatile __u64 tmpl[STAMP / 8];

SEC("xdp")
int xdp_stamp_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + STAMP > end)
		return XDP_DROP;
#pragma unroll
	for (int i = 0; i < STAMP / 8; i++)
		((__u64 *)data)[i] = tmpl[i];
	return XDP_TX;
}
