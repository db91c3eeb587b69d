// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Plain XDP forwarding, the reference bench/chain.bench.mjs sets ServiceChainer's
 * `forward: 'xdp'` against: the chainer's own forwarding code (bpfkit_chain_fwd.h) on
 * every IPv4/IPv6 frame, with mark 0 and nothing else - no classification, no metadata,
 * no TC copier. Counters: fwd_counters[slot], the same outcome slots as the chainer's. */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} fwd_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	bpfkit_count(bpf_map_lookup_elem(&fwd_counters, &slot), bytes);
}

#include "bpfkit_chain_fwd.h"

SEC("xdp")
int xdp_fwd_ref(struct xdp_md *ctx)
{
	return chain_fwd(ctx, 0, 0, 0) == XDP_REDIRECT ? XDP_REDIRECT : XDP_PASS;
}
