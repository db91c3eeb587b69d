// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Live-frames generator that replays a table of IPv4 5-tuples (a ClassBench trace,
 * bench/acl.bench.mjs): each frame it transmits gets the next header of the table, in a
 * cycle. Frames must be Ethernet/IPv4 without options, at least 42 bytes; the IP checksum
 * is left as it was (receivers under test do not check it) and the UDP/TCP checksum is
 * not touched (send frames without one). Live frames keep what the program wrote, so
 * every frame sent is rewritten. Runs on one CPU (XdpProgram.generate): `next` needs no
 * atomic. */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define GEN_MAX_HDRS 8192

struct gen_hdr {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 _pad[3];
};

/* set before load: the headers (network order) and how many (a power of two) */
const volatile struct gen_hdr hdrs[GEN_MAX_HDRS];
const volatile __u32 nhdrs = 1;
__u32 next;

SEC("xdp")
int xdp_trace_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 i = next++ & (nhdrs - 1) & (GEN_MAX_HDRS - 1);

	if (data + 14 + 20 + 4 > end)
		return XDP_DROP;
	p[23] = hdrs[i].proto;
	*(__be32 *)(p + 26) = hdrs[i].saddr;
	*(__be32 *)(p + 30) = hdrs[i].daddr;
	*(__be16 *)(p + 34) = hdrs[i].sport;
	*(__be16 *)(p + 36) = hdrs[i].dport;
	return XDP_TX;
}
