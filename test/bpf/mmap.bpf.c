// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Maps for the BpfMap.mmap() tests, and a program that reads them.
 *
 * mm_arr:   mmapable array whose value (12 bytes) is not a multiple of 8, so the
 *           kernel's stride (16) differs from value_size.
 * mm_blob:  mmapable single-value array larger than a page and not a multiple of it
 *           (shaped like AclFirewall's rule-set blobs).
 * mm_frozen, mm_rdonly_prog: mmapable, but not writable from user space once frozen /
 *           by declaration.
 * plain_arr, plain_hash: not mmapable.
 *
 * xdp_read copies what it reads into the packet, so BPF_PROG_TEST_RUN shows what the
 * program sees: the frame starts with { __u32 which; __u32 index; }, and the program
 * writes 12 bytes at offset 8: mm_arr[index] (which 0) or the 3 words of mm_blob's
 * value starting at word `index` (which 1). Returns XDP_PASS, or XDP_ABORTED when the
 * lookup or a bound failed.
 */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MM_BLOB_BYTES (3 * 4096 + 20)
#define MM_BLOB_WORDS (MM_BLOB_BYTES / 4)

struct mm_val {
	__u32 a;
	__u32 b;
	__u32 c;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct mm_val);
} mm_arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__uint(value_size, MM_BLOB_BYTES);
} mm_blob SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} mm_frozen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_RDONLY_PROG);
	__type(key, __u32);
	__type(value, __u64);
} mm_rdonly_prog SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} plain_arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} plain_hash SEC(".maps");

SEC("xdp")
int xdp_read(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *req = data;
	__u32 *out = data + 8;
	__u32 k = 0;

	if ((void *)(out + 3) > end)
		return XDP_ABORTED;
	if (req[0] == 0) {
		__u32 idx = req[1];
		struct mm_val *v = bpf_map_lookup_elem(&mm_arr, &idx);
		if (!v)
			return XDP_ABORTED;
		out[0] = v->a;
		out[1] = v->b;
		out[2] = v->c;
	} else {
		__u32 *w = bpf_map_lookup_elem(&mm_blob, &k);
		__u32 i = req[1];
		if (!w || i > MM_BLOB_WORDS - 3)
			return XDP_ABORTED;
		out[0] = w[i];
		out[1] = w[i + 1];
		out[2] = w[i + 2];
	}
	/* keep the other maps in the object */
	bpf_map_lookup_elem(&mm_frozen, &k);
	bpf_map_lookup_elem(&mm_rdonly_prog, &k);
	bpf_map_lookup_elem(&plain_arr, &k);
	bpf_map_lookup_elem(&plain_hash, &k);
	return XDP_PASS;
}
