// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A map declared LIBBPF_PIN_BY_NAME, as third-party objects (xdp-tools' xdpfilt_*.o)
 * declare theirs: libbpf pins it at load under the object's pin root. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counts SEC(".maps");

SEC("xdp")
int xdp_count_shared(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&shared_counts, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
