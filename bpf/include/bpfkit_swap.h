/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Double-buffered configuration, the kernel half of lib/core/maps/swap.ts (DoubleBuffer).
 *
 * A module's whole configuration lives in one value of a one-entry array map. Two such
 * maps (copies) are preallocated; a one-slot array of maps (the "swap slot") points at
 * the copy packets use. User space never writes the copy in use: it writes the idle one
 * and then updates the slot, which is atomic. The update syscall returns only after the
 * kernel's grace period (synchronize_rcu for map-in-map updates), so when it returns no
 * program still holds the old copy, and user space may reuse it.
 *
 * A program looks the slot up ONCE per packet (bpfkit_swap_current) and keeps the
 * pointer, so a packet is judged by one whole configuration, never a mix.
 *
 *   struct my_cfg_map { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
 *                       __type(key, __u32); __type(value, struct my_cfg); };
 *   struct my_cfg_map cfg_a SEC(".maps");
 *   struct my_cfg_map cfg_b SEC(".maps");
 *   BPFKIT_SWAP_SLOT_INIT(cfg, struct my_cfg_map, cfg_a);
 *   ...
 *   struct my_cfg *c = bpfkit_swap_current(&cfg);
 *
 * BTF: clang emits a named map struct's value type (struct my_cfg above) into BTF only
 * when the program also uses that type in a function signature or a global; otherwise
 * it is a forward declaration and libbpf refuses the object ("can't determine value
 * size"). Either declare both copies with one anonymous struct and name its type with
 * __typeof__ (bpf/pipeline.bpf.c does), or pass the configuration to a function (as
 * decap.bpf.c does):
 *
 *   struct { __uint(type, BPF_MAP_TYPE_ARRAY); ...; __type(value, struct my_cfg); }
 *           cfg_a SEC(".maps"), cfg_b SEC(".maps");
 *   BPFKIT_SWAP_SLOT_INIT(cfg, __typeof__(cfg_a), cfg_a);
 */
#ifndef BPFKIT_SWAP_H
#define BPFKIT_SWAP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The swap slot, empty until user space points it at a copy (packets find no config). */
#define BPFKIT_SWAP_SLOT(name, copy_type)                                                                              \
	struct {                                                                                                       \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                                              \
		__uint(max_entries, 1);                                                                                \
		__type(key, __u32);                                                                                    \
		__array(values, copy_type);                                                                            \
	} name SEC(".maps")

/* The swap slot, pointing at `first` from the moment the object is loaded. */
#define BPFKIT_SWAP_SLOT_INIT(name, copy_type, first) BPFKIT_SWAP_SLOT(name, copy_type) = {.values = {[0] = &(first)}}

/* The value of the copy in use, or NULL when the slot is empty. */
static __always_inline void *bpfkit_swap_current(void *slot)
{
	__u32 zero = 0;
	void *copy = bpf_map_lookup_elem(slot, &zero);

	return copy ? bpf_map_lookup_elem(copy, &zero) : NULL;
}

#endif /* BPFKIT_SWAP_H */
