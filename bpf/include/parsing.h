/* Bounds-checked packet parsing shared by bpfkit's XDP and TC programs.
 *
 * A cursor walks the packet from the start; every parse_* function checks that the
 * whole header it returns lies inside [data, data_end) before anyone reads it, moves
 * the cursor past it, and returns a negative value (or NULL) when it does not fit, so
 * callers never touch bytes the verifier has not seen proven in bounds.
 *
 *   struct bpfkit_cursor c = bpfkit_cursor_xdp(ctx);     // or bpfkit_cursor_skb(skb)
 *   struct ethhdr *eth;
 *   int proto = bpfkit_parse_eth(&c, &eth, NULL);       // host-order ethertype after VLANs
 *   if (proto == ETH_P_IP) {
 *           struct iphdr *iph;
 *           int l4 = bpfkit_parse_ipv4(&c, &iph);       // IPPROTO_* or -1
 *           ...
 *   }
 *
 * Conventions: protocol numbers come back in host order; header fields stay in network
 * order (use bpf_ntohs/bpf_ntohl). Nothing here changes the packet.
 */
#ifndef BPFKIT_PARSING_H
#define BPFKIT_PARSING_H

#include "bpfkit_helpers.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#ifndef BPFKIT_MAX_VLAN_TAGS
#define BPFKIT_MAX_VLAN_TAGS 2 /* 802.1ad outer + 802.1Q inner (QinQ) */
#endif
#ifndef BPFKIT_MAX_IPV6_EXT
#define BPFKIT_MAX_IPV6_EXT 4 /* extension headers bpfkit_skip_ipv6_ext walks at most */
#endif

/* IPv4 frag_off bits (network order after bpf_htons). */
#define BPFKIT_IP_MF 0x2000
#define BPFKIT_IP_OFFSET 0x1fff

/* IPv6 extension header numbers bpfkit_skip_ipv6_ext knows how to skip. */
#define BPFKIT_IPV6_HOPOPTS 0
#define BPFKIT_IPV6_ROUTING 43
#define BPFKIT_IPV6_FRAGMENT 44
#define BPFKIT_IPV6_DSTOPTS 60

struct bpfkit_cursor {
	void *pos;
	void *end;
};

/* 802.1Q / 802.1ad tag as it follows the MAC addresses. */
struct bpfkit_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Generic IPv6 extension header start (hop-by-hop, routing, destination options). */
struct bpfkit_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-byte units, not counting the first 8 bytes */
};

struct bpfkit_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M */
	__be32 identification;
};

/* What bpfkit_skip_ipv6_ext met on its way to the upper-layer header. */
struct bpfkit_ipv6_ext_info {
	__u8 count; /* extension headers skipped */
	__u8 fragment; /* a fragment header was present */
	__u16 frag_offset; /* first nonzero fragment offset seen, 8-byte units (host order) */
	__u8 more_frags; /* an M flag was set */
};

static __always_inline struct bpfkit_cursor bpfkit_cursor_xdp(struct xdp_md *ctx)
{
	struct bpfkit_cursor c = {
	        .pos = (void *)(long)ctx->data,
	        .end = (void *)(long)ctx->data_end,
	};
	return c;
}

static __always_inline struct bpfkit_cursor bpfkit_cursor_skb(struct __sk_buff *skb)
{
	struct bpfkit_cursor c = {
	        .pos = (void *)(long)skb->data,
	        .end = (void *)(long)skb->data_end,
	};
	return c;
}

/* Bytes between the cursor and the end of the packet. */
static __always_inline __u32 bpfkit_cursor_left(const struct bpfkit_cursor *c)
{
	return c->end > c->pos ? (__u32)(c->end - c->pos) : 0;
}

/* Returns a pointer to the next `len` bytes and advances past them, or NULL (cursor
 * unchanged) if fewer remain. `len` must be a constant or verifier-bounded. */
static __always_inline void *bpfkit_pull(struct bpfkit_cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

/* Ethernet header plus up to BPFKIT_MAX_VLAN_TAGS VLAN tags. Returns the host-order
 * ethertype of what follows the tags, or -1 if the frame is too short. `vlans`
 * (optional) receives the number of tags skipped. */
static __always_inline int bpfkit_parse_eth(struct bpfkit_cursor *c, struct ethhdr **ethp, __u32 *vlans)
{
	struct ethhdr *eth = bpfkit_pull(c, sizeof(*eth));
	__u16 proto;
	__u32 n = 0;

	if (!eth)
		return -1;
	*ethp = eth;
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (int i = 0; i < BPFKIT_MAX_VLAN_TAGS; i++) {
		struct bpfkit_vlan_hdr *vh;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		vh = bpfkit_pull(c, sizeof(*vh));
		if (!vh)
			return -1;
		proto = bpf_ntohs(vh->proto);
		n++;
	}
	if (vlans)
		*vlans = n;
	return proto;
}

/* IPv4 header including options. Checks version == 4, IHL >= 5 and that IHL*4 bytes are
 * present. Returns the protocol (IPPROTO_*) or -1. */
static __always_inline int bpfkit_parse_ipv4(struct bpfkit_cursor *c, struct iphdr **iphp)
{
	struct iphdr *iph = c->pos;
	__u32 hlen;

	if ((void *)(iph + 1) > c->end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	hlen = iph->ihl * 4;
	if (c->pos + hlen > c->end)
		return -1;
	c->pos += hlen;
	*iphp = iph;
	return iph->protocol;
}

/* True if the IPv4 packet is a fragment (first or later). */
static __always_inline int bpfkit_ipv4_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(BPFKIT_IP_MF | BPFKIT_IP_OFFSET)) != 0;
}

