// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A test stage for XdpPipeline: appends its id to the packet's trail (the cursor's
 * scratch word, 4 bits a stage) and continues with `verdict`. If the walk ends here, it
 * counts the trail in `trails` (shared by every stage of a test through maps.reuse):
 * a test then sees which chain, in which order, judged each packet. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bpfkit_pipeline.h"

const volatile __u32 stage_id = 1; /* 1..15 */
const volatile __u32 verdict = XDP_PASS; /* what this stage decides */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} trails SEC(".maps");

static __noinline int end(__u32 trail)
{
	__u64 zero = 0, *n = bpf_map_lookup_elem(&trails, &trail);

	if (!n) {
		/* another CPU may insert it first: either way it exists afterwards */
		bpf_map_update_elem(&trails, &trail, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&trails, &trail);
	}
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("xdp")
int xdp_stage(struct xdp_md *ctx)
{
	struct bpfkit_pipeline_cursor *c = bpfkit_pipeline_cursor_get();
	__u32 trail = 0;
	int v;

	if (c) {
		c->scratch = c->scratch << 4 | stage_id;
		trail = c->scratch;
	}
	v = bpfkit_pipeline_next(ctx, verdict);
	/* reached only when the walk ends at this stage */
	end(trail);
	return v;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
