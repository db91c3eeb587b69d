/* Tracing programs for test/core/tracing.test.ts (and the example in docs/tracing.md):
 * receives and drops in one network namespace counted from tp_btf, raw_tp and tracepoint
 * programs, and drops counted per (namespace, reason) for the whole machine. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "../../bpf/tracer/kernel.h"

char LICENSE[] SEC("license") = "GPL";

/* Inode of the namespace to count in (0: every namespace). */
const volatile __u32 target_netns = 0;

enum { C_RECEIVE_TP_BTF, C_KFREE_RAW_TP, C_RECEIVE_TRACEPOINT, C_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct drop_key {
	__u32 netns;
	__u32 reason;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct drop_key);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline __u32 skb_netns(struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
}

static __always_inline void bump(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counts, &slot);

	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(count_receive, struct sk_buff *skb)
{
	if (!target_netns || skb_netns(skb) == target_netns)
		bump(C_RECEIVE_TP_BTF);
	return 0;
}

SEC("raw_tp/kfree_skb")
int count_kfree(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];

	if (!target_netns || skb_netns(skb) == target_netns)
		bump(C_KFREE_RAW_TP);
	return 0;
}

/* A classic tracepoint (perf event + tracefs id): no arguments read, every namespace. */
SEC("tracepoint/net/netif_receive_skb")
int count_receive_tracepoint(void *ctx)
{
	bump(C_RECEIVE_TRACEPOINT);
	return 0;
}

/* Drops per (namespace, reason): the docs' example of a user's own tracer. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(drops_by_reason, struct sk_buff *skb, void *location, int reason)
{
	struct drop_key k = {.netns = skb_netns(skb), .reason = (__u32)reason};
	__u64 one = 1, *c = bpf_map_lookup_elem(&drops, &k);

	if (c)
		__sync_fetch_and_add(c, 1);
	else
		bpf_map_update_elem(&drops, &k, &one, BPF_NOEXIST);
	return 0;
}
