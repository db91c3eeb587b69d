// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Maps of every shape the BpfMap tests exercise (no program logic). */
#include "bpfkit_helpers.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 _pad[3];
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u32 last_seen;
	__u32 flags;
};

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} hash_u32 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 200000);
	__type(key, __u32);
	__type(value, __u64);
} big_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 128);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u32);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} pcpu SEC(".maps");

/* Something must reference the maps for them to stay in the object. */
SEC("xdp")
int xdp_touch(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct lpm_v4 lk = {};
	struct flow_key fk = {};
	bpf_map_lookup_elem(&hash_u32, &k);
	bpf_map_lookup_elem(&big_hash, &k);
	bpf_map_lookup_elem(&flows, &fk);
	bpf_map_lookup_elem(&arr, &k);
	bpf_map_lookup_elem(&routes, &lk);
	bpf_map_lookup_elem(&pcpu, &k);
	return XDP_PASS;
}
