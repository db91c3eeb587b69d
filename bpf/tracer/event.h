/* PacketTracer's record and filter layouts, shared with lib/modules/tracer/layout.ts
 * (keep the two in step; test/modules/tracer.test.ts catches a drift). */
#ifndef BPFKIT_TRACER_EVENT_H
#define BPFKIT_TRACER_EVENT_H

#include <linux/types.h>

/* Where an event was seen (lib/modules/tracer/layout.ts POINTS, same order). */
enum tracer_point {
	P_RECEIVE = 1, /* netif_receive_skb */
	P_QUEUE, /* net_dev_queue */
	P_TRANSMIT, /* net_dev_xmit */
	P_DROP, /* kfree_skb (reason) */
	P_CONSUME, /* consume_skb */
	P_XDP_EXCEPTION, /* xdp_exception (action) */
	P_XDP_REDIRECT, /* xdp_redirect, xdp_redirect_err */
	P_FIB_LOOKUP, /* fib_table_lookup (table, result) */
	P_NEIGH_UPDATE, /* neigh_update (old and new state) */
};

struct tracer_event {
	__u64 ts; /* bpf_ktime_get_ns() */
	__u64 skb; /* sk_buff address: the key of a packet's timeline (0: none) */
	__u32 netns; /* network namespace inode */
	__u32 ifindex;
	__u32 mark;
	__u32 len;
	__u32 reason; /* drop: skb_drop_reason; xdp: action / map type; fib: table; neigh: new state */
	__s32 result; /* transmit: driver rc; fib: 0 or -errno; xdp redirect: err */
	__u32 aux; /* fib: out ifindex; xdp redirect: target ifindex or index; neigh: old state */
	__u32 cpu;
	__u16 point;
	__u8 family; /* 4, 6 or 0 (headers not read) */
	__u8 proto;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 gw[16]; /* fib: gateway; neigh: link-layer address */
	char ifname[16];
	/* with the tunnels filter: the inner headers of a VXLAN / Geneve packet */
	__u8 in_saddr[16];
	__u8 in_daddr[16];
	__u16 in_sport;
	__u16 in_dport;
	__u8 in_family;
	__u8 in_proto;
	__u8 tunnel; /* 0: none, 1: VXLAN, 2: Geneve */
	__u8 pad;
};

enum tracer_filter_flags {
	F_HOST4 = 1 << 0,
	F_HOST6 = 1 << 1,
	F_PROTO = 1 << 2,
	F_PORT = 1 << 3,
	F_IFINDEX = 1 << 4,
	F_NETNS = 1 << 5,
	F_MARK = 1 << 6,
	F_TUNNELS = 1 << 7, /* also match the inner headers of VXLAN (4789) / Geneve (6081) */
	F_PCAP = 1 << 8, /* a pcap-filter expression (bpf/tracer/cbpf.h: pcap_len, pcap_insns) */
};

/* The filter: packets must match every set field. Set before load (read-only data), so
 * the verifier drops the checks of unset fields. */
struct tracer_filter {
	__u32 flags;
	__u32 host4; /* network order, masked */
	__u32 mask4;
	__u32 ifindex;
	__u32 netns;
	__u32 mark;
	__u32 mark_mask;
	__u16 port; /* host order */
	__u8 proto;
	__u8 pad;
	__u32 host6[4]; /* network order, masked */
	__u32 mask6[4];
};

#endif
