/**
 * The direct reader (lib/core/ringbuf/direct.ts): 'data' listeners with plain-object codecs
 * read the kernel's mapping from JS. On real rings: it delivers exactly what was produced,
 * as the copy path (consume()) does, across wrap-around, discarded records, records larger
 * than a page and a nearly full ring; the consumer position never passes a record whose
 * listener has not run (pause, close inside a listener); close() detaches the mapping.
 */
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { BpfObject, bytes, struct, u32, u64n } from '../../lib/index.js';
import { native } from '../../lib/core/native.js';
import { testObject } from '../helpers/objects.js';
import { rng } from '../helpers/rng.js';
import { until } from './ringbuf.helpers.js';

const RING = 64 * 1024;
const SCRATCH = 12288;
/** The first 16 bytes of an xdp_sized_record record (longer records decode from their start). */
const head = struct('sized', { seq: u64n, size: u32, tag: u32 });
const rec64 = struct('rec64', { seq: u64n, ktime: u64n, len: u32, ifindex: u32, fill: bytes(40) });
const step = (size: number): number => (size + 8 + 7) & ~7; // header + record, rounded up to 8
const frame64 = Buffer.alloc(64);

function sizeFrame(size: number): Buffer {
  const f = Buffer.alloc(64);
  if (endianness() === 'LE') f.writeUInt32LE(size, 0);
  else f.writeUInt32BE(size, 0);
  return f;
}

type Planned = { size: number } | { discard: true };

/** Random records (16 B to 12 KiB, a tenth discarded) filling the ring until the next one does not fit. */
function plan(rand: () => number): Planned[] {
  const out: Planned[] = [];
  let pending = 0;
  for (let i = 0; i < 10_000; i++) {
    const r = rand();
    const p: Planned = r < 0.1 ? { discard: true } : { size: r < 0.2 ? 4097 + Math.floor(rand() * (SCRATCH - 4097)) : 16 + Math.floor(rand() * 400) };
    const s = 'discard' in p ? step(64) : step(p.size);
    // the kernel refuses a reservation that would make the pending bytes reach the ring size
    if (pending + s > RING - 8) break;
    pending += s;
    out.push(p);
  }
  return out;
}

