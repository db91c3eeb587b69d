/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ServiceChainer's optional XDP forwarding (`forward: 'xdp'`): once a packet is classified
 * and has its mark, ask the kernel's FIB what the stack would do with it - the same
 * `ip rule fwmark` rules and tables, through bpf_fib_lookup() with BPF_FIB_LOOKUP_MARK
 * (Linux >= 6.10) - and when the answer is "forward to this neighbour on this interface",
 * do it here: rewrite the MACs, decrement the TTL / hop limit and redirect. Anything else
 * (no neighbour yet, local delivery, fragmentation needed, TTL expiring, an error route,
 * an egress interface user space did not list) goes back to the stack with the mark in
 * the metadata as without forwarding; every outcome is counted.
 *
 * Included by chain.bpf.c after its counters (count()) are defined.
 */
#ifndef BPFKIT_CHAIN_FWD_H
#define BPFKIT_CHAIN_FWD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

/* Older UAPI headers lack the mark input (added in 6.10 in a union with smac/dmac). */
#ifndef BPF_FIB_LOOKUP_MARK
#define BPF_FIB_LOOKUP_MARK (1U << 5)
#endif

/* struct bpf_fib_lookup as Linux >= 6.10 lays it out: `mark` shares the place of the
 * output MACs. Same 64 bytes as the older header's struct. */
struct chain_fib {
	__u8 family;
	__u8 l4_protocol;
	__be16 sport;
	__be16 dport;
	union {
		__u16 tot_len;
		__u16 mtu_result;
	};
	__u32 ifindex;
	union {
		__u8 tos;
		__be32 flowinfo;
		__u32 rt_metric;
	};
	__u32 src[4];
	__u32 dst[4];
	union {
		struct {
			__be16 h_vlan_proto;
			__be16 h_vlan_TCI;
		};
		__u32 tbid;
	};
	union {
		__u32 mark;
		struct {
			__u8 smac[6];
			__u8 dmac[6];
		};
	};
};
_Static_assert(sizeof(struct chain_fib) == sizeof(struct bpf_fib_lookup), "chain_fib mirrors bpf_fib_lookup");

/* 1: forward in XDP (set at load; 0 removes all of this from the verified program). */
const volatile __u32 chain_forward = 0;

/* Outcome slots in chain_counters, after the classification slots (CNT_SLOTS): the
 * bpf_fib_lookup() result codes 0..9 as they are (0, success, counts redirects), then: */
#define FWD_RC_MAX 9 /* BPF_FIB_LKUP_RET_NO_SRC_ADDR */
#define FWD_TTL (FWD_RC_MAX + 1) /* TTL / hop limit would expire: the stack answers */
#define FWD_NOT_EGRESS (FWD_RC_MAX + 2) /* FIB egress not in chain_egress */
#define FWD_ERROR (FWD_RC_MAX + 3) /* the helper failed (< 0), or an unknown code */
#define FWD_UNSUPPORTED (FWD_RC_MAX + 4) /* not plain Ethernet + IPv4/IPv6 (VLAN, options...) */
#define FWD_SLOTS (FWD_RC_MAX + 5)

/* The interfaces XDP may redirect to (user space: the `egress` option). Each must take
 * XDP frames: a veth's peer needs NAPI (an XDP program or GRO on the peer), a NIC
 * ndo_xdp_xmit. Not listed: the packet goes to the stack. A hash, not a DEVMAP: a devmap
 * resolves ifindexes in the namespace of the process that writes it, and the chainer's
 * interfaces may live in another; bpf_redirect() resolves them in the packet's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} chain_egress SEC(".maps");

/* IPv4 TTL - 1 with the header checksum updated incrementally (RFC 1624): the TTL is the
 * high byte of its 16-bit word, so the sum loses 0x0100 and the checksum gains it. */
static __always_inline void chain_ttl_dec(struct iphdr *iph)
{
	__u32 sum = (__u32)iph->check + (__u32)bpf_htons(0x0100);

	iph->check = (__sum16)(sum + (sum >> 16));
	iph->ttl--;
}

/*
 * Routes the packet in XDP with `mark`. Returns XDP_REDIRECT when it did, -1 when the
 * packet should go to the stack (the outcome counted under base + FWD_*).
 */
static __always_inline int chain_fwd(struct xdp_md *ctx, __u32 mark, __u32 base, __u64 bytes)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct chain_fib fib = {};
	struct iphdr *iph = NULL;
	struct ipv6hdr *ip6 = NULL;
	long rc;

	if ((void *)(eth + 1) > end)
		goto unsupported;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		iph = (void *)(eth + 1);
		if ((void *)(iph + 1) > end || iph->ihl < 5)
			goto unsupported;
		if (iph->ttl <= 1) {
			count(base + FWD_TTL, bytes);
			return -1;
		}
		fib.family = 2; /* AF_INET */
		fib.tos = iph->tos;
		fib.l4_protocol = iph->protocol;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.src[0] = iph->saddr;
		fib.dst[0] = iph->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			goto unsupported;
		if (ip6->hop_limit <= 1) {
			count(base + FWD_TTL, bytes);
			return -1;
		}
		fib.family = 10; /* AF_INET6 */
		fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		fib.l4_protocol = ip6->nexthdr;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(fib.src, &ip6->saddr, 16);
		__builtin_memcpy(fib.dst, &ip6->daddr, 16);
	} else {
		goto unsupported;
	}
	fib.ifindex = ctx->ingress_ifindex;
	fib.mark = mark;
	rc = bpf_fib_lookup(ctx, (struct bpf_fib_lookup *)&fib, sizeof(fib), BPF_FIB_LOOKUP_MARK);
	if (rc < 0 || rc > FWD_RC_MAX) {
		count(base + FWD_ERROR, bytes);
		return -1;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(base + (__u32)rc, bytes);
		return -1;
	}
	if (!bpf_map_lookup_elem(&chain_egress, &fib.ifindex)) {
		count(base + FWD_NOT_EGRESS, bytes);
		return -1;
	}
	/* the helper wrote the neighbour's and the egress interface's MACs into fib */
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		goto unsupported;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	if (iph)
		chain_ttl_dec(iph);
	else if (ip6)
		ip6->hop_limit--;
	count(base + BPF_FIB_LKUP_RET_SUCCESS, bytes);
	return bpf_redirect(fib.ifindex, 0);

unsupported:
	count(base + FWD_UNSUPPORTED, bytes);
	return -1;
}

#endif
