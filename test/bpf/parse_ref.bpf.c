// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The live benchmarks' "small program" reference (bench/acl.bench.mjs): parse
 * Ethernet/IPv4/UDP, one hash-map lookup keyed by the 5-tuple, one per-CPU counter,
 * drop. Everything an XDP firewall cannot avoid doing for a packet, and nothing else.
 * Packets it cannot parse are passed (and not counted). */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct ref_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 proto;
};

/* user space may put flows here; a hit counts into its slot, a miss into slot 0 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ref_key);
	__type(value, __u32);
} ref_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} ref_counters SEC(".maps");

SEC("xdp")
int xdp_parse_hash_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *udp;
	struct ref_key k = {};
	__u32 slot = 0, *v;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl < 5)
		return XDP_PASS;
	udp = (void *)iph + iph->ihl * 4;
	if ((void *)(udp + 1) > end || (iph->protocol != IPPROTO_UDP && iph->protocol != IPPROTO_TCP))
		return XDP_PASS;
	k.saddr = iph->saddr;
	k.daddr = iph->daddr;
	k.sport = udp->source;
	k.dport = udp->dest;
	k.proto = iph->protocol;
	v = bpf_map_lookup_elem(&ref_flows, &k);
	if (v)
		slot = *v & 3;
	bpfkit_count(bpf_map_lookup_elem(&ref_counters, &slot), (__u64)(end - data));
	return XDP_DROP;
}
