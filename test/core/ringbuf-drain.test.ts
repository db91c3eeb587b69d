/**
 * RingBuffer.drain(): what the ring holds is delivered synchronously, in order, exactly once,
 * on every read path (direct 'data', the copy path, 'batch', 'columns', the cursor), past
 * maxBatchesPerTurn, across the ring's wrap-around; nothing while paused, iterated or closed;
 * a listener that throws ends the drain with its error and the rest stays for the next read.
 * Records are made by BPF_PROG_TEST_RUN while no listener is attached; the listener is added,
 * drain() called and the listener removed with no turn of the event loop in between, so every
 * record a listener gets came through drain().
 */
import { describe, expect, it } from 'vitest';
import { BpfObject, bytes, struct, u32, u64n, type RingBufferOptions } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const rec64 = struct('rec64', { seq: u64n, ktime: u64n, len: u32, ifindex: u32, fill: bytes(40) });
const STEP = 64 + 8; // record + ring header
const frame = Buffer.alloc(64);
/** 16 KiB ring: 227 records; the rounds below wrap it several times. */
const RING = 16 * 1024;

async function filled(n: number, obj: BpfObject): Promise<void> {
  await obj.xdpProgram('xdp_one_record').testRun(frame, { repeat: n });
}

async function load(): Promise<BpfObject> {
  return BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
}

type Ring = ReturnType<BpfObject['ringBuffer']>;
type Path = { name: string; opts: RingBufferOptions; event: 'data' | 'batch' | 'columns'; take: (x: unknown, out: number[]) => void };
const seqOf = (r: unknown): number => (r as { seq: number }).seq;
const one = (r: unknown, out: number[]): void => void out.push(seqOf(r));
const PATHS: Path[] = [
  { name: "'data', plain objects (direct)", opts: {}, event: 'data', take: one },
  { name: "'data', lazy views (copy)", opts: { lazy: true }, event: 'data', take: one },
  { name: "'data', lazy 'cursor'", opts: { lazy: 'cursor' }, event: 'data', take: one },
  { name: "'batch'", opts: {}, event: 'batch', take: (a, out) => void out.push(...(a as unknown[]).map(seqOf)) },
  {
    name: "'columns'",
    opts: {},
    event: 'columns',
    take: (c, out) => {
      const cols = c as { length: number; fields: { seq: Float64Array } };
      out.push(...cols.fields.seq.subarray(0, cols.length));
    },
  },
];

/** Adds the path's listener, drains, removes it: no turn of the event loop in between. */
function drainWith(rb: Ring, p: Path, out: number[]): number {
  const fn = (x: unknown): void => p.take(x, out);
  (rb as unknown as NodeJS.EventEmitter).on(p.event, fn);
  try {
    return rb.drain();
  } finally {
    (rb as unknown as NodeJS.EventEmitter).off(p.event, fn);
  }
}

describe('RingBuffer.drain()', () => {
  for (const p of PATHS) {
    it(`${p.name}: every record the ring holds, in order, at once, past maxBatchesPerTurn and across wrap-around`, async () => {
      using obj = await load();
      using rb = obj.ringBuffer('events', rec64, { ...p.opts, batchSize: 8, maxBatchesPerTurn: 2 });
      const got: number[] = [];
      let next = 0;
      for (const n of [200, 227, 1, 150, 226]) {
        await filled(n, obj);
        expect(rb.stats().pendingBytes).toBe(n * STEP);
        expect(got.length).toBe(next);
        expect(drainWith(rb, p, got)).toBe(n);
        expect(got).toEqual([...Array(next + n).keys()]);
        expect(rb.stats().pendingBytes).toBe(0);
        next += n;
      }
      expect(drainWith(rb, p, got)).toBe(0); // empty: nothing read, nothing delivered
      expect(rb.stats()).toMatchObject({ records: next, malformed: 0, lost: 0, undelivered: 0 });
    });
  }

  it('nothing while paused or iterated, or without a consumer; records stay in the ring', async () => {
    using obj = await load();
    using rb = obj.ringBuffer('events', rec64);
    await filled(50, obj);
    expect(rb.drain()).toBe(0); // no consumer yet
    const got: number[] = [];
    rb.on('data', (r) => got.push(r.seq));
    rb.pause();
    expect(rb.drain()).toBe(0);
    expect(got).toEqual([]);
    expect(rb.stats().pendingBytes).toBe(50 * STEP);
    rb.resume();
    expect(rb.drain()).toBe(50);
    expect(got).toEqual([...Array(50).keys()]);
    rb.close();

    using rb2 = obj.ringBuffer('events', rec64);
    await filled(10, obj);
    const it = rb2.iterate({ closeOnReturn: false });
    expect((await it.next()).value?.seq).toBe(50);
    expect(rb2.drain()).toBe(0); // the iterator pulls at its own pace
    await it.return?.();
    rb2.close();
    expect(rb2.drain()).toBe(0); // closed
  });

  it('inside a listener it does nothing: no record is delivered twice', async () => {
    using obj = await load();
    using rb = obj.ringBuffer('events', rec64, { batchSize: 16 });
    await filled(100, obj);
    const got: number[] = [];
    const nested: number[] = [];
    rb.on('data', (r) => {
      got.push(r.seq);
      if (r.seq % 10 === 3) nested.push(rb.drain());
    });
    expect(rb.drain()).toBe(100);
    expect(got).toEqual([...Array(100).keys()]);
    expect(nested).toEqual(Array(10).fill(0));
  });

  it('a listener that throws ends the drain with its error; its record counts as delivered, the rest comes next', async () => {
    using obj = await load();
    using rb = obj.ringBuffer('events', rec64, { batchSize: 16 });
    await filled(100, obj);
    const got: number[] = [];
    const boom = (r: { seq: number }): void => {
      got.push(r.seq);
      if (r.seq === 37) throw new Error('listener failed at 37');
    };
    rb.on('data', boom);
    expect(() => rb.drain()).toThrow('listener failed at 37');
    expect(got).toEqual([...Array(38).keys()]);
    rb.off('data', boom);
    rb.on('data', (r) => got.push(r.seq));
    expect(rb.drain()).toBe(62);
    expect(got).toEqual([...Array(100).keys()]);
  });
});
