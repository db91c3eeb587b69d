// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Ring buffer producers for the RingBuffer tests and benchmark.
 *
 * xdp_udp_events: one record per real UDP packet to `udp_port` (lab veth tests).
 * xdp_one_record: one 64-byte record per run (BPF_PROG_TEST_RUN repeat = N -> N records).
 * xdp_short_record: one 8-byte record per run (shorter than the 64-byte codec).
 * xdp_discard: reserves and discards (nothing must be delivered).
 * xdp_other_ring: one record per run into the second ring, 'other'.
 * xdp_one_record_every: as xdp_one_record, waking the reader every `wake_every` records.
 * xdp_records_loop: N records per run through bpf_loop(), N being the packet's first 4
 *   bytes (host order, at most LOOP_MAX; a shorter packet makes none), waking the reader
 *   every `wake_every` records and at the run's last: one BPF_PROG_TEST_RUN call makes
 *   10k-1M records, far faster than one run per record.
 *
 * `produced` counts every record a program tried to produce, so tests can check
 * delivered + lost == produced. The counters are plain (not atomic) globals: the
 * BPF_PROG_TEST_RUN tests drive one program from one thread at a time.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include "bpfkit_ringbuf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

BPFKIT_RINGBUF(events, 256 * 1024);
BPFKIT_RINGBUF(other, 16 * 1024);
BPFKIT_RINGBUF_WAKE(events);

const volatile __u16 udp_port = 0; /* host order; 0 matches nothing */
const volatile __u32 wake_every = 64;

__u64 produced = 0;
__u64 seq = 0;
__u64 other_seq = 0;

/* One UDP packet seen at XDP (40 bytes). */
struct udp_event {
	__u64 seq;
	__u32 ifindex;
	__u32 pkt_len;
	__u32 saddr; /* network order */
	__u32 daddr;
	__u16 sport; /* host order */
	__u16 dport;
	__u32 tag; /* first 4 payload bytes, big-endian sender sequence */
	__u8 proto;
	__u8 _pad[3];
};

/* A 64-byte record for volume tests and the benchmark. */
struct rec64 {
	__u64 seq;
	__u64 ktime;
	__u32 len;
	__u32 ifindex;
	__u8 fill[40];
};

SEC("xdp")
int xdp_udp_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 *payload;
	struct udp_event *e;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp_port == 0 || udp->dest != bpf_htons(udp_port))
		return XDP_PASS;
	payload = (void *)(udp + 1);

	produced++;
	e = bpfkit_rb_reserve(events, sizeof(*e));
	if (!e)
		return XDP_PASS;
	e->seq = seq++;
	e->ifindex = ctx->ingress_ifindex;
	e->pkt_len = (__u32)(end - data);
	e->saddr = ip->saddr;
	e->daddr = ip->daddr;
	e->sport = bpf_ntohs(udp->source);
	e->dport = bpf_ntohs(udp->dest);
	e->tag = (void *)(payload + 1) <= end ? bpf_ntohl(*payload) : 0xffffffff;
	e->proto = ip->protocol;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	bpfkit_rb_submit(e);
	return XDP_PASS;
}

/* One 64-byte record of this packet, reserved and written (NULL: the ring is full, counted
 * in events_lost); the caller submits it. */
static __always_inline struct rec64 *one_record(struct xdp_md *ctx)
{
	struct rec64 *r;

	produced++;
	r = bpfkit_rb_reserve(events, sizeof(*r));
	if (!r)
		return 0;
	r->seq = seq++;
	r->ktime = bpf_ktime_get_ns();
	r->len = ctx->data_end - ctx->data;
	r->ifindex = ctx->ingress_ifindex;
	__builtin_memset(r->fill, 0xab, sizeof(r->fill));
	return r;
}

SEC("xdp")
int xdp_one_record(struct xdp_md *ctx)
{
	struct rec64 *r = one_record(ctx);

	if (r)
		bpfkit_rb_submit(r);
	return XDP_PASS;
}

