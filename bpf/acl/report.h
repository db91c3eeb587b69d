// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program (bpf/acl/prog.h): policy events through the ring buffer, at
 * most one per flow and rule per interval (the rate limiter: the shared flow table and
 * each CPU's flow memory). */
#ifndef ACL_REPORT_H
#define ACL_REPORT_H

#include "maps.h"
#include "hash.h"
#include "vcache.h"

/* The coarse clock (bpf_ktime_get_coarse_ns), read at most once per tick on this CPU: the
 * coarse clock moves only with the tick (an update that lands just after jiffies moved can
 * make the value one tick old: an event at most one tick late, never early). */
static __always_inline __u64 acl_now_coarse(void)
{
	__u32 zero = 0;
	struct acl_clock *c = bpf_map_lookup_elem(&acl_clock, &zero);
	__u64 tick = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->tick != tick) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->tick = tick;
	}
	return c->ns;
}

/* The flow's last event at `last_ns` was less than an interval before `now` (signed: a
 * `now` from this CPU's cached clock can be a tick behind a stamp another CPU, or this
 * one, just read from the coarse clock itself; such a flow is within a non-zero interval,
 * at worst a tick longer than it should be; with interval 0 nothing is suppressed). */
#define acl_within(now, last_ns, interval_ns) ((interval_ns) && (__s64)((now) - (last_ns)) < (__s64)(interval_ns))

/* Notes in the verdict-cache entry `ve` (if any) that its flow is suppressed until the
 * interval after the event at `last_ns` ends, rounded down to ACL_VC_UNTIL_SHIFT: while
 * (now >> shift) < until, now < last_ns + interval, so the fast path never suppresses a
 * packet the flow table would report. */
static __always_inline void acl_ventry_until(struct acl_ventry *ve, __u64 last_ns, __u64 interval_ns)
{
	/* interval 0 (every packet reported) leaves `until` 0: the fast path would otherwise
	 * suppress a packet whose cached `now` lags the event's stamp */
	if (ve && interval_ns)
		ve->until = (__u32)((last_ns + interval_ns) >> ACL_VC_UNTIL_SHIFT);
}

/* Points this CPU's flow memory at `fk` (its count starts again unless it held `fk`). */
static __always_inline void acl_cache_take(struct acl_cpu_flow *fc, const struct acl_flow_key *fk, __u64 last_ns)
{
	if (!acl_key_eq(&fc->key, fk)) {
		__builtin_memcpy(&fc->key, fk, sizeof(*fk));
		fc->count = 0;
	}
	fc->last_ns = last_ns;
	fc->tick = (__u32)bpf_jiffies64() - 1; /* not this tick: the next packet reads the clock */
}

/* Moves the packets this CPU's memory suppressed for its flow into the flow's `seen`
 * (zeroed first: see acl_seen_add). */
static __always_inline void acl_cache_hand_over(struct acl_cpu_flow *fc)
{
	struct acl_flow_state *st = bpf_map_lookup_elem(&acl_flows, &fc->key);
	__u32 n = fc->count;

	fc->count = 0;
	if (st)
		acl_seen_add(st, n);
}

/* Packets of `fk` suppressed in the CPUs' flow memories and verdict-cache entries, read
 * after the flow's `seen` (acl_report reads it with a fully ordered fetching or). A hand-over
 * zeroes its entry before it adds the count to `seen` (acl_seen_add), so a count can be
 * missed by both reads (it is then in `seen` for the next report: late by one event) but
 * never found by both: if the read of `seen` saw the add, the zeroing came before it, and
 * so before this read of the entry. `at`: the flow's set (the same in both tables); `vk`,
 * `fam`: the reported packet's packed key and family. */