describe('RingBuffer direct reader (kernel mapping read from JS)', () => {
  it('delivers exactly the records produced, as the copy path does: random sizes, discards, > 1 page, wrap-around, a nearly full ring', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using sized = obj.xdpProgram('xdp_sized_record');
    using discard = obj.xdpProgram('xdp_discard');
    using scratch = obj.map('scratch', { key: u32, value: bytes(SCRATCH) });
    const rand = rng(16);
    let seq = 0;
    for (let round = 0; round < 6; round++) {
      const tag = (0x5eed0000 + round) >>> 0;
      const content = Buffer.alloc(SCRATCH);
      content.writeUInt32LE(tag, 12);
      scratch.set(0, content);
      const p = plan(rand);
      const want: { seq: number; size: number; tag: number }[] = [];
      for (const r of p) {
        if ('discard' in r) await discard.testRun(frame64);
        else {
          await sized.testRun(sizeFrame(r.size));
          want.push({ seq: seq++, size: r.size, tag: endianness() === 'LE' ? tag : content.readUInt32BE(12) });
        }
      }
      // even rounds: the direct path ('data', plain objects); odd: the copy path ('batch' listener)
      using rb = obj.ringBuffer('events', head, { batchSize: 7 });
      expect(rb.stats().pendingBytes).toBe(p.reduce((s, r) => s + ('discard' in r ? step(64) : step(r.size)), 0));
      expect(rb.stats().pendingBytes).toBeGreaterThan(RING - SCRATCH - 64); // nearly full
      const got: { seq: number; size: number; tag: number }[] = [];
      if (round % 2 === 0) rb.on('data', (r) => got.push({ seq: r.seq, size: r.size, tag: r.tag }));
      else rb.on('batch', (rs) => rs.forEach((r) => got.push({ seq: r.seq, size: r.size, tag: r.tag })));
      expect(await until(() => got.length >= want.length)).toBe(true);
      expect(got).toEqual(want);
      expect(rb.stats()).toMatchObject({ records: want.length, bytes: want.reduce((s, r) => s + r.size, 0), malformed: 0, lost: 0, pendingBytes: 0 });
    }
  });

  it('pause() inside a listener: the rest of the batch stays in the kernel ring; resume() delivers it, none lost or repeated', async () => {
    const N = 200;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: N });
    using rb = obj.ringBuffer('events', rec64, { batchSize: 64 });
    const seqs: number[] = [];
    rb.on('data', (r) => {
      seqs.push(r.seq);
      if (r.seq === 10 || r.seq === 100) rb.pause();
    });
    expect(await until(() => seqs.length === 11)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(seqs.length).toBe(11);
    // the consumer position is past the 11 delivered records only (the copy path would have taken the batch)
    expect(rb.stats().pendingBytes).toBe((N - 11) * 72);
    rb.resume();
    expect(await until(() => seqs.length === 101)).toBe(true);
    expect(rb.stats().pendingBytes).toBe((N - 101) * 72);
    rb.resume();
    expect(await until(() => seqs.length === N)).toBe(true);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(rb.stats().pendingBytes).toBe(0);
  });

  it('close() inside a listener: no further events, kept records stay valid, the next reader gets exactly the records after it', async () => {
    const N = 100;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: N });
    const first = obj.ringBuffer('events', rec64, { batchSize: 64 });
    const kept: ReturnType<typeof rec64.decode>[] = [];
    first.on('data', (r) => {
      kept.push(r);
      if (r.seq === 30) first.close();
    });
    expect(await until(() => first.closed)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(kept.map((r) => r.seq)).toEqual(Array.from({ length: 31 }, (_, i) => i));
    expect(first.stats().undelivered).toBe(0); // nothing was read past the record whose listener closed
    expect(kept.every((r) => r.fill.length === 40 && r.fill.every((b) => b === 0xab))).toBe(true);
    using second = obj.ringBuffer('events', rec64);
    expect(second.stats().pendingBytes).toBe((N - 31) * 72);
    const rest: number[] = [];
    second.on('data', (r) => rest.push(r.seq));
    expect(await until(() => rest.length === N - 31)).toBe(true);
    expect(rest).toEqual(Array.from({ length: N - 31 }, (_, i) => 31 + i));
    expect(second.stats().pendingBytes).toBe(0);
  });

  it('an iterator started inside a direct listener continues after the delivered record: none repeated or lost', async () => {
    const N = 100;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: N });
    using rb = obj.ringBuffer('events', rec64, { batchSize: 64 });
    const seqs: number[] = [];
    let it: AsyncIterableIterator<ReturnType<typeof rec64.decode>> | undefined;
    let next: Promise<IteratorResult<ReturnType<typeof rec64.decode>>> | undefined;
    const listener = (r: ReturnType<typeof rec64.decode>): void => {
      seqs.push(r.seq);
      if (r.seq === 10) {
        rb.off('data', listener);
        it = rb.iterate({ closeOnReturn: false });
        next = it.next(); // reads a batch (copy path) while the direct batch is being delivered
      }
    };
    rb.on('data', listener);
    expect(await until(() => next !== undefined)).toBe(true);
    for (let r = await next!; !r.done; r = await it!.next()) {
      seqs.push(r.value.seq);
      if (seqs.length === N) break;
    }
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(rb.stats().pendingBytes).toBe(0);
  });

  it('close() detaches the mapping before unmapping it: a kept view reads nothing instead of faulting', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: 3 });
    const map = obj.nativeMap('events');
    try {
      const h = new (native().NativeRingBuffer)(map.fd, {}, () => {});
      const m = h.mapping();
      expect(m.size).toBe(RING);
      expect(m.producer.byteLength).toBe(m.dataOffset + 2 * RING);
      const prod = new BigInt64Array(m.producer, 0, 1);
      const words = new Int32Array(m.producer);
      const cons = new DataView(m.consumer);
      expect(Number(prod[0]! - cons.getBigUint64(0, true))).toBe(3 * 72);
      expect(words[m.dataOffset / 4]).toBe(64); // the first record's header: 64 bytes, committed
      h.close();
      expect(m.producer.byteLength).toBe(0);
      expect(m.consumer.byteLength).toBe(0);
      expect(words.length).toBe(0);
      expect(words[m.dataOffset / 4]).toBeUndefined();
      expect(prod[0]).toBeUndefined();
      expect(() => cons.getBigUint64(0, true)).toThrow(TypeError);
      expect(() => h.mapping()).toThrow(/closed/);
    } finally {
      map.close();
    }
  });
});
