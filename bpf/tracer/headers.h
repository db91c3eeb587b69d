/* PacketTracer: reading a packet's IPv4/IPv6 and TCP/UDP/SCTP headers from an sk_buff, and
 * the inner headers of VXLAN / Geneve packets. Included by bpf/tracer.bpf.c after its
 * `filter` (the tunnels flag decides whether inner headers are read). */
#ifndef BPFKIT_TRACER_HEADERS_H
#define BPFKIT_TRACER_HEADERS_H

/* What a packet's headers say (family 0: not read); for inner headers, which tunnel. */
struct hdr {
	__u8 family;
	__u8 proto;
	__u16 sport;
	__u16 dport;
	__u16 tunnel;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* How packet bytes are read. Where the kernel types an sk_buff's data pointers (head, data)
 * as read-only untrusted memory (recent kernels), the programs load the bytes directly: a
 * load the JIT guards (a fault reads zeros), no helper call, which is most of what a packet
 * the filter rejects costs. Elsewhere the verifier refuses such a load, and
 * lib/modules/tracer/tracer.ts loads the programs again with probe_reads set: every read is
 * then a bpf_probe_read_kernel() call. Read-only data: the verifier drops the other path. */
const volatile __u32 probe_reads = 0;

/* size (1, 2, 4) bytes at src into dst; 0, or an error (probe_reads only). */
static __always_inline int rd(void *dst, __u32 size, const unsigned char *src)
{
	if (probe_reads)
		return bpf_probe_read_kernel(dst, size, src);
	if (size == 4)
		*(__u32 *)dst = *(const __u32 *)src;
	else if (size == 2)
		*(__u16 *)dst = *(const __u16 *)src;
	else
		*(__u8 *)dst = *src;
	return 0;
}

/* The TCP/UDP/SCTP ports at l4 into p (left 0 when unreadable). */
static __always_inline void read_ports(const unsigned char *l4, struct hdr *p)
{
	__be16 ports[2];

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP)
		return;
	if (probe_reads) {
		if (bpf_probe_read_kernel(ports, sizeof(ports), l4))
			return;
	} else {
		ports[0] = *(const __be16 *)l4;
		ports[1] = *(const __be16 *)(l4 + 2);
	}
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
}

/* Reads an IPv4/IPv6 header at `l3` and the TCP/UDP/SCTP ports after it; *l4 is where
 * the transport header starts (0 for a later fragment). Direct loads: only the fields the
 * filter and the event need. */
static __always_inline int read_l3_direct(unsigned char *l3, struct hdr *p, unsigned char **l4)
{
	__u8 first = *l3;

	*l4 = 0;
	if ((first >> 4) == 4) {
		__u32 s = *(__u32 *)(l3 + 12), d = *(__u32 *)(l3 + 16);
		__u16 frag = *(__u16 *)(l3 + 6);

		p->family = 4;
		p->proto = l3[9];
		__builtin_memcpy(p->saddr, &s, 4);
		__builtin_memcpy(p->daddr, &d, 4);
		if (frag & bpf_htons(0x1fff))
			return 1; /* a later fragment: no ports */
		*l4 = l3 + (first & 0xf) * 4;
	} else if ((first >> 4) == 6) {
		__u64 a[4];

		a[0] = *(__u64 *)(l3 + 8);
		a[1] = *(__u64 *)(l3 + 16);
		a[2] = *(__u64 *)(l3 + 24);
		a[3] = *(__u64 *)(l3 + 32);
		p->family = 6;
		p->proto = l3[6];
		__builtin_memcpy(p->saddr, &a[0], 16);
		__builtin_memcpy(p->daddr, &a[2], 16);
		*l4 = l3 + 40;
	} else {
		return 0;
	}
	read_ports(*l4, p);
	return 1;
}

/* The same with bpf_probe_read_kernel (probe_reads). */
static __always_inline int read_l3_probe(unsigned char *l3, struct hdr *p, unsigned char **l4)
{
	__u8 first;

	*l4 = 0;
	if (bpf_probe_read_kernel(&first, 1, l3))
		return 0;
	if ((first >> 4) == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), l3))
			return 0;
		p->family = 4;
		p->proto = ip.protocol;
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		if (ip.frag_off & bpf_htons(0x1fff))
			return 1; /* a later fragment: no ports */
		*l4 = l3 + ip.ihl * 4;
	} else if ((first >> 4) == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3))
			return 0;
		p->family = 6;
		p->proto = ip6.nexthdr;
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		*l4 = l3 + sizeof(ip6);
	} else {
		return 0;
	}
	read_ports(*l4, p);
	return 1;
}

static __always_inline int read_l3(unsigned char *l3, struct hdr *p, unsigned char **l4)
{
	return probe_reads ? read_l3_probe(l3, p, l4) : read_l3_direct(l3, p, l4);
}

#define VXLAN_PORT 4789
#define GENEVE_PORT 6081

/* The inner Ethernet + IP headers of a VXLAN or Geneve packet whose UDP header is at l4. */
static __always_inline void read_inner(unsigned char *l4, __u16 dport, struct hdr *in)
{
	unsigned char *eth, *l4in;
	__be16 type;

	if (dport == VXLAN_PORT) {
		eth = l4 + 8 + 8; /* UDP, VXLAN header */
		in->tunnel = 1;
	} else {
		__u8 g[4] __attribute__((aligned(4))); /* ver(2) opt_len(6), flags, protocol type */

		if (rd(g, sizeof(g), l4 + 8) || g[2] != 0x65 || g[3] != 0x58)
			return; /* not Transparent Ethernet Bridging */
		eth = l4 + 8 + 8 + (g[0] & 0x3f) * 4;
		in->tunnel = 2;
	}
	if (rd(&type, sizeof(type), eth + 12))
		return;
	if (type == bpf_htons(ETH_P_8021Q)) {
		eth += 4;
		if (rd(&type, sizeof(type), eth + 12))
			return;
	}
	if (type != bpf_htons(ETH_P_IP) && type != bpf_htons(ETH_P_IPV6))
		return;
	if (!read_l3(eth + 14, in, &l4in))
		in->tunnel = 0;
}

/* Reads the IPv4/IPv6 and TCP/UDP headers of `skb`, and with the tunnels filter the
 * inner ones of VXLAN/Geneve packets. At receive the network header offset is not reset
 * yet, but skb->data points at it (the link header was pulled). */
static __always_inline int read_headers(struct sk_buff *skb, int at_data, struct hdr *p, struct hdr *in)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u16 nh = skb->network_header;
	unsigned char *l3, *l4;

	if (proto && proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	if (at_data || nh == 0xffff)
		l3 = skb->data;
	else
		l3 = skb->head + nh;
	if (!read_l3(l3, p, &l4))
		return 0;
	if ((filter.flags & F_TUNNELS) && l4 && p->proto == IPPROTO_UDP &&
	    (p->dport == VXLAN_PORT || p->dport == GENEVE_PORT))
		read_inner(l4, p->dport, in);
	return 1;
}

#endif
