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
 * Hot producers can skip most wake-ups: see BPFKIT_RINGBUF_WAKE and
 * bpfkit_rb_submit_every() below, and bpfkit_rb_submit_nth() for records made in a batch.
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
#define BPFKIT_RINGBUF(name, bytes)                                                                                    \
	struct {                                                                                                       \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                                                    \
		__uint(max_entries, (bytes));                                                                          \
	} name SEC(".maps");                                                                                           \
	struct {                                                                                                       \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                                               \
		__uint(max_entries, 1);                                                                                \
		__type(key, __u32);                                                                                    \
		__type(value, __u64);                                                                                  \
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
static __always_inline long bpfkit_rb_output_counted(void *ring, void *lost_map, void *data, __u64 size, __u64 flags)
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

/* Wake-up every N records.
 *
 * With the default policy a consumer that keeps up is woken (irq_work, then a context
 * switch) for nearly every record, and the producer pays for it. A hot producer can
 * instead submit with BPF_RB_NO_WAKEUP and force a wake-up every `every` records it
 * submits on a CPU, counted in a per-CPU array next to the ring:
 *
 *   BPFKIT_RINGBUF(events, 1 << 24);
 *   BPFKIT_RINGBUF_WAKE(events);               // counter 'events_wake'
 *   ...
 *   bpfkit_rb_submit_every(events, e, 256);    // instead of bpfkit_rb_submit(e)
 *
 * Records submitted after the last forced wake-up wait in the ring until the next one:
 * when the producer goes quiet, up to every - 1 records per CPU are not signalled. The
 * reader must also drain on a timer: in JS, open the ring with { drainMs } (e.g. 100),
 * which bounds how long such a tail waits. `every` of 1 wakes on every record. */
#define BPFKIT_RINGBUF_WAKE(name)                                                                                      \
	struct {                                                                                                       \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                                               \
		__uint(max_entries, 1);                                                                                \
		__type(key, __u32);                                                                                    \
		__type(value, __u64);                                                                                  \
	} name##_wake SEC(".maps")

/* bpf_ringbuf_submit() that forces a wake-up on every `every`-th record of this CPU
 * (counted in `wake_map`, a per-CPU array with one __u64) and wakes no one otherwise.
 * Without the counter slot it falls back to the default policy. */
static __always_inline void bpfkit_rb_submit_every_counted(void *rec, void *wake_map, __u64 every)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(wake_map, &zero);

	if (!n) {
		bpf_ringbuf_submit(rec, 0);
	} else if (++*n >= every) {
		*n = 0; /* per-CPU slot: no other CPU writes it */
		bpf_ringbuf_submit(rec, BPF_RB_FORCE_WAKEUP);
	} else {
		bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	}
}

#define bpfkit_rb_submit_every(name, rec, every) bpfkit_rb_submit_every_counted((rec), &name##_wake, (every))

/* For a producer that makes records in a batch and knows each one's index (a bpf_loop()
 * body, a loop over a packet's items): submits record `index` of `count` with
 * BPF_RB_NO_WAKEUP, except every `every`-th and the batch's last, which force a wake-up.
 * No counter map, no lookup per record; nothing of the batch waits for a drain timer. */
static __always_inline void bpfkit_rb_submit_nth(void *rec, __u64 index, __u64 count, __u64 every)
{
	if ((every && (index + 1) % every == 0) || index + 1 >= count)
		bpf_ringbuf_submit(rec, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

#endif
