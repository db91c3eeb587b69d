/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * XdpPipeline stages: several XDP programs on one interface, in a defined order,
 * without libxdp's dispatcher (it needs freplace, which many kernels refuse).
 *
 * The pipeline's root program (bpf/pipeline.bpf.c) is what is attached. It reads the
 * stage table through a swap slot (bpfkit_swap.h), sets this CPU's cursor and tail-calls
 * the first stage. A stage, when done, hands its verdict to bpfkit_pipeline_next():
 * XDP_PASS continues with the next stage by a tail call; any other verdict, or the end of
 * the chain, ends the packet's walk there and is returned.
 *
 * Atomic changes: the program array has two halves. A new chain is written into the
 * idle half, then the stage table (base, count) is flipped through the swap slot. A packet
 * reads the table once, at the root, and walks the half it found, so it meets the whole
 * old chain or the whole new one; after the flip's grace period no packet is still in
 * the old half and user space clears it.
 *
 * A stage object includes this header and is loaded with bpfkit_pipeline_stage = 1 and
 * with its bpfkit_stages / bpfkit_pipeline_cursor / bpfkit_pipeline_stats maps replaced
 * by the pipeline's (BpfObject maps.reuse). Loaded alone (bpfkit_pipeline_stage = 0) it
 * never looks at them: the verifier removes the dead branch, so a standalone program
 * pays nothing.
 *
 * XDP runs a packet's root and stages on one CPU without preemption, so the per-CPU
 * cursor belongs to one packet from the root to the last stage.
 */
#ifndef BPFKIT_PIPELINE_H
#define BPFKIT_PIPELINE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BPFKIT_PIPELINE_MAX_STAGES 8
#define BPFKIT_PIPELINE_SLOTS (2 * BPFKIT_PIPELINE_MAX_STAGES)
/* verdicts counted per stage position: XDP_ABORTED .. XDP_REDIRECT */
#define BPFKIT_PIPELINE_VERDICTS 5

/* One packet's walk: the next slot to call and the end of its half. */
struct bpfkit_pipeline_cursor {
	__u32 next; /* slot of the next stage */
	__u32 end; /* one past the last slot of the chain this packet walks */
	__u32 base; /* first slot of that chain */
	__u32 scratch; /* zeroed by the root for each packet; the stages' own use */
};

/* The stage table, what the swap slot points at. */
struct bpfkit_pipeline_table {
	__u32 base; /* 0 or BPFKIT_PIPELINE_MAX_STAGES */
	__u32 count; /* stages in the chain */
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, BPFKIT_PIPELINE_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} bpfkit_stages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpfkit_pipeline_cursor);
} bpfkit_pipeline_cursor SEC(".maps");

/* Packets per (stage position, verdict) where a walk ended: position * 5 + verdict. A
 * walk that ends at position p with XDP_PASS passed every stage up to p. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFKIT_PIPELINE_MAX_STAGES *BPFKIT_PIPELINE_VERDICTS);
	__type(key, __u32);
	__type(value, __u64);
} bpfkit_pipeline_stats SEC(".maps");

/* Set by user space before load: 1 when this object is a pipeline stage. */
const volatile __u32 bpfkit_pipeline_stage = 0;

static __always_inline struct bpfkit_pipeline_cursor *bpfkit_pipeline_cursor_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&bpfkit_pipeline_cursor, &zero);
}

static __always_inline void bpfkit_pipeline_count_end(const struct bpfkit_pipeline_cursor *c, int verdict)
{
	__u32 pos = c->next - c->base - 1; /* the stage that ends the walk */
	__u32 v = (__u32)verdict < BPFKIT_PIPELINE_VERDICTS ? (__u32)verdict : 0;
	__u32 k = pos * BPFKIT_PIPELINE_VERDICTS + v;
	__u64 *n;

	if (pos >= BPFKIT_PIPELINE_MAX_STAGES)
		return;
	n = bpf_map_lookup_elem(&bpfkit_pipeline_stats, &k);
	if (n)
		*n += 1;
}

/*
 * Tail call into `slot` with a constant key at every call site: the x86-64 JIT then
 * patches a direct jump instead of an indirect one, which retpolines make slow (15 ns a
 * stage with a variable key on our machines). The switch costs a few compares.
 */
#define BPFKIT_PIPELINE_CASE(n)                                                                                        \
	case n:                                                                                                        \
		bpf_tail_call_static(ctx, &bpfkit_stages, n);                                                          \
		break
static __always_inline void bpfkit_pipeline_jump(struct xdp_md *ctx, __u32 slot)
{
	switch (slot) {
		BPFKIT_PIPELINE_CASE(0);
		BPFKIT_PIPELINE_CASE(1);
		BPFKIT_PIPELINE_CASE(2);
		BPFKIT_PIPELINE_CASE(3);
		BPFKIT_PIPELINE_CASE(4);
		BPFKIT_PIPELINE_CASE(5);
		BPFKIT_PIPELINE_CASE(6);
		BPFKIT_PIPELINE_CASE(7);
		BPFKIT_PIPELINE_CASE(8);
		BPFKIT_PIPELINE_CASE(9);
		BPFKIT_PIPELINE_CASE(10);
		BPFKIT_PIPELINE_CASE(11);
		BPFKIT_PIPELINE_CASE(12);
		BPFKIT_PIPELINE_CASE(13);
		BPFKIT_PIPELINE_CASE(14);
		BPFKIT_PIPELINE_CASE(15);
	}
}
_Static_assert(BPFKIT_PIPELINE_SLOTS == 16, "bpfkit_pipeline_jump has a case per slot");

/*
 * The end of a stage: `return bpfkit_pipeline_next(ctx, verdict);`. Alone, returns
 * `verdict`. In a pipeline, XDP_PASS tail-calls the next stage (and does not return);
 * otherwise the walk ends here and is counted.
 */
static __always_inline int bpfkit_pipeline_next(struct xdp_md *ctx, int verdict)
{
	struct bpfkit_pipeline_cursor *c;
	__u32 slot;

	if (!bpfkit_pipeline_stage)
		return verdict;
	c = bpfkit_pipeline_cursor_get();
	if (!c)
		return verdict;
	if (verdict == XDP_PASS && c->next < c->end) {
		slot = c->next++;
		bpfkit_pipeline_jump(ctx, slot);
		/* an empty slot: never in a built chain; ends the walk here, counted */
		c->next--;
	}
	bpfkit_pipeline_count_end(c, verdict);
	return verdict;
}

#endif /* BPFKIT_PIPELINE_H */
