/**
 * PacketTracer's timeline assembly on its own (no kernel): grouping by sk_buff, time
 * order, verdicts, idle sweep, and the cap on open timelines.
 */
import { describe, expect, it } from 'vitest';
import type { TraceEvent, TracePoint } from '../../lib/index.js';
import { MAX_OPEN_TIMELINES, TimelineAssembler } from '../../lib/modules/tracer/timeline.js';

const ev = (skb: string, point: TracePoint, time: bigint, extra: Partial<TraceEvent> = {}): TraceEvent => ({
  point,
  time,
  skb,
  cpu: 0,
  netns: 1,
  ifindex: 2,
  ifname: 'eth0',
  mark: 0,
  len: 60,
  ...extra,
});

describe('TimelineAssembler', () => {
  it('groups by skb, orders by time, and ends a timeline at its drop with the reason', () => {
    const t = new TimelineAssembler();
    expect(t.add(ev('0x1', 'receive', 200n, { netns: 7 }), 0)).toEqual([]);
    expect(t.add(ev('0x2', 'receive', 150n), 0)).toEqual([]);
    expect(t.add(ev('0x1', 'queue', 100n, { netns: 5 }), 0)).toEqual([]); // arrived late from another CPU
    const [p] = t.add(ev('0x1', 'drop', 300n, { netns: 7, dropReason: 'NO_SOCKET' }), 0);
    expect(p).toMatchObject({ skb: '0x1', start: 100n, durationNs: 200, verdict: 'dropped', dropReason: 'NO_SOCKET', namespaces: [5, 7] });
    expect(p!.events.map((e) => [e.point, e.dtNs])).toEqual([
      ['queue', 0],
      ['receive', 100],
      ['drop', 200],
    ]);
    expect(t.openCount).toBe(1);
    // the address is free again: a new packet at 0x1 starts a new timeline
    t.add(ev('0x1', 'receive', 400n), 0);
    expect(t.openCount).toBe(2);
  });

  it('consume ends as consumed; idle timelines end as transmitted or unfinished; events without skb stay out', () => {
    const t = new TimelineAssembler();
    expect(t.add(ev('0x3', 'consume', 1n), 0)[0]!.verdict).toBe('consumed');
    expect(t.add(ev('', 'fib_lookup', 2n), 0)).toEqual([]);
    t.add(ev('0x4', 'queue', 3n), 0);
    t.add(ev('0x4', 'transmit', 4n), 10);
    t.add(ev('0x5', 'receive', 5n), 50);
    expect(t.sweep(40, 100)).toEqual([]);
    expect(t.sweep(110, 100).map((p) => [p.skb, p.verdict])).toEqual([['0x4', 'transmitted']]);
    expect(t.flush().map((p) => [p.skb, p.verdict])).toEqual([['0x5', 'unfinished']]);
    expect(t.openCount).toBe(0);
  });

  it('keeps at most MAX_OPEN_TIMELINES open, closing the oldest', () => {
    const t = new TimelineAssembler();
    for (let i = 0; i < MAX_OPEN_TIMELINES; i++) expect(t.add(ev(`0x${i.toString(16)}`, 'receive', BigInt(i)), 0)).toEqual([]);
    const out = t.add(ev('0xffffffff', 'receive', 1n), 0);
    expect(out.map((p) => p.skb)).toEqual(['0x0']);
    expect(t.openCount).toBe(MAX_OPEN_TIMELINES);
  });

  it('closes the oldest timeline still open: not one already ended, nor the first of a reused sk_buff', () => {
    const t = new TimelineAssembler();
    t.add(ev('0xa', 'receive', 1n), 0);
    t.add(ev('0xb', 'receive', 2n), 0);
    t.add(ev('0xc', 'receive', 3n), 0);
    expect(t.add(ev('0xa', 'drop', 4n, { dropReason: 'NO_SOCKET' }), 0).map((p) => p.skb)).toEqual(['0xa']); // ended
    t.add(ev('0xa', 'receive', 5n), 0); // the address reused: a new timeline, now the newest
    expect(t.sweep(10, 5).map((p) => p.skb)).toEqual(['0xb', '0xc', '0xa']); // idle: all closed (0xb, 0xc and the new 0xa)
    t.add(ev('0xd', 'receive', 6n), 0);
    t.add(ev('0xa', 'receive', 7n), 0);
    for (let i = 0; i < MAX_OPEN_TIMELINES - 2; i++) t.add(ev(`0x1${i.toString(16).padStart(8, '0')}`, 'receive', 8n), 0);
    expect(t.add(ev('0xe', 'receive', 9n), 0).map((p) => p.skb)).toEqual(['0xd']);
    expect(t.add(ev('0xf', 'receive', 9n), 0).map((p) => p.skb)).toEqual(['0xa']);
    expect(t.openCount).toBe(MAX_OPEN_TIMELINES);
  });
});
