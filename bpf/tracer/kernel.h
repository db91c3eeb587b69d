/* The few kernel structures bpfkit's tracing programs read, declared for CO-RE.
 *
 * bpfkit builds without vmlinux.h (docs/core.md, Build choices). These declarations name
 * only the fields we read; `preserve_access_index` makes clang record each access as a
 * relocation that libbpf resolves against the running kernel's BTF at load, so offsets
 * are the kernel's, whatever its version. Fields inside anonymous unions/structs in the
 * kernel (sk_buff's mark, dev, protocol, network_header) are found by name.
 */
#ifndef BPFKIT_TRACER_KERNEL_H
#define BPFKIT_TRACER_KERNEL_H

#include <linux/types.h>
#include <linux/in6.h> /* struct in6_addr: the UAPI one is the kernel's */

#define BPFKIT_CORE __attribute__((preserve_access_index))

struct ns_common {
	unsigned int inum;
} BPFKIT_CORE;

struct net {
	struct ns_common ns;
} BPFKIT_CORE;

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
} BPFKIT_CORE;

struct sock_common {
	possible_net_t skc_net;
} BPFKIT_CORE;

struct sock {
	struct sock_common __sk_common;
} BPFKIT_CORE;

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	int skb_iif;
	unsigned int len;
	__u32 mark;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned int tail; /* sk_buff_data_t: an offset from head on 64-bit kernels */
	unsigned char *head;
	unsigned char *data;
} BPFKIT_CORE;

struct flowi_common {
	int flowic_oif;
	int flowic_iif;
	__u32 flowic_mark;
	__u8 flowic_proto;
} BPFKIT_CORE;

union flowi_uli {
	struct {
		__be16 dport;
		__be16 sport;
	} ports;
} BPFKIT_CORE;

struct flowi4 {
	struct flowi_common __fl_common;
	__be32 saddr;
	__be32 daddr;
	union flowi_uli uli;
} BPFKIT_CORE;

struct fib_nh_common {
	struct net_device *nhc_dev;
	int nhc_oif;
	__u8 nhc_gw_family;
	union {
		__be32 ipv4; /* or a struct in6_addr, from the same offset */
	} nhc_gw;
} BPFKIT_CORE;

struct flowi6 {
	struct flowi_common __fl_common;
	struct in6_addr daddr;
	struct in6_addr saddr;
	union flowi_uli uli;
} BPFKIT_CORE;

struct fib6_nh {
	struct fib_nh_common nh_common;
} BPFKIT_CORE;

struct fib6_result {
	struct fib6_nh *nh;
	__u8 fib6_type;
} BPFKIT_CORE;

struct fib6_table {
	__u32 tb6_id;
} BPFKIT_CORE;

struct neigh_table {
	int family;
} BPFKIT_CORE;

struct neighbour {
	struct neigh_table *tbl;
	__u8 nud_state;
	struct net_device *dev;
	__u8 primary_key[0];
} BPFKIT_CORE;

#endif
