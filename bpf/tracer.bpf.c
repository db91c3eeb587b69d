/* PacketTracer (lib/modules/tracer): follows packets through the kernel's network stack
 * from BTF tracepoints (tp_btf), which every kernel with BTF has: no kprobes, no
 * trampolines. Each point reads what it needs from the sk_buff with CO-RE reads, applies
 * the filter (read-only data set before load: unset checks are removed by the verifier),
 * and sends matching events to one ring buffer, losses counted (bpfkit_ringbuf.h).
 *
 * A pcap-filter expression runs in the kernel too (tracer/cbpf.h): where a packet enters a
 * device (receive, queue), its verdict remembered for the packet's drop or consume.
 *
 * Events are keyed by the sk_buff's address, so user space can assemble one packet's path
 * (its timeline). FIB lookups carry no skb: they are tied to the packet this CPU received
 * last when the lookup's addresses are that packet's. Transmits are tied to the packet this
 * CPU queued last (the driver may already have freed the skb when net_dev_xmit fires).
 */
#include "bpfkit_helpers.h"
#include "bpfkit_ringbuf.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tracer/kernel.h"
#include "tracer/event.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct tracer_filter filter = {};
/* Benchmarks only (bench/tracer.bench.mjs, "tracer's points, empty programs"): every program
 * returns at once, so the cost left is the kernel's (tracepoint, BPF trampoline, program
 * call), the floor of what a filter that rejects a packet can cost. */
const volatile __u32 empty_programs = 0;

BPFKIT_RINGBUF(events, 1 << 22);

#include "tracer/headers.h" /* reads the packet's headers; uses `filter` */
#include "tracer/cbpf.h" /* pcap-filter expressions: the classic BPF interpreter */
#include "tracer/filter.h" /* the host, protocol, port and where filters; uses `filter` */

/* Per-CPU counters: events seen at the points, events that matched the filter, pcap-filter
 * expression runs and verdicts remembered instead of a run. */
enum { S_SEEN, S_MATCHED, S_PCAP_RUNS, S_PCAP_REMEMBERED, S_MAX };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, S_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tracer_stats SEC(".maps");

/* The last matching packet this CPU received (for FIB lookups) or queued (for transmits). */
struct last_pkt {
	__u64 skb;
	__u32 netns;
	__u32 ifindex;
	struct hdr p;
	struct hdr in;
};
enum { L_RX, L_TX, L_MAX };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L_MAX);
	__type(key, __u32);
	__type(value, struct last_pkt);
} last SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&tracer_stats, &slot);

	if (c)
		*c += 1;
}

static __always_inline struct last_pkt *last_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&last, &slot);
}

