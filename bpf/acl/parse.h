// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): the packet into a key of 32-bit words (the
 * rate limiter's flow key is made from the packed key, and only when a packet needs it:
 * report.h). */
#ifndef ACL_PARSE_H
#define ACL_PARSE_H

/* extension headers walked before the upper-layer protocol counts as unknown */
#ifdef BPFKIT_PARSING_H
#error "acl/parse.h sets BPFKIT_MAX_IPV6_EXT: include it before parsing.h"
#endif
#define BPFKIT_MAX_IPV6_EXT 8
#include "parsing.h"
#include "maps.h"

/* Reads the ports (or ICMP type/code) at the cursor into key words `at` and `at` + 1 (the
 * protocol is in word `at` + 2). Returns 1 if present. */
static __always_inline int acl_parse_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt, const int at)
{
	__u32 p = pkt->key[at + 2];

	if (p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP || p == IPPROTO_UDPLITE || p == IPPROTO_DCCP) {
		__be16 *ports = bpfkit_pull(c, 4);

		if (!ports)
			return 0;
		pkt->key[at] = bpf_ntohs(ports[0]);
		pkt->key[at + 1] = bpf_ntohs(ports[1]);
		return 1;
	}
	if (p == IPPROTO_ICMP || p == 58 /* IPPROTO_ICMPV6 */) {
		__u8 *tc = bpfkit_pull(c, 2);

		if (!tc)
			return 0;
		pkt->key[at] = tc[0];
		pkt->key[at + 1] = tc[1];
		return 1;
	}
	return -1; /* a protocol without selectable L4 fields */
}

/* After the IP header(s): a later fragment has no L4 header; otherwise read the ports or
 * ICMP type/code (a cut-short header counts as unparsed). */
static __always_inline void acl_l4(struct bpfkit_cursor *c, struct acl_pkt *pkt, __u32 len, int later_fragment,
                                   const int at)
{
	int l4;

	if (later_fragment) {
		pkt->flags |= ACL_EV_FRAGMENT;
		acl_count(ACL_STAT_FRAGMENTS, len);
		return;
	}
	l4 = acl_parse_l4(c, pkt, at);
	if (l4 > 0)
		pkt->flags |= ACL_EV_L4;
	else if (l4 == 0)
		acl_count(ACL_STAT_UNPARSED, len);
}

/* The key words after the addresses and the L4 fields (sport, dport, proto from `at`):
 * ifindex and l4. */
static __always_inline void acl_key_tail(struct xdp_md *ctx, struct acl_pkt *pkt, const int at)
{
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
		pkt->key[0] = bpf_ntohl(iph->saddr);
		pkt->key[1] = bpf_ntohl(iph->daddr);
		pkt->key[ACL_V4_PORTS_AT + 2] = ip;
		acl_l4(&c, pkt, len, bpfkit_ipv4_is_later_fragment(iph), ACL_V4_PORTS_AT);
		acl_key_tail(ctx, pkt, ACL_V4_PORTS_AT);
		return 4;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		struct bpfkit_ipv6_ext_info info = {};
		int nh = bpfkit_parse_ipv6(&c, &ip6);

		if (nh < 0)
			return -1;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pkt->key[i] = bpf_ntohl(ip6->saddr.in6_u.u6_addr32[i]);
			pkt->key[4 + i] = bpf_ntohl(ip6->daddr.in6_u.u6_addr32[i]);
		}
		nh = bpfkit_skip_ipv6_ext(&c, nh, &info);
		if (nh < 0) {
			pkt->key[ACL_V6_PORTS_AT + 2] = ACL_PROTO_UNKNOWN;
			acl_count(ACL_STAT_UNPARSED, len);
		} else {
			pkt->key[ACL_V6_PORTS_AT + 2] = nh;
			acl_l4(&c, pkt, len, info.frag_offset != 0, ACL_V6_PORTS_AT);
		}
		acl_key_tail(ctx, pkt, ACL_V6_PORTS_AT);
		return 6;
	}
	return 0;
}

#endif
