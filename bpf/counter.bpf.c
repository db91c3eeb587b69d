// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counter: counts packets and bytes per CPU into counters[slot] and passes them.
 * Two programs writing different slots let tests and the demo prove an atomic
 * program swap (every packet is counted by exactly one of them). */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} counters SEC(".maps");

/* XDP action returned after counting; configurable before load (default XDP_PASS). */
const volatile __u32 verdict = XDP_PASS;

static __always_inline int count_into(struct xdp_md *ctx, __u32 slot)
{
	__u64 len = ctx->data_end - ctx->data;
	bpfkit_count(bpf_map_lookup_elem(&counters, &slot), len);
	return verdict;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	return count_into(ctx, 0);
}

SEC("xdp")
int xdp_count_alt(struct xdp_md *ctx)
{
	return count_into(ctx, 1);
}