static __always_inline __u32 dev_netns(struct net_device *dev)
{
	return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

struct emit_args {
	__u64 skb;
	struct net_device *dev;
	__u32 netns;
	__u32 ifindex;
	__u32 mark;
	__u32 len;
	__u32 reason;
	__s32 result;
	__u32 aux;
	__u16 point;
};

static __always_inline void emit(const struct emit_args *a, const struct hdr *p, const struct hdr *in, const void *gw,
                                 __u32 gw_len)
{
	struct tracer_event *e = bpfkit_rb_reserve(events, sizeof(*e));

	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->skb = a->skb;
	e->netns = a->netns;
	e->ifindex = a->ifindex;
	e->mark = a->mark;
	e->len = a->len;
	e->reason = a->reason;
	e->result = a->result;
	e->aux = a->aux;
	e->cpu = bpf_get_smp_processor_id();
	e->point = a->point;
	e->family = p->family;
	e->proto = p->proto;
	e->sport = p->sport;
	e->dport = p->dport;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	if (in && in->tunnel) {
		e->tunnel = in->tunnel;
		e->in_family = in->family;
		e->in_proto = in->proto;
		e->in_sport = in->sport;
		e->in_dport = in->dport;
		__builtin_memcpy(e->in_saddr, in->saddr, 16);
		__builtin_memcpy(e->in_daddr, in->daddr, 16);
	}
	if (gw && gw_len == 16)
		bpf_probe_read_kernel(e->gw, 16, gw);
	else if (gw && gw_len == 6)
		bpf_probe_read_kernel(e->gw, 6, gw);
	else if (gw && gw_len == 4)
		bpf_probe_read_kernel(e->gw, 4, gw);
	struct net_device *dev = a->dev;

	if (dev)
		BPF_CORE_READ_STR_INTO(&e->ifname, dev, name);
	bpfkit_rb_submit(e);
}

/* The device of a packet at a point. Not at the drop or consume of a received packet a
 * socket owns: queued to a socket, skb->dev shares its storage with dev_scratch (UDP keeps
 * its truesize, length and checksum flags there), so it is no pointer, and nothing holds
 * the device for it anyway. A load through it faults (the JIT's exception table makes it
 * 0, at the cost of a general-protection fault per packet, which slowed every UDP receive
 * on the machine while a tracer was attached). Such a packet's interface is skb_iif, its
 * namespace its socket's. */
static __always_inline struct net_device *skb_dev(struct sk_buff *skb, __u16 point)
{
	if ((point == P_DROP || point == P_CONSUME) && skb->sk && skb->skb_iif)
		return 0;
	return skb->dev;
}

/* The interface index of a packet: its device's, or with none the one it arrived on. */
static __always_inline __u32 skb_ifindex(struct sk_buff *skb, struct net_device *dev)
{
	return dev ? dev->ifindex : skb->skb_iif;
}

/* The namespace of a packet: its device's, or with none its socket's. */
static __always_inline __u32 skb_netns(struct sk_buff *skb, struct net_device *dev)
{
	return dev ? dev->nd_net.net->ns.inum : BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
}

/* An event at an sk_buff: filter, remember for FIB lookups / transmits, emit. The skb is a
 * tracepoint argument (BTF-typed), so its fields and its device's are read directly: each
 * a load the JIT guards, not a helper call (most of what a non-matching packet costs). */
static __always_inline void on_skb(__u16 point, struct sk_buff *skb, int at_data, __u32 reason)
{
	struct emit_args a = {.skb = (__u64)skb, .point = point, .reason = reason};
	struct hdr p = {}, in = {};
	struct net_device *dev = skb_dev(skb, point);

	count(S_SEEN);
	/* remember only the LAST packet received/queued here, and forget a freed one: a
	 * later skb at a reused address must never inherit its headers */
	if (point == P_RECEIVE || point == P_QUEUE) {
		struct last_pkt *l = last_slot(point == P_RECEIVE ? L_RX : L_TX);

		if (l)
			l->skb = 0;
	} else if (point == P_DROP || point == P_CONSUME) {
		struct last_pkt *l = last_slot(L_TX);

		if (l && l->skb == a.skb)
			l->skb = 0;
		l = last_slot(L_RX);
		if (l && l->skb == a.skb)
			l->skb = 0;
	}
	/* a pcap-filter expression: at a drop or consume, the verdict of the packet's receive
	 * or queue on this CPU when there was one (tracer/cbpf.h) */
	int entry = point == P_RECEIVE || point == P_QUEUE, verdict = -1, replay = 0;
	struct pcap_memo *m = 0;
	__u64 head = 0;

	if (filter.flags & F_PCAP) {
		if (!skb->protocol)
			return; /* not a packet (netlink, unix, ...): no expression matches it */
		m = pcap_memo_slot(skb);
		head = (__u64)skb->head;
		if (entry) {
			/* this packet's memo from where it entered a device before, for a replay;
			 * forgotten now, whatever the filters say below */
			replay = m && m->skb == a.skb;
			if (m)
				m->skb = 0;
		} else {
			verdict = pcap_remembered(m, skb, head);
			if (verdict >= 0)
				count(S_PCAP_REMEMBERED);
			if (verdict == 0)
				return;
		}
	}
	/* the interface, mark and namespace filters, each field read only when filtered on
	 * (the event's are read once the packet matched) */
	if ((filter.flags & F_IFINDEX) && skb_ifindex(skb, dev) != filter.ifindex)
		return;
	if ((filter.flags & F_MARK) && (skb->mark & filter.mark_mask) != filter.mark)
		return;
	if ((filter.flags & F_NETNS) && skb_netns(skb, dev) != filter.netns)
		return;
	if ((filter.flags & F_PCAP) && verdict < 0) {
		if (replay)
			verdict = pcap_replay(m, skb, at_data);
		if (verdict >= 0) {
			count(S_PCAP_REMEMBERED);
			pcap_remember_again(m, skb, head);
		} else {
			count(S_PCAP_RUNS);
			verdict = cbpf_run(skb, at_data);
			if (entry)
				pcap_remember(m, skb, head, verdict);
		}
		if (!verdict)
			return;
	}
	read_headers(skb, at_data, &p, &in);
	if (!match_pkt(&p) && !(in.tunnel && match_pkt(&in)))
		return;
	count(S_MATCHED);
	a.dev = dev;
	a.ifindex = skb_ifindex(skb, dev);
	a.netns = skb_netns(skb, dev);
	a.mark = skb->mark;
	a.len = skb->len;
	if (point == P_RECEIVE || point == P_QUEUE) {
		struct last_pkt *l = last_slot(point == P_RECEIVE ? L_RX : L_TX);

		if (l) {
			l->skb = a.skb;
			l->netns = a.netns;
			l->ifindex = a.ifindex;
			l->p = p;
			l->in = in;
		}
	}
	emit(&a, &p, &in, 0, 0);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tr_receive, struct sk_buff *skb)
{
	if (empty_programs)
		return 0;
	on_skb(P_RECEIVE, skb, 1, 0);
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tr_queue, struct sk_buff *skb)
{
	if (empty_programs)
		return 0;
	on_skb(P_QUEUE, skb, 0, 0);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(tr_drop, struct sk_buff *skb, void *location, int reason)
{
	if (empty_programs)
		return 0;
	on_skb(P_DROP, skb, 0, (__u32)reason);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(tr_consume, struct sk_buff *skb)
{
	if (empty_programs)
		return 0;
	on_skb(P_CONSUME, skb, 0, 0);
	return 0;
}

/* The skb may be gone once the driver took it: only the packet this CPU just queued is
 * reported, with the headers read at queueing. */
SEC("tp_btf/net_dev_xmit")
int BPF_PROG(tr_transmit, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	if (empty_programs)
		return 0;
	struct last_pkt *l = last_slot(L_TX);
	struct emit_args a = {.skb = (__u64)skb, .point = P_TRANSMIT, .dev = dev, .len = len, .result = rc};

	count(S_SEEN);
	if (!l || l->skb != a.skb)
		return 0;
	count(S_MATCHED);
	l->skb = 0; /* one transmit per queueing */
	a.ifindex = BPF_CORE_READ(dev, ifindex);
	a.netns = dev_netns(dev);
	emit(&a, &l->p, &l->in, 0, 0);
	return 0;
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(tr_fib, __u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc, int err)
{
	if (empty_programs)
		return 0;
	struct emit_args a = {.point = P_FIB_LOOKUP, .reason = tb_id, .result = err};
	struct last_pkt *l = last_slot(L_RX);
	struct net_device *out = 0;
	struct hdr p = {.family = 4}, in = {};
	__u32 saddr = flp->saddr, daddr = flp->daddr; /* typed arguments: direct reads */
	const void *gw = 0;
	__u32 gw_len = 0;

	count(S_SEEN);
	if ((filter.flags & F_PCAP) && !(l && l->skb))
		return 0; /* an expression needs the packet: only the lookup of a traced one */
	if (nhc) /* a failed lookup has none: null-check before any access */
		out = nhc->nhc_dev;
	__builtin_memcpy(p.saddr, &saddr, 4);
	__builtin_memcpy(p.daddr, &daddr, 4);
	a.ifindex = flp->__fl_common.flowic_iif;
	if (!a.ifindex || a.ifindex == 1)
		a.ifindex = flp->__fl_common.flowic_oif;
	a.mark = flp->__fl_common.flowic_mark;
	if (l && l->skb && l->p.family == 4 && !__builtin_memcmp(l->p.saddr, p.saddr, 4) &&
	    !__builtin_memcmp(l->p.daddr, p.daddr, 4)) {
		/* the lookup for the packet this CPU is receiving: it matched already */
		a.skb = l->skb;
		a.netns = l->netns;
		p = l->p;
		in = l->in;
	} else {
		if (filter.flags & F_PCAP)
			return 0; /* an expression needs the packet */
		p.proto = flp->__fl_common.flowic_proto;
		if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) {
			p.sport = bpf_ntohs(flp->uli.ports.sport);
			p.dport = bpf_ntohs(flp->uli.ports.dport);
		}
		a.netns = out ? out->nd_net.net->ns.inum : 0;
		if (!match_where(a.ifindex, a.netns, a.mark, 1) || !match_pkt(&p))
			return 0; /* a route lookup has no inner headers to match */
	}
	count(S_MATCHED);
	if (nhc && out) {
		a.aux = BPF_CORE_READ(out, ifindex);
		if (BPF_CORE_READ(nhc, nhc_gw_family) == 2 /* AF_INET */) {
			gw = __builtin_preserve_access_index(&nhc->nhc_gw.ipv4);
			gw_len = 4;
		} else if (BPF_CORE_READ(nhc, nhc_gw_family) == 10 /* AF_INET6 */) {
			gw = __builtin_preserve_access_index(&nhc->nhc_gw.ipv4); /* the union's start */
			gw_len = 16;
		}
	}
	emit(&a, &p, &in, gw, gw_len);
	return 0;
}

static __always_inline int eq16(const __u8 *x, const __u8 *y)
{
	__u64 a[2], b[2];

	__builtin_memcpy(a, x, 16);
	__builtin_memcpy(b, y, 16);
	return a[0] == b[0] && a[1] == b[1];
}

/* IPv6 route types (RTN_*) as the lookup's result, as the kernel's fib6 tracepoint words
 * them (ip6_rt_type_to_error): 0 for unicast/local, else a negative errno. */
static __always_inline int rt6_error(__u8 type)
{
	switch (type) {
	case 6:
		return -22; /* RTN_BLACKHOLE: -EINVAL */
	case 7:
		return -113; /* RTN_UNREACHABLE: -EHOSTUNREACH */
	case 8:
		return -13; /* RTN_PROHIBIT: -EACCES */
	case 9:
		return -11; /* RTN_THROW: -EAGAIN */
	default:
		return 0;
	}
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(tr_fib6, const struct net *net, const struct fib6_result *res, struct fib6_table *table,
             const struct flowi6 *flp)
{
	if (empty_programs)
		return 0;
	struct emit_args a = {.point = P_FIB_LOOKUP};
	struct last_pkt *l = last_slot(L_RX);
	struct hdr p = {.family = 6}, in = {};
	struct fib6_nh *nh = 0;
	struct net_device *out = 0;
	const void *gw = 0;

	count(S_SEEN);
	if ((filter.flags & F_PCAP) && !(l && l->skb))
		return 0; /* an expression needs the packet: only the lookup of a traced one */
	/* typed arguments: direct reads */
	if (table)
		a.reason = table->tb6_id;
	if (res) {
		a.result = rt6_error(res->fib6_type);
		nh = res->nh;
	}
	if (nh)
		out = nh->nh_common.nhc_dev;
	a.netns = net->ns.inum;
	for (int i = 0; i < 4; i++) {
		__u32 s6 = flp->saddr.in6_u.u6_addr32[i], d6 = flp->daddr.in6_u.u6_addr32[i];

		__builtin_memcpy(&p.saddr[i * 4], &s6, 4);
		__builtin_memcpy(&p.daddr[i * 4], &d6, 4);
	}
	a.ifindex = flp->__fl_common.flowic_iif;
	if (!a.ifindex || a.ifindex == 1)
		a.ifindex = flp->__fl_common.flowic_oif;
	a.mark = flp->__fl_common.flowic_mark;
	if (l && l->skb && l->p.family == 6 && l->netns == a.netns && eq16(l->p.saddr, p.saddr) &&
	    eq16(l->p.daddr, p.daddr)) {
		a.skb = l->skb;
		p = l->p;
		in = l->in;
	} else {
		p.proto = flp->__fl_common.flowic_proto;
		if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) {
			p.sport = bpf_ntohs(flp->uli.ports.sport);
			p.dport = bpf_ntohs(flp->uli.ports.dport);
		}
		if ((filter.flags & F_PCAP) || !match_where(a.ifindex, a.netns, a.mark, 1) || !match_pkt(&p))
			return 0; /* a pcap expression needs the packet */
	}
	count(S_MATCHED);
	if (nh && out) {
		a.aux = BPF_CORE_READ(out, ifindex);
		if (BPF_CORE_READ(nh, nh_common.nhc_gw_family) == 10 /* AF_INET6 */)
			gw = __builtin_preserve_access_index(&nh->nh_common.nhc_gw.ipv4); /* the union's start */
	}
	emit(&a, &p, &in, gw, gw ? 16 : 0);
	return 0;
}

/* Neighbour (ARP / NDP) state changes: host, interface and namespace filters apply (a
 * neighbour has no protocol, port, mark or packet for a pcap expression). */
SEC("tp_btf/neigh_update")
int BPF_PROG(tr_neigh, struct neighbour *n, const __u8 *lladdr, __u8 new_state, __u32 flags, __u32 pid)
{
	if (empty_programs)
		return 0;
	struct emit_args a = {.point = P_NEIGH_UPDATE, .reason = new_state};
	struct hdr p = {};
	int fam = BPF_CORE_READ(n, tbl, family);
	const void *key = __builtin_preserve_access_index(&n->primary_key);

	struct net_device *dev = BPF_CORE_READ(n, dev);

	count(S_SEEN);
	a.dev = dev;
	a.ifindex = BPF_CORE_READ(dev, ifindex);
	a.netns = dev_netns(dev);
	a.aux = BPF_CORE_READ(n, nud_state);
	if (fam == 2) {
		p.family = 4;
		bpf_probe_read_kernel(p.daddr, 4, key);
	} else if (fam == 10) {
		p.family = 6;
		bpf_probe_read_kernel(p.daddr, 16, key);
	}
	if (!match_where(a.ifindex, a.netns, 0, 0) || !match_host(&p))
		return 0;
	if ((filter.flags & (F_HOST4 | F_HOST6)) && !p.family)
		return 0;
	if (filter.flags & F_PCAP)
		return 0; /* a neighbour entry is not a packet */
	count(S_MATCHED);
	emit(&a, &p, 0, lladdr, lladdr ? 6 : 0);
	return 0;
}

/* XDP events carry no packet: they pass the interface and namespace filters, and only
 * when no header filter (host, protocol, port, mark, pcap expression) is set. */
static __always_inline int xdp_match(struct net_device *dev, struct emit_args *a)
{
	count(S_SEEN);
	if (filter.flags & (F_HOST4 | F_HOST6 | F_PROTO | F_PORT | F_MARK | F_PCAP))
		return 0;
	a->dev = dev;
	a->ifindex = BPF_CORE_READ(dev, ifindex);
	a->netns = dev_netns(dev);
	if (!match_where(a->ifindex, a->netns, 0, 0))
		return 0;
	count(S_MATCHED);
	return 1;
}

SEC("tp_btf/xdp_exception")
int BPF_PROG(tr_xdp_exception, struct net_device *dev, void *prog, __u32 act)
{
	if (empty_programs)
		return 0;
	struct emit_args a = {.point = P_XDP_EXCEPTION, .reason = act};
	struct hdr p = {};

	if (xdp_match(dev, &a))
		emit(&a, &p, 0, 0, 0);
	return 0;
}

static __always_inline void on_redirect(struct net_device *dev, int err, int map_type, __u32 index)
{
	struct emit_args a = {.point = P_XDP_REDIRECT, .reason = (__u32)map_type, .result = err, .aux = index};
	struct hdr p = {};

	if (xdp_match(dev, &a))
		emit(&a, &p, 0, 0, 0);
}

SEC("tp_btf/xdp_redirect")
int BPF_PROG(tr_xdp_redirect, struct net_device *dev, void *prog, void *tgt, int err, int map_type, __u32 map_id,
             __u32 index)
{
	if (empty_programs)
		return 0;
	on_redirect(dev, err, map_type, index);
	return 0;
}

SEC("tp_btf/xdp_redirect_err")
int BPF_PROG(tr_xdp_redirect_err, struct net_device *dev, void *prog, void *tgt, int err, int map_type, __u32 map_id,
             __u32 index)
{
	if (empty_programs)
		return 0;
	on_redirect(dev, err, map_type, index);
	return 0;
}
