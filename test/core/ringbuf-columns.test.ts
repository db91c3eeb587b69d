/**
 * The columnar consumer ('columns' event, lib/core/ringbuf/columns.ts): on real rings, the
 * columns hold exactly what the codec's decode (the object path) gives for the same
 * records, across random contents and sizes, short and discarded records and
 * wrap-around; pause() / close() inside a listener lose and repeat nothing; codecs and
 * consumers it cannot take are refused with typed errors before any reading.
 */
import { describe, expect, it } from 'vitest';
import { BpfObject, BpfkitError, bytes, ipv4, struct, u32, u64, u64n, type RingBufferColumns } from '../../lib/index.js';
import { ColumnReader } from '../../lib/core/ringbuf/columns.js';
import { testObject } from '../helpers/objects.js';
import { rng } from '../helpers/rng.js';
import { SIZED_MEMBERS, frame64, randomRounds, until } from './ringbuf.helpers.js';

const RING = 64 * 1024;
const SCRATCH = 12288;
/** Every column kind; '_' fields have no column. Sized 72 bytes. */
const mixed = struct('mixed', [...SIZED_MEMBERS]);
type Mixed = ReturnType<typeof mixed.decode>;
const rec64 = struct('rec64', { seq: u64n, ktime: u64n, len: u32, ifindex: u32, fill: bytes(40) });

/** The records of a batch of columns, as objects (what decode gives). */
function rows(c: RingBufferColumns<Mixed>): Mixed[] {
  const f = c.fields;
  return Array.from({ length: c.length }, (_, i) => ({
    seq: f.seq[i]!,
    size: f.size[i]!,
    a: f.a[i]!,
    b: f.b[i]!,
    c: f.c[i]!,
    d: f.d[i]!,
    e: f.e[i]!,
    f: f.f[i]!,
    g: f.g[i]!,
    h: f.h[i]!,
    blob: Buffer.from(f.blob.subarray(i * 20, i * 20 + 20)),
    odd: Buffer.from(f.odd.subarray(i * 7, i * 7 + 7)),
    tail: f.tail[i]!,
  })) as Mixed[];
}

describe('ColumnReader (no kernel)', () => {
  it('the compiled and the interpreted loop both give what decode gives, and skip short records', () => {
    const rand = rng(62);
    for (const generic of [false, true]) {
      // records at 8-byte aligned offsets of one buffer, as in the ring (a header before each)
      const buf = Buffer.alloc(64 * 1024);
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
      const offs = new Int32Array(2 * 100);
      const want: Mixed[] = [];
      let at = 0;
      for (let i = 0; i < 100; i++) {
        const len = rand() < 0.1 ? 8 + Math.floor(rand() * 60) : mixed.size + Math.floor(rand() * 64);
        offs[2 * i] = at + 8;
        offs[2 * i + 1] = len;
        if (len >= mixed.size) want.push(mixed.decode(buf, at + 8));
        at += (len + 8 + 7) & ~7;
      }
      const reader = new ColumnReader(mixed, 100, generic);
      const words = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
      const cols = reader.read(buf, words, new DataView(buf.buffer, buf.byteOffset, buf.length), offs, 100, mixed.size);
      expect(cols.length).toBe(want.length);
      expect(want.length).toBeLessThan(100);
      expect(rows(cols as RingBufferColumns<Mixed>)).toEqual(want);
    }
  });
});

describe("RingBuffer 'columns'", () => {
  it('columns equal the object decode of the same records: random contents and sizes, short and discarded records, wrap-around', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using sized = obj.xdpProgram('xdp_sized_record');
    using discard = obj.xdpProgram('xdp_discard');
    using scratch = obj.map('scratch', { key: u32, value: bytes(SCRATCH) });
    using rb = obj.ringBuffer('events', mixed, { batchSize: 13 });
    const rand = rng(61);
    const got: Mixed[] = [];
    let errors = 0;
    rb.on('error', () => errors++);
    rb.on('columns', (c) => got.push(...rows(c)));
    const { want, short } = await randomRounds({
      sized,
      discard,
      scratch,
      rb,
      codec: mixed,
      rand,
      ring: RING,
      scratchBytes: SCRATCH,
      randomBytes: 1024,
      delivered: () => got.length,
    });
    expect(got).toEqual(want);
    expect(short).toBeGreaterThan(0);
    expect(rb.stats()).toMatchObject({ records: want.length, malformed: short, pendingBytes: 0, lost: 0 });
    expect(errors).toBe(short);
  });

  it('pause() and close() inside a listener: the batch is delivered whole, the rest waits in the ring, none lost or repeated', async () => {
    const N = 300;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: N });
    const first = obj.ringBuffer('events', rec64, { batchSize: 64 });
    const seqs: number[] = [];
    let calls = 0;
    first.on('columns', (c) => {
      seqs.push(...c.fields.seq.subarray(0, c.length));
      expect(c.fields.fill.length).toBe(40 * c.length);
      expect(c.fields.fill.every((b) => b === 0xab)).toBe(true);
      if (++calls === 1) first.pause();
      else first.close();
    });
    expect(await until(() => seqs.length === 64)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(seqs.length).toBe(64);
    expect(first.stats().pendingBytes).toBe((N - 64) * 72);
    first.resume();
    expect(await until(() => first.closed)).toBe(true);
    expect(seqs.length).toBe(128);
    expect(first.stats().undelivered).toBe(0);
    using second = obj.ringBuffer('events', rec64, { batchSize: 1000 });
    expect(second.stats().pendingBytes).toBe((N - 128) * 72);
    second.on('columns', (c) => seqs.push(...c.fields.seq.subarray(0, c.length)));
    expect(await until(() => seqs.length === N)).toBe(true);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(second.stats()).toMatchObject({ records: N - 128, pendingBytes: 0 });
  });

  it('refuses codecs and consumers it cannot take, with typed errors, before reading', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: 5 });
    const refused = (f: () => unknown, code: string, msg: RegExp, field?: string): void => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfkitError);
      expect((err as BpfkitError).code).toBe(code);
      expect((err as Error).message).toMatch(msg);
      if (field) expect((err as BpfkitError).field).toBe(field);
    };
    using a = obj.ringBuffer('events', struct('r', { seq: u64, addr: ipv4 }));
    refused(() => a.on('columns', () => {}), 'ERR_INVALID_ARGUMENT', /codec\.addr/, 'codec.addr');
    using b = obj.ringBuffer('events', u64);
    refused(() => b.on('columns', () => {}), 'ERR_INVALID_ARGUMENT', /struct\(\)/, 'codec');
    using c = obj.ringBuffer('events', rec64);
    c.on('data', () => {});
    refused(() => c.on('columns', () => {}), 'ERR_BUSY', /'data'/);
    c.removeAllListeners('data');
    c.on('columns', () => {});
    refused(() => c.on('batch', () => {}), 'ERR_BUSY', /'columns'/);
    refused(() => c.iterate(), 'ERR_BUSY', /'columns'/);
    expect(a.listenerCount('columns') + b.listenerCount('columns')).toBe(0);
    expect(a.stats().records + b.stats().records).toBe(0);
  });
});
