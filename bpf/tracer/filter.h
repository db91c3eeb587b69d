/* PacketTracer (bpf/tracer.bpf.c): the filters an event must pass, from the read-only
 * `filter` set before load (unset checks are removed by the verifier): host (IPv4/IPv6
 * prefix, either address), protocol and port on the packet's headers; interface, namespace
 * and mark on where the event happened. Included after `filter` is declared. */
#ifndef BPFKIT_TRACER_FILTER_H
#define BPFKIT_TRACER_FILTER_H

static __always_inline int in6(const __u8 *a)
{
	__u32 w[4];

	__builtin_memcpy(w, a, 16);
	return (w[0] & filter.mask6[0]) == filter.host6[0] && (w[1] & filter.mask6[1]) == filter.host6[1] &&
	       (w[2] & filter.mask6[2]) == filter.host6[2] && (w[3] & filter.mask6[3]) == filter.host6[3];
}

static __always_inline int match_host(const struct hdr *p)
{
	__u32 fl = filter.flags;

	if (!(fl & (F_HOST4 | F_HOST6)))
		return 1;
	if (p->family == 4 && (fl & F_HOST4)) {
		__u32 s, d;

		__builtin_memcpy(&s, p->saddr, 4);
		__builtin_memcpy(&d, p->daddr, 4);
		return (s & filter.mask4) == filter.host4 || (d & filter.mask4) == filter.host4;
	}
	if (p->family == 6 && (fl & F_HOST6))
		return in6(p->saddr) || in6(p->daddr);
	return 0;
}

/* Header filters: host, protocol, port. A packet whose headers were not read matches
 * only when none is set. */
static __always_inline int match_pkt(const struct hdr *p)
{
	__u32 fl = filter.flags;

	if ((fl & (F_HOST4 | F_HOST6 | F_PROTO | F_PORT)) && !p->family)
		return 0;
	if (!match_host(p))
		return 0;
	if ((fl & F_PROTO) && p->proto != filter.proto)
		return 0;
	if ((fl & F_PORT) && p->sport != filter.port && p->dport != filter.port)
		return 0;
	return 1;
}

/* Where filters: interface, namespace, mark (has_mark 0: the event has none). */
static __always_inline int match_where(__u32 ifindex, __u32 netns, __u32 mark, int has_mark)
{
	__u32 fl = filter.flags;

	if ((fl & F_IFINDEX) && ifindex != filter.ifindex)
		return 0;
	if ((fl & F_NETNS) && netns != filter.netns)
		return 0;
	if ((fl & F_MARK) && (!has_mark || (mark & filter.mark_mask) != filter.mark))
		return 0;
	return 1;
}

#endif
