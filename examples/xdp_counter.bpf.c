// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The example's own XDP program (examples/xdp-counter.mjs): counts the packets and bytes
 * an interface receives, per EtherType class (0: IPv4, 1: IPv6, 2: anything else), and
 * passes every packet on. Built by `npm run build:native` into build/examples/; by hand:
 *   clang -target bpf -O2 -g -c xdp_counter.bpf.c -o xdp_counter.bpf.o
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct counter);
} counts SEC(".maps");

SEC("xdp")
int xdp_count_by_type(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot = 2;

	if ((void *)(eth + 1) <= end) {
		if (eth->h_proto == bpf_htons(ETH_P_IP))
			slot = 0;
		else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
			slot = 1;
	}
	struct counter *c = bpf_map_lookup_elem(&counts, &slot);
	if (c) {
		c->packets++;
		c->bytes += end - data;
	}
	return XDP_PASS;
}