static __always_inline __u64 acl_cached_counts(const struct acl_flow_key *fk, __u32 at, const struct acl_vkey *vk,
                                               int fam)
{
	__u64 sum = 0;

	for (__u32 cpu = 0; cpu < ACL_MAX_CPUS; cpu++) {
		__u32 k = cpu * ACL_FM_SETS + at;
		struct acl_flow_set *m;
		struct acl_vset *vs;

		if (cpu >= acl_nr_cpus)
			break;
		m = bpf_map_lookup_elem(&acl_flow_cache, &k);
		if (m) {
#pragma unroll
			for (int w = 0; w < ACL_FM_WAYS; w++)
				if (acl_key_eq(&m->w[w].key, fk))
					sum += m->w[w].count;
		}
		vs = bpf_map_lookup_elem(&acl_verdicts, &k);
		if (vs) {
#pragma unroll
			for (int w = 0; w < ACL_VC_WAYS; w++)
				if (acl_ventry_holds(&vs->w[w], vk, fam, fk))
					sum += acl_ventry_count(&vs->w[w]);
		}
	}
	return sum;
}

/* Reports a decision, at most once per flow and rule per interval. `h`: the flow's set and
 * preferred way (vcache.h: acl_flow_set_of); `ve`: the verdict-cache entry that judged the
 * packet (NULL without the cache), `vk` and `fam` its packed key and family. */
