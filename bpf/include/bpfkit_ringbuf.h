/* Ring buffers whose losses are counted.
 *
 * bpf_ringbuf_reserve() returns NULL when the ring is full (the consumer is behind or
 * paused). A program that just returns then loses the event silently. These helpers
 * count every failed reservation in a per-CPU array next to the ring, which bpfkit's
 * RingBuffer reads (stats().lost, the 'lost' event).
 *
 *   #include "bpfkit_ringbuf.h"
 *
 *   BPFKIT_RINGBUF(events, 1 << 20);          // ring 'events' + counter 'events_lost'
 *
 *   struct event *e = bpfkit_rb_reserve(events, sizeof(*e));
 *   if (!e)
 *           return XDP_PASS;                  // counted in events_lost
 *   e->... = ...;
 *   bpfkit_rb_submit(e);
 *
 * From JS: obj.ringBuffer('events', eventCodec) finds 'events_lost' by name.
 *
 * Programs that declare their ring buffer themselves can pass any per-CPU array with
 * one __u64 slot to bpfkit_rb_reserve_counted(&ring, &counter, size), and name the
 * counter in JS with { lostMap: 'my_counter' }.
 */
#ifndef BPFKIT_RINGBUF_H
#define BPFKIT_RINGBUF_H

#include "bpfkit_helpers.h"

/* Declares ring buffer map `name` of `bytes` bytes (a power of two and a multiple of
 * the page size) and its loss counter `name##_lost` (per-CPU array, one __u64). The
 * kernel truncates map names to 15 characters: keep `name` at 10 or fewer so that
 * `name_lost` stays whole in `bpftool map` listings. */
#define BPFKIT_RINGBUF(name, bytes)                          \
	struct {                                             \
		__uint(type, BPF_MAP_TYPE_RINGBUF);          \
		__uint(max_entries, (bytes));                \
	} name SEC(".maps");                                 \
	struct {                                             \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);     \
		__uint(max_entries, 1);                      \
		__type(key, __u32);                          \
		__type(value, __u64);                        \
	} name##_lost SEC(".maps")

/* Adds one to the per-CPU loss counter `lost_map` (slot 0). */
static __always_inline void bpfkit_rb_count_lost(void *lost_map)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(lost_map, &zero);

	if (c)
		*c += 1; /* per-CPU slot: no other CPU writes it */
}

/* bpf_ringbuf_reserve() that counts failures in `lost_map`. `size` must be a
 * compile-time constant (a verifier rule for ring buffer reservations). */
static __always_inline void *bpfkit_rb_reserve_counted(void *ring, void *lost_map, __u64 size)
{
	void *rec = bpf_ringbuf_reserve(ring, size, 0);

	if (!rec)
		bpfkit_rb_count_lost(lost_map);
	return rec;
}

/* bpf_ringbuf_output() (copy `size` bytes from `data`) that counts failures. */
static __always_inline long bpfkit_rb_output_counted(void *ring, void *lost_map, void *data, __u64 size,
						     __u64 flags)
{
	long err = bpf_ringbuf_output(ring, data, size, flags);

	if (err)
		bpfkit_rb_count_lost(lost_map);
	return err;
}

/* Shorthands for rings declared with BPFKIT_RINGBUF (pass the map's name). */
#define bpfkit_rb_reserve(name, size) bpfkit_rb_reserve_counted(&name, &name##_lost, (size))
#define bpfkit_rb_output(name, data, size) bpfkit_rb_output_counted(&name, &name##_lost, (data), (size), 0)

/* Commit or drop a reserved record. The default wakes the consumer only when it has
 * caught up (the kernel's adaptive wake-up); BPF_RB_NO_WAKEUP / BPF_RB_FORCE_WAKEUP
 * can be passed to bpf_ringbuf_submit() directly. */
#define bpfkit_rb_submit(rec) bpf_ringbuf_submit((rec), 0)
#define bpfkit_rb_discard(rec) bpf_ringbuf_discard((rec), 0)

#endif
