/**
 * RingBuffer { lazy: 'cursor' } (lib/core/ringbuf/cursor.ts): one record object per ring
 * that reads the kernel's mapping. Without the kernel: the compiled and the interpreted
 * getters read what decode gives for every member kind, aligned or not, and bytes fields
 * are one Buffer per field, refilled. On real rings: the fields equal the object decode of
 * the same records across random contents and sizes, short and discarded records and
 * wrap-around; pause(), close() and a throwing listener consume exactly the records
 * delivered; 'batch' listeners and iterators get ordinary views; codecs it cannot take
 * are refused with typed errors before the ring is opened.
 */
import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BpfkitError,
  BpfObject,
  array,
  be16,
  bool,
  bytes,
  cstring,
  i16,
  i32,
  i64n,
  ipv4,
  struct,
  u16,
  u32,
  u64,
  u64n,
  u8,
  type Codec,
} from '../../lib/index.js';
import { checkCursorCodec, cursorMaker } from '../../lib/core/ringbuf/cursor.js';
import { testObject } from '../helpers/objects.js';
import { rng } from '../helpers/rng.js';
import { SIZED_MEMBERS, frame64, randomRounds, removeChildModule, runChild, until } from './ringbuf.helpers.js';

afterAll(removeChildModule);

const RING = 64 * 1024;
const SCRATCH = 12288;
/** Every member kind at aligned offsets (the kernel test's layout: seq and size first, as xdp_sized_record writes them). */
const wide = struct('wide', [
  ...SIZED_MEMBERS,
  { name: 'addr', codec: ipv4 },
  { name: 'port', codec: be16 },
  { name: 'flag', codec: bool },
  { name: 'inner', codec: struct('inner', { x: u32, y: u16 }) },
  { name: 'list', codec: array(u16, 3) },
  { name: 'label', codec: cstring(8) },
  { name: 'words', codec: bytes(100, 4) },
  { name: 'big', codec: bytes(300, 4) },
]);
/** Members at offsets their size does not divide (DataView reads, byte copies). */
const packed = struct(
  'packed',
  [
    { name: 'a', codec: u8 },
    { name: 'b', codec: u32 },
    { name: 'c', codec: u64n },
    { name: 'd', codec: i16 },
    { name: 'e', codec: u64 },
    { name: 'f', codec: bytes(8) },
    { name: 'g', codec: i64n },
    { name: 'h', codec: u16 },
    { name: 'i', codec: i32 },
  ],
  { packed: true },
);

/** What a listener keeps of a record: every field's value, bytes copied (the cursor's Buffers are refilled). */
function plain(r: object, codec: Codec<unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of (codec.layout as { members: { name: string }[] }).members) {
    if (m.name.startsWith('_')) continue;
    const v = (r as Record<string, unknown>)[m.name];
    out[m.name] = Buffer.isBuffer(v) ? Buffer.from(v) : v;
  }
  return out;
}

