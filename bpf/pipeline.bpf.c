// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* XdpPipeline's root program (see bpf/include/bpfkit_pipeline.h): reads the stage table
 * once, sets this CPU's cursor and tail-calls the first stage. An empty pipeline, or a
 * failed tail call, passes the packet (counted). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bpfkit_swap.h"
#include "bpfkit_pipeline.h"

/* The two copies of the stage table. Declared as one anonymous struct (not a named map
 * type) so that clang emits the whole value type into BTF (see bpfkit_swap.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpfkit_pipeline_table);
} pipeline_table_a SEC(".maps"), pipeline_table_b SEC(".maps");
BPFKIT_SWAP_SLOT_INIT(pipeline_table, __typeof__(pipeline_table_a), pipeline_table_a);

/* [0] packets into the root, [1] passed with no stage to run (empty pipeline or a
 * missing first stage) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pipeline_root_stats SEC(".maps");

static __always_inline void root_count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&pipeline_root_stats, &k);

	if (n)
		*n += 1;
}

SEC("xdp")
int xdp_pipeline(struct xdp_md *ctx)
{
	const struct bpfkit_pipeline_table *t = bpfkit_swap_current(&pipeline_table);
	struct bpfkit_pipeline_cursor *c = bpfkit_pipeline_cursor_get();

	root_count(0);
	if (t && c && t->count && t->count <= BPFKIT_PIPELINE_MAX_STAGES &&
	    (t->base == 0 || t->base == BPFKIT_PIPELINE_MAX_STAGES)) {
		c->base = t->base;
		c->next = t->base + 1;
		c->end = t->base + t->count;
		c->scratch = 0;
		/* does not return when the slot holds a stage */
		if (t->base)
			bpf_tail_call_static(ctx, &bpfkit_stages, BPFKIT_PIPELINE_MAX_STAGES);
		else
			bpf_tail_call_static(ctx, &bpfkit_stages, 0);
	}
	root_count(1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