SEC("xdp")
int xdp_one_record_every(struct xdp_md *ctx)
{
	struct rec64 *r = one_record(ctx);

	if (r)
		bpfkit_rb_submit_every(events, r, wake_every);
	return XDP_PASS;
}

/* What a bpf_loop() iteration of xdp_records_loop writes besides the counters. */
struct loop_ctx {
	__u64 ktime;
	__u32 len;
	__u32 ifindex;
	__u32 every;
	__u32 n;
};

#define LOOP_MAX (1 << 20)
#define LOOP_PER_CALL 16

/* Records [i * LOOP_PER_CALL, ...) of the run: several per bpf_loop() callback, whose
 * indirect call costs as much as a record where retpolines are on. The forced wake-ups
 * (every `every` records and the run's last) go by the record's index
 * (bpfkit_rb_submit_nth: no per-record counter lookup), and the timestamp is read once per
 * run (ktime + index): the per-record cost is the ring's own (reserve, write, submit). */
static long loop_records(__u64 i, void *arg)
{
	struct loop_ctx *c = arg;
	struct rec64 *r;
	__u32 k = i * LOOP_PER_CALL;

	for (int j = 0; j < LOOP_PER_CALL && k < c->n; j++, k++) {
		produced++;
		r = bpfkit_rb_reserve(events, sizeof(*r));
		if (!r)
			continue; /* counted in events_lost; go on, as a per-packet producer would */
		r->seq = seq++;
		r->ktime = c->ktime + k;
		r->len = c->len;
		r->ifindex = c->ifindex;
		__builtin_memset(r->fill, 0xab, sizeof(r->fill));
		bpfkit_rb_submit_nth(r, k, c->n, c->every);
	}
	return 0;
}

SEC("xdp")
int xdp_records_loop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct loop_ctx c = {
	        .ktime = bpf_ktime_get_ns(),
	        .len = (__u32)(end - data),
	        .ifindex = ctx->ingress_ifindex,
	        .every = wake_every ? wake_every : 1,
	};
	__u32 n;

	if (data + sizeof(n) > end)
		return XDP_PASS;
	n = *(__u32 *)data;
	if (n > LOOP_MAX)
		n = LOOP_MAX;
	c.n = n;
	bpf_loop((n + LOOP_PER_CALL - 1) / LOOP_PER_CALL, loop_records, &c, 0);
	return XDP_PASS;
}

SEC("xdp")
int xdp_short_record(struct xdp_md *ctx)
{
	__u64 *r;

	produced++;
	r = bpfkit_rb_reserve(events, sizeof(*r));
	if (!r)
		return XDP_PASS;
	*r = seq++;
	bpfkit_rb_submit(r);
	return XDP_PASS;
}

SEC("xdp")
int xdp_discard(struct xdp_md *ctx)
{
	struct rec64 *r = bpfkit_rb_reserve(events, sizeof(*r));

	if (r)
		bpfkit_rb_discard(r);
	return XDP_PASS;
}

SEC("xdp")
int xdp_other_ring(struct xdp_md *ctx)
{
	__u64 v = other_seq++;

	bpfkit_rb_output(other, &v, sizeof(v));
	return XDP_PASS;
}

/* Records of any size for the reader's walk (wrap-around, records larger than a page): the
 * frame's first u32 is the record size (16..SCRATCH bytes); the record is the first `size`
 * bytes of `scratch` (filled by the test) with the sequence number in its first 8 bytes
 * and the size in the next 4. */
#define SCRATCH 12288
struct scratch_val {
	__u8 b[SCRATCH];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_val);
} scratch SEC(".maps");

SEC("xdp")
int xdp_sized_record(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct scratch_val *v;
	__u32 key = 0, size;

	if (data + sizeof(size) > end)
		return XDP_PASS;
	size = *(__u32 *)data;
	if (size < 16 || size > SCRATCH)
		return XDP_PASS;
	v = bpf_map_lookup_elem(&scratch, &key);
	if (!v)
		return XDP_PASS;
	produced++;
	*(__u64 *)v->b = seq++;
	*(__u32 *)(v->b + 8) = size;
	bpfkit_rb_output(events, v->b, size);
	return XDP_PASS;
}