/* True for a later fragment (offset != 0): no transport header in it. */
static __always_inline int bpfkit_ipv4_is_later_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(BPFKIT_IP_OFFSET)) != 0;
}

/* Verifies the checksum of an option-less (IHL == 5) IPv4 header: the ones' complement
 * sum of its ten 16-bit words, checksum included, must be 0xffff. */
static __always_inline int bpfkit_ipv4_csum_ok(const struct iphdr *iph)
{
	/* five 32-bit words summed in 64 bits, then folded: the same ones' complement sum as
	 * ten 16-bit words (RFC 1071: the sum is independent of the word size), half the loads */
	const __u32 *w = (const __u32 *)iph;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];

	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* IPv6 fixed header. Checks version == 6. Returns nexthdr or -1. */
static __always_inline int bpfkit_parse_ipv6(struct bpfkit_cursor *c, struct ipv6hdr **ip6p)
{
	struct ipv6hdr *ip6 = bpfkit_pull(c, sizeof(*ip6));

	if (!ip6)
		return -1;
	if (ip6->version != 6) {
		c->pos = ip6;
		return -1;
	}
	*ip6p = ip6;
	return ip6->nexthdr;
}

static __always_inline int bpfkit_ipv6_is_ext(int nexthdr)
{
	return nexthdr == BPFKIT_IPV6_HOPOPTS || nexthdr == BPFKIT_IPV6_ROUTING || nexthdr == BPFKIT_IPV6_FRAGMENT ||
	       nexthdr == BPFKIT_IPV6_DSTOPTS;
}

/* Skips up to BPFKIT_MAX_IPV6_EXT hop-by-hop, routing, destination-options and fragment
 * headers starting at `nexthdr`. Returns the upper-layer protocol number with the cursor
 * on that header, or -1 if a header is truncated or there are more than the limit.
 * Stops (returning it) at any other protocol, including AH and ESP. */
static __always_inline int bpfkit_skip_ipv6_ext(struct bpfkit_cursor *c, int nexthdr, struct bpfkit_ipv6_ext_info *info)
{
#pragma unroll
	for (int i = 0; i < BPFKIT_MAX_IPV6_EXT; i++) {
		if (!bpfkit_ipv6_is_ext(nexthdr))
			return nexthdr;
		if (nexthdr == BPFKIT_IPV6_FRAGMENT) {
			struct bpfkit_ipv6_frag_hdr *fh = bpfkit_pull(c, sizeof(*fh));
			__u16 fo;

			if (!fh)
				return -1;
			fo = bpf_ntohs(fh->frag_off);
			if (info) {
				/* several fragment headers (bogus): a later-fragment offset sticks */
				info->fragment = 1;
				if (!info->frag_offset)
					info->frag_offset = fo >> 3;
				info->more_frags |= fo & 1;
			}
			nexthdr = fh->nexthdr;
		} else {
			struct bpfkit_ipv6_opt_hdr *oh = c->pos;
			__u32 len;

			if ((void *)(oh + 1) > c->end)
				return -1;
			len = ((__u32)oh->hdrlen + 1) * 8;
			if (c->pos + len > c->end)
				return -1;
			nexthdr = oh->nexthdr;
			c->pos += len;
		}
		if (info)
			info->count++;
	}
	return bpfkit_ipv6_is_ext(nexthdr) ? -1 : nexthdr;
}

static __always_inline struct udphdr *bpfkit_parse_udp(struct bpfkit_cursor *c)
{
	return bpfkit_pull(c, sizeof(struct udphdr));
}

/* True for a multicast or broadcast Ethernet address (I/G bit set). */
static __always_inline int bpfkit_mac_is_group(const __u8 *mac)
{
	return mac[0] & 1;
}

/* a == b for two 6-byte MAC addresses (packet or stack memory). */
static __always_inline int bpfkit_mac_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

/* a == b for two 2-byte aligned 6-byte MAC addresses (an Ethernet header's, a map value's
 * field at an even offset): three 16-bit loads per side instead of six byte loads. */
static __always_inline int bpfkit_mac_equal16(const __u8 *a, const __u8 *b)
{
	const __u16 *x = (const __u16 *)a, *y = (const __u16 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2])) == 0;
}

/* *dst = *src for two 2-byte aligned MAC addresses (see bpfkit_mac_equal16). */
static __always_inline void bpfkit_mac_copy16(__u8 *dst, const __u8 *src)
{
	__u16 *d = (__u16 *)dst;
	const __u16 *s = (const __u16 *)src;

	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
}

#endif
