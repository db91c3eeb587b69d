// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): the packet into a key of 32-bit words and
 * into the rate limiter's flow key. */
#ifndef ACL_PARSE_H
#define ACL_PARSE_H

/* extension headers walked before the upper-layer protocol counts as unknown */
#ifdef BPFKIT_PARSING_H
#error "acl/parse.h sets BPFKIT_MAX_IPV6_EXT: include it before parsing.h"
#endif
#define BPFKIT_MAX_IPV6_EXT 8
#include "parsing.h"
#include "maps.h"

/* Reads the ports (or ICMP type/code) at the cursor. Returns 1 if present. */
static __always_inline int acl_parse_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt)
{
	__u16 p = pkt->fk.proto;

	if (p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP || p == IPPROTO_UDPLITE || p == IPPROTO_DCCP) {
		__be16 *ports = bpfkit_pull(c, 4);

		if (!ports)
			return 0;
		pkt->fk.sport = bpf_ntohs(ports[0]);
		pkt->fk.dport = bpf_ntohs(ports[1]);
		return 1;
	}
	if (p == IPPROTO_ICMP || p == 58 /* IPPROTO_ICMPV6 */) {
		__u8 *tc = bpfkit_pull(c, 2);

		if (!tc)
			return 0;
		pkt->fk.sport = tc[0];
		pkt->fk.dport = tc[1];
		return 1;
	}
	return -1; /* a protocol without selectable L4 fields */
}

/* After the IP header(s): a later fragment has no L4 header; otherwise read the ports or
 * ICMP type/code (a cut-short header counts as unparsed). */
static __always_inline void acl_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt, __u32 len, int later_fragment)
{
	int l4;

	if (later_fragment) {
		pkt->flags |= ACL_EV_FRAGMENT;
		acl_count(ACL_STAT_FRAGMENTS, len);
		return;
	}
	l4 = acl_parse_l4(c, pkt);
	if (l4 > 0)
		pkt->flags |= ACL_EV_L4;
	else if (l4 == 0)
		acl_count(ACL_STAT_UNPARSED, len);
}

/* The key words after the addresses: sport, dport, proto, ifindex, l4 (from `at`); and
 * the flow key's sport..family rewritten as one 64-bit store, as its addresses were (the
 * rate limiter compares flow keys 64 bits at a time, and a load that spans several
 * smaller stores cannot be forwarded from the store buffer: a stall of several ns). */
static __always_inline void acl_key_tail(struct xdp_md *ctx, struct acl_pkt *pkt, const int at)
{
	*(__u64 *)&pkt->fk.sport =
	        pkt->fk.sport | (__u32)pkt->fk.dport << 16 | (__u64)pkt->fk.proto << 32 | (__u64)pkt->fk.family << 48;
	pkt->key[at] = pkt->fk.sport;
	pkt->key[at + 1] = pkt->fk.dport;
	pkt->key[at + 2] = pkt->fk.proto;
	pkt->key[at + 3] = ctx->ingress_ifindex;
	pkt->key[at + 4] = pkt->flags & ACL_EV_L4;
}

/* Parses the packet into `pkt`. Returns 4 or 6, 0 for non-IP, -1 for a broken IP header. */
static __always_inline int acl_parse(struct xdp_md *ctx, struct acl_pkt *pkt, __u32 len)
{
	struct bpfkit_cursor c = bpfkit_cursor_xdp(ctx);
	struct ethhdr *eth;
	int proto = bpfkit_parse_eth(&c, &eth, NULL);

	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		int ip = bpfkit_parse_ipv4(&c, &iph);

		if (ip < 0)
			return -1;
		pkt->fk.family = 4;
		pkt->fk.proto = ip;
		*(__u64 *)pkt->fk.src = iph->saddr; /* bytes 0-3, and zeros to 7: one store */
		*(__u64 *)pkt->fk.dst = iph->daddr;
		pkt->key[0] = bpf_ntohl(iph->saddr);
		pkt->key[1] = bpf_ntohl(iph->daddr);
		acl_l4(&c, pkt, len, bpfkit_ipv4_is_later_fragment(iph));
		acl_key_tail(ctx, pkt, ACL_V4_PORTS_AT);
		return 4;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		struct bpfkit_ipv6_ext_info info = {};
		int nh = bpfkit_parse_ipv6(&c, &ip6);

		if (nh < 0)
			return -1;
		pkt->fk.family = 6;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pkt->key[i] = bpf_ntohl(ip6->saddr.in6_u.u6_addr32[i]);
			pkt->key[4 + i] = bpf_ntohl(ip6->daddr.in6_u.u6_addr32[i]);
		}
#pragma unroll
		for (int i = 0; i < 2; i++) { /* 64-bit stores: see acl_key_tail */
			((__u64 *)pkt->fk.src)[i] =
			        ip6->saddr.in6_u.u6_addr32[2 * i] | (__u64)ip6->saddr.in6_u.u6_addr32[2 * i + 1] << 32;
			((__u64 *)pkt->fk.dst)[i] =
			        ip6->daddr.in6_u.u6_addr32[2 * i] | (__u64)ip6->daddr.in6_u.u6_addr32[2 * i + 1] << 32;
		}
		nh = bpfkit_skip_ipv6_ext(&c, nh, &info);
		if (nh < 0) {
			pkt->fk.proto = ACL_PROTO_UNKNOWN;
			acl_count(ACL_STAT_UNPARSED, len);
		} else {
			pkt->fk.proto = nh;
			acl_l4(&c, pkt, len, info.frag_offset != 0);
		}
		acl_key_tail(ctx, pkt, ACL_V6_PORTS_AT);
		return 6;
	}
	return 0;
}

#endif
