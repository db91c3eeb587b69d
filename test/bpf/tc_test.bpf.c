// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sched_cls programs for the TcProgram / TcLink tests.
 *
 * tc_mark, tc_mark_alt: count packets and bytes into counters[0] / counters[1], set
 *   skb->mark to `mark` when it is not 0, return `verdict`. Two programs writing
 *   different slots prove an atomic replace (every packet counted by exactly one).
 * tc_order_a/b/c: shift their id (1, 2, 3) into skb->mark and count the result in
 *   `order`, then continue with the next program (TC_ACT_UNSPEC = TCX_NEXT). A packet
 *   that ran a then b leaves keys 0x1 and 0x12; b then a leaves 0x2 and 0x21.
 * tc_ctx: reports what a test run's __sk_buff held (ifindex, ingress_ifindex, metadata
 *   length and first word) in cb[], adds `mark_add` to skb->mark, sets priority,
 *   returns `verdict`.
 * tc_empty: returns TC_ACT_OK, nothing else (the floor for run-time figures). */
#include "bpfkit_helpers.h"
#include <linux/pkt_cls.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} order SEC(".maps");

const volatile __u32 mark = 0;
const volatile __s32 verdict = TC_ACT_OK;
const volatile __u32 mark_add = 1;

static __always_inline int count_into(struct __sk_buff *skb, __u32 slot)
{
	bpfkit_count(bpf_map_lookup_elem(&counters, &slot), skb->len);
	if (mark)
		skb->mark = mark;
	return verdict;
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	return count_into(skb, 0);
}

SEC("tc")
int tc_mark_alt(struct __sk_buff *skb)
{
	return count_into(skb, 1);
}

static __always_inline int order_step(struct __sk_buff *skb, __u32 id)
{
	__u32 key = (skb->mark << 4) | id;
	__u64 one = 1, *n;

	skb->mark = key;
	n = bpf_map_lookup_elem(&order, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&order, &key, &one, BPF_NOEXIST);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_order_a(struct __sk_buff *skb)
{
	return order_step(skb, 1);
}

SEC("tc")
int tc_order_b(struct __sk_buff *skb)
{
	return order_step(skb, 2);
}

SEC("tc")
int tc_order_c(struct __sk_buff *skb)
{
	return order_step(skb, 3);
}

SEC("tc")
int tc_ctx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *meta = (void *)(long)skb->data_meta;

	skb->cb[0] = skb->ifindex;
	skb->cb[1] = skb->ingress_ifindex;
	skb->cb[2] = data - meta;
	if (meta + sizeof(__u32) <= data)
		skb->cb[3] = *(__u32 *)meta;
	skb->mark += mark_add;
	skb->priority = 7;
	return verdict;
}

SEC("tc")
int tc_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
