/* Shared includes and small helpers for bpfkit's BPF programs. */
#ifndef BPFKIT_HELPERS_H
#define BPFKIT_HELPERS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* Packet and byte counter, the value type of our per-CPU counter maps. */
struct bpfkit_counter {
	__u64 packets;
	__u64 bytes;
};

static __always_inline void bpfkit_count(struct bpfkit_counter *c, __u64 bytes)
{
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* This CPU's element `i` of a plain array of possible CPUs x `per_cpu` elements used as a
 * per-CPU one (CPU c's element i at c x per_cpu + i; user space sizes the map at load):
 * one access, where a per-CPU array's inlined lookup first loads the element's per-CPU
 * pointer from a table. NULL beyond the map. */
#define bpfkit_cpu_elem(map, per_cpu, i)                                                                               \
	({                                                                                                             \
		__u32 __k = bpf_get_smp_processor_id() * (per_cpu) + (i);                                              \
		bpf_map_lookup_elem(map, &__k);                                                                        \
	})

#endif
