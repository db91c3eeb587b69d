// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Test program for DoubleBuffer (lib/core/maps/swap.ts) and bpfkit_swap.h. Each packet looks
 * its configuration up once through the swap slot and checks that the two words it
 * reads, 128 bytes apart, agree: a copy written while packets use it could show them
 * disagreeing. Outcomes are counted per CPU: [0] value even, [1] value odd, [2] words
 * disagree (a torn configuration), [3] no configuration. Returns the configured verdict. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bpfkit_swap.h"

struct swap_cfg {
	__u32 first;
	__u32 _gap[31];
	__u32 last;
	__u32 verdict;
};

struct swap_copy {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct swap_cfg);
};

struct swap_copy cfg_a SEC(".maps");
struct swap_copy cfg_b SEC(".maps");
BPFKIT_SWAP_SLOT(cfg, struct swap_copy);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} outcomes SEC(".maps");

/* A function with the value type in its signature, so that clang emits the whole of
 * struct swap_cfg into BTF (see bpfkit_swap.h). */
static __noinline int judge(const struct swap_cfg *c)
{
	__u32 k = 3;
	__u64 *n;

	if (c)
		k = c->first != c->last ? 2 : (c->first & 1);
	n = bpf_map_lookup_elem(&outcomes, &k);
	if (n)
		*n += 1;
	return c ? (int)c->verdict : XDP_ABORTED;
}

SEC("xdp")
int xdp_swap(struct xdp_md *ctx)
{
	return judge(bpfkit_swap_current(&cfg));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