static __always_inline void acl_report(struct xdp_md *ctx, struct acl_pkt *pkt, const __u8 *blob, __u32 h,
                                       struct acl_ventry *ve, const struct acl_vkey *vk, int fam, __u32 slot, __u32 tag,
                                       __u32 action, __u32 len)
{
	struct acl_flow_key fkv __attribute__((aligned(8))), *fk = &fkv;
	__u64 interval_ns = (__u64)acl_w(blob, ACL_H_INTERVAL_MS) * 1000000;
	struct acl_flow_state *st;
	struct acl_flow_set *set;
	struct acl_cpu_flow *fc = NULL;
	struct acl_event *e;
	/* now: this CPU's cached coarse clock (acl_now_coarse), read once, 0 until then; the
	 * decisions below use it: it is never ahead of the coarse clock and at most one tick
	 * behind it, so an event is never early and at most one tick late, as on the fast
	 * paths. An event's own stamp (last_ns) is read from the coarse clock itself, once per
	 * event: a stamp a tick behind could let the next event come a tick early. */
	__u64 now = 0, stamp, suppressed = 0;
	__u32 at = h & (ACL_FM_SETS - 1);

	if (ve && ve->until) {
		/* The replay's fast path: the entry that judged the packet knows its flow is
		 * suppressed until a time not yet reached, and counts the packet itself, so
		 * a suppressed packet touches that one line (and this CPU's clock line). The
		 * stamp is 32 bits of ~1 ms: a stamp at most one interval ahead is believed
		 * (an entry left untouched for a multiple of 2^52 ns, ~52 days, can pass for
		 * fresh and suppress for at most one interval more than it should). */
		__u32 left;
		__u64 tail = ve->key.p[5];

		now = acl_now_coarse();
		left = ve->until - (__u32)(now >> ACL_VC_UNTIL_SHIFT);
		if (left - 1 <= (__u32)(interval_ns >> ACL_VC_UNTIL_SHIFT) &&
		    (tail & ACL_VC_COUNT_MASK) != ACL_VC_COUNT_MASK) {
			ve->key.p[5] = tail + (1ull << ACL_VC_COUNT_SHIFT);
			acl_count(ACL_STAT_SUPPRESSED, 0);
			return;
		}
	}
	/* the flow key, made here rather than at parse time: a packet the verdict cache's
	 * entry suppresses (above) never needs it */
	acl_vkey_fk(vk, fk, slot, tag);
	set = bpfkit_cpu_elem(&acl_flow_cache, ACL_FM_SETS, at);
	if (!set)
		return;
#pragma unroll
	for (int i = 0; i < ACL_FM_WAYS; i++)
		if (!fc && acl_key_eq(&set->w[acl_way_at(h, i)].key, fk))
			fc = &set->w[acl_way_at(h, i)];
	if (fc) {
		/* The flood's fast path: a flow this CPU's memory holds. The rate limit
		 * needs only tick precision, and the coarse clock moves only with the tick: while
		 * jiffies has not moved since the flow was last found within its interval, it
		 * still is (an update of the coarse clock that lands just after jiffies moved
		 * can make an event at most one tick late, never early; the tick is kept in 32
		 * bits, so a flow whose entry was last refreshed exactly 2^32 ticks ago is
		 * suppressed for one tick more than it should be). */
		__u32 tick = (__u32)bpf_jiffies64();

		if (tick == fc->tick)
			goto suppress;
		if (!now)
			now = acl_now_coarse();
		if (acl_within(now, fc->last_ns, interval_ns)) {
			fc->tick = tick;
		suppress:
			acl_ventry_until(ve, fc->last_ns, interval_ns);
			if (fc->count >= ACL_FM_COUNT_MAX)
				acl_cache_hand_over(fc);
			fc->count++; /* this CPU's: no atomic, no shared cache line */
			acl_count(ACL_STAT_SUPPRESSED, 0);
			return;
		}
	} else {
		/* the memory takes this flow in the first empty way from its preferred one, else
		 * in a random one */
#pragma unroll
		for (int i = ACL_FM_WAYS - 1; i >= 0; i--)
			if (set->w[acl_way_at(h, i)].key.family == 0)
				fc = &set->w[acl_way_at(h, i)];
		if (!fc)
			fc = &set->w[bpf_get_prandom_u32() & (ACL_FM_WAYS - 1)];
		if (!now)
			now = acl_now_coarse();
		/* the memory moves to another flow: hand the old flow its suppressed packets */
		if (fc->count)
			acl_cache_hand_over(fc);
	}
	st = bpf_map_lookup_elem(&acl_flows, fk);
	if (st && acl_within(now, st->last_ns, interval_ns)) {
		/* reported recently (maybe by another CPU): suppressed, counted in `seen`;
		 * suppress here from now on */
		acl_seen_add(st, 1);
		acl_cache_take(fc, fk, st->last_ns);
		acl_ventry_until(ve, st->last_ns, interval_ns);
		acl_count(ACL_STAT_SUPPRESSED, 0);
		return;
	}
	e = bpfkit_rb_reserve(acl_events, sizeof(*e));
	if (!e) {
		/* counted in acl_events_lost; the packet is counted as suppressed instead, in
		 * the flow's next event */
		if (st)
			acl_seen_add(st, 1);
		return;
	}
	stamp = bpf_ktime_get_coarse_ns();
	if (st) {
		/* The flow's suppressed packets: `seen` read fully ordered (a fetching or of
		 * 0), before the counts the CPUs still hold (acl_cached_counts); the
		 * reporting packet is in neither. */
		__u64 total = __sync_fetch_and_or(&st->seen, 0) + acl_cached_counts(fk, at, vk, fam);
		__u64 prev = st->reported;

		/* `reported`, the total at the last event, only grows: two CPUs can pass the
		 * interval check at once and both report, and the one with the smaller total
		 * must neither move it back (its packets would be reported twice) nor count
		 * the other's. A compare-and-swap, tried a bounded number of times: a CPU
		 * that loses all four to other reporters reports 0, and what it saw stays
		 * for the next event. */
		for (int i = 0; i < 4 && total > prev; i++) {
			__u64 cur = __sync_val_compare_and_swap(&st->reported, prev, total);

			if (cur == prev) {
				suppressed = total - prev;
				break;
			}
			prev = cur;
		}
		st->last_ns = stamp;
	} else {
		struct acl_flow_state init = {.last_ns = stamp};

		bpf_map_update_elem(&acl_flows, fk, &init, BPF_NOEXIST);
	}
	acl_cache_take(fc, fk, stamp);
	acl_ventry_until(ve, stamp, interval_ns);
	e->ktime_ns = bpf_ktime_get_ns();
	e->gen = acl_w(blob, ACL_H_GEN);
	e->slot = slot;
	e->suppressed = suppressed > 0xffffffffu ? 0xffffffffu : (__u32)suppressed;
	e->ifindex = ctx->ingress_ifindex;
	e->pkt_len = len;
	e->action = action;
	e->family = fk->family;
	e->proto = fk->proto;
	e->sport = fk->sport;
	e->dport = fk->dport;
	e->flags = pkt->flags;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	__builtin_memcpy(e->src, fk->src, 16);
	__builtin_memcpy(e->dst, fk->dst, 16);
	bpfkit_rb_submit(e);
	acl_count(ACL_STAT_EVENTS, 0);
}

#endif
