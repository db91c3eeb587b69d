/**
 * RingBuffer { lazy: true } on the real kernel: records arrive as views, and views kept
 * after later batches were read still read their own record (batch memory is never reused).
 * { lazy: 'transient' }: one view per batch for 'data' listeners, reading each record while
 * its listener call lasts; iterators get ordinary views.
 */
import { describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, bytes, struct, u32, u64 } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
type Rec = ReturnType<typeof rec64.decode>;
const frame = Buffer.alloc(64);

async function collect(lazy: boolean, n: number, batchSize: number): Promise<Rec[]> {
  using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 1 << 20 } } });
  using prog = obj.xdpProgram('xdp_one_record');
  using rb = obj.ringBuffer('events', rec64, { lazy, batchSize });
  await prog.testRun(frame, { repeat: n });
  const got: Rec[] = [];
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`only ${got.length} of ${n} records`)), 10_000);
    rb.on('data', (r) => {
      got.push(r);
      if (got.length === n) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return got;
}

describe('RingBuffer lazy record views', () => {
  it('kept views read their own records after many later batches; fields equal the eager records', async () => {
    const N = 5000;
    const lazy = await collect(true, N, 64); // ~80 batches, many buffer replacements
    const eager = await collect(false, N, 64);
    expect(lazy.length).toBe(N);
    expect(Object.keys(lazy[0]!)).toEqual([]); // a view, not a plain object
    const fill = Buffer.alloc(40, 0xab);
    for (let i = 0; i < N; i++) {
      const v = lazy[i]!;
      const e = eager[i]!;
      expect(v.seq).toBe(BigInt(i)); // each program load starts at seq 0
      expect(e.seq).toBe(BigInt(i));
      expect(v.len).toBe(e.len);
      expect(v.ifindex).toBe(e.ifindex);
      expect(typeof v.ktime).toBe('bigint');
      expect(v.fill.equals(fill)).toBe(true);
    }
  });

  it('transient: each record read in the listener equals the eager record; at most one object per batch', async () => {
    const N = 5000;
    const eager = await collect(false, N, 64);
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 1 << 20 } } });
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { lazy: 'transient', batchSize: 64 });
    await prog.testRun(frame, { repeat: N });
    const got: { seq: bigint; ktime: bigint; len: number; ifindex: number; fill: Buffer }[] = [];
    const objects = new Set<object>();
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got.length} of ${N} records`)), 10_000);
      rb.on('data', (r) => {
        objects.add(r);
        got.push({ seq: r.seq, ktime: r.ktime, len: r.len, ifindex: r.ifindex, fill: r.fill });
        if (got.length === N) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    expect(rb.stats().batches).toBeGreaterThan(1);
    expect(objects.size).toBeLessThanOrEqual(rb.stats().batches);
    for (let i = 0; i < N; i++) {
      const e = eager[i]!;
      expect(got[i]!.seq).toBe(BigInt(i));
      expect([got[i]!.len, got[i]!.ifindex]).toEqual([e.len, e.ifindex]);
      expect(typeof got[i]!.ktime).toBe('bigint');
      expect(Buffer.isBuffer(got[i]!.fill) && got[i]!.fill.equals(e.fill)).toBe(true); // still valid after the record moved on
    }
  });

  it('transient: an iterator gets ordinary views, each kept view reading its own record', async () => {
    const N = 300;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 1 << 20 } } });
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { lazy: 'transient', batchSize: 32 });
    await prog.testRun(frame, { repeat: N });
    const kept: Rec[] = [];
    for await (const r of rb.iterate({ closeOnReturn: false })) {
      kept.push(r);
      if (kept.length === N) break;
    }
    expect(new Set(kept).size).toBe(N);
    kept.forEach((r, i) => expect(r.seq).toBe(BigInt(i)));
  });

  it('rejects a lazy option that is not a boolean, before reading', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'));
    const e = (() => {
      try {
        obj.ringBuffer('events', rec64, { lazy: 'yes' as unknown as boolean });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(BpfkitError);
    expect((e as BpfkitError).field).toBe('lazy');
  });
});