describe('record cursor (no kernel)', () => {
  it('compiled and interpreted getters read what decode gives, aligned or not; bytes fields are one Buffer each, refilled; a zeroed record outside attach() ... park() and after release()', () => {
    const rand = rng(71);
    for (const codec of [wide, packed] as Codec<unknown>[]) {
      for (const generic of [false, true]) {
        const buf = Buffer.alloc(64 * 1024);
        for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
        checkCursorCodec(codec);
        const cursor = cursorMaker(codec, generic)({ buf });
        const zero = codec.decode(Buffer.alloc(codec.size), 0);
        expect(plain(cursor.at(8) as object, codec)).toEqual(zero); // not attached: a zeroed record
        cursor.attach();
        const stride = Math.ceil(codec.size / 8) * 8;
        let firstBytes: unknown;
        for (let k = 0; k < 100; k++) {
          const off = 8 * Math.floor(rand() * ((buf.length - stride) / 8));
          const v = cursor.at(off) as Record<string, unknown>;
          expect(plain(v, codec)).toEqual(codec.decode(buf, off));
          const bytesField = codec === wide ? 'blob' : 'f';
          firstBytes ??= v[bytesField];
          expect(v[bytesField]).toBe(firstBytes); // the same Buffer, refilled with this record's bytes
          expect(Buffer.isBuffer(firstBytes)).toBe(true);
          expect(Object.getOwnPropertyNames(v)).toEqual([]);
          expect(Object.getOwnPropertySymbols(v)).toEqual([]);
        }
        cursor.park();
        expect(plain(cursor.at(8) as object, codec)).toEqual(zero);
        cursor.attach();
        expect(plain(cursor.at(8) as object, codec)).toEqual(codec.decode(buf, 8));
        cursor.release();
        cursor.attach(); // after release() never the memory again
        expect(plain(cursor.at(8) as object, codec)).toEqual(zero);
      }
    }
  });

  it('refuses codecs it cannot take, with typed errors naming the field, before the ring is opened', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    const view: Codec<Buffer> = { name: 'view4', size: 4, align: 4, layout: { kind: 'bytes', size: 4 }, encode() {}, decode: (b, o) => b.subarray(o, o + 4) };
    const refused = (codec: Codec<unknown>, field: string): void => {
      let err: unknown;
      try {
        obj.ringBuffer('events', codec, { lazy: 'cursor' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfkitError);
      expect((err as BpfkitError).code).toBe('ERR_INVALID_ARGUMENT');
      expect((err as BpfkitError).field).toBe(field);
    };
    const fds = readdirSync('/proc/self/fd').length;
    refused(u64, 'codec');
    refused(bytes(64), 'codec');
    refused(struct('r', { seq: u64, v: view }), 'codec.v');
    expect(readdirSync('/proc/self/fd').length).toBe(fds); // no ring, no loss counter left open
    using ok = obj.ringBuffer('events', struct('r', { seq: u64, _v: view }), { lazy: 'cursor' }); // padding may be anything
    expect(ok.closed).toBe(false);
  });
});

const rec64 = struct('rec64', { seq: u64n, ktime: u64n, len: u32, ifindex: u32, fill: bytes(40) });

describe("RingBuffer lazy 'cursor'", () => {
  it('fields equal the object decode of the same records: random contents and sizes, short and discarded records, wrap-around; one object', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using sized = obj.xdpProgram('xdp_sized_record');
    using discard = obj.xdpProgram('xdp_discard');
    using scratch = obj.map('scratch', { key: u32, value: bytes(SCRATCH) });
    using rb = obj.ringBuffer('events', wide, { batchSize: 13, lazy: 'cursor' });
    const rand = rng(72);
    const got: Record<string, unknown>[] = [];
    const objects = new Set<object>();
    let blob: Buffer | undefined;
    let errors = 0;
    rb.on('error', () => errors++);
    rb.on('data', (r) => {
      objects.add(r);
      blob ??= r.blob;
      expect(r.blob).toBe(blob);
      got.push(plain(r, wide));
    });
    const { want, short } = await randomRounds({
      sized,
      discard,
      scratch,
      rb,
      codec: wide,
      rand,
      ring: RING,
      scratchBytes: SCRATCH,
      randomBytes: 2048,
      delivered: () => got.length,
    });
    expect(got).toEqual(want);
    expect(short).toBeGreaterThan(0);
    expect(objects.size).toBe(1);
    expect(blob!.equals((want.at(-1) as { blob: Buffer }).blob)).toBe(true); // refilled by the last record read
    // kept past its listener calls, the cursor reads a zeroed record, not the ring's reused bytes
    expect(plain([...objects][0]!, wide)).toEqual(wide.decode(Buffer.alloc(wide.size), 0));
    expect(rb.stats()).toMatchObject({ records: want.length, malformed: short, pendingBytes: 0, lost: 0, undelivered: 0 });
    expect(errors).toBe(short);
  });

  it('pause() and close() inside a listener consume exactly the records delivered; the next reader gets the rest, none lost or repeated', async () => {
    const N = 200;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    await prog.testRun(frame64, { repeat: N });
    const first = obj.ringBuffer('events', rec64, { batchSize: 64, lazy: 'cursor' });
    const seqs: number[] = [];
    let afterClose: unknown;
    first.on('data', (r) => {
      seqs.push(r.seq);
      expect(r.fill.every((b) => b === 0xab)).toBe(true);
      if (r.seq === 10 || r.seq === 100) first.pause();
      if (r.seq === 150) {
        first.close();
        afterClose = plain(r, rec64); // the cursor no longer reads the ring
      }
    });
    expect(await until(() => seqs.length === 11)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(seqs.length).toBe(11);
    expect(first.stats().pendingBytes).toBe((N - 11) * 72); // consumed up to the record whose listener paused
    first.resume();
    expect(await until(() => seqs.length === 101)).toBe(true);
    expect(first.stats().pendingBytes).toBe((N - 101) * 72);
    first.resume();
    expect(await until(() => first.closed)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(seqs).toEqual(Array.from({ length: 151 }, (_, i) => i));
    expect(afterClose).toEqual({ seq: 0, ktime: 0, len: 0, ifindex: 0, fill: Buffer.alloc(40) });
    expect(first.stats().undelivered).toBe(0);
    using second = obj.ringBuffer('events', rec64, { lazy: 'cursor' });
    expect(second.stats().pendingBytes).toBe((N - 151) * 72);
    second.on('data', (r) => seqs.push(r.seq));
    expect(await until(() => seqs.length === N)).toBe(true);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(second.stats().pendingBytes).toBe(0);
  });

  it('a listener that throws: the exception reaches uncaughtException, its record is consumed, the rest arrive after it once each (child process)', async () => {
    const r = await runChild(
      `const rb = obj.ringBuffer('events', rec, { lazy: 'cursor', batchSize: 64 });
       const seqs = [];
       rb.on('data', (r) => { seqs.push(Number(r.seq)); if (r.seq === 3n || r.seq === 40n) throw new Error('boom'); });
       process.on('uncaughtException', (e) => console.log('caught', e.message, seqs.length, rb.stats().pendingBytes));
       await obj.xdpProgram('xdp_one_record').testRun(Buffer.alloc(64), { repeat: 50 });
       setTimeout(() => { console.log(JSON.stringify({ seqs, pending: rb.stats().pendingBytes })); rb.close(); }, 200);`,
      { killAfterMs: 10_000 },
    );
    expect(r).toMatchObject({ code: 0, killed: false });
    expect(r.out).toContain(`caught boom 4 ${46 * 72}`); // records 0-3 consumed, the rest still in the ring
    expect(r.out).toContain(`caught boom 41 ${9 * 72}`);
    expect(JSON.parse(r.out.trim().split('\n').pop()!)).toEqual({ seqs: Array.from({ length: 50 }, (_, i) => i), pending: 0 });
  });

  it("'batch' listeners and iterators get ordinary lazy views, each kept view reading its own record", async () => {
    const N = 300;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { lazy: 'cursor', batchSize: 32 });
    await prog.testRun(frame64, { repeat: N });
    const kept: ReturnType<typeof rec64.decode>[] = [];
    rb.on('batch', () => {});
    rb.on('data', (r) => kept.push(r));
    expect(await until(() => kept.length === N)).toBe(true);
    rb.removeAllListeners();
    await prog.testRun(frame64, { repeat: N });
    for await (const r of rb.iterate({ closeOnReturn: false })) {
      kept.push(r);
      if (kept.length === 2 * N) break;
    }
    expect(new Set(kept).size).toBe(2 * N);
    kept.forEach((r, i) => expect([r.seq, r.fill.length]).toEqual([i, 40]));
  });
});
