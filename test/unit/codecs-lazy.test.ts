/**
 * Lazy record views (lib/core/codecs/lazy.ts, RingBuffer's `lazy` option): every field of
 * a view equals the struct's own decode, for random records of structs with every kind of
 * member (integers of each width and sign, bigint, bool, bytes, addresses, C strings,
 * arrays, nested structs, padding), compiled and generic.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { array, be16, be32, bool, bytes, cstring, i16, i32, i64, i8, ipv4, ipv6, mac, struct, u16, u32, u64, u8 } from '../../lib/index.js';
import { genericFactory, genericTransient, lazyFactory, transientFactory } from '../../lib/core/codecs/lazy.js';
import { STRUCT_MEMBERS } from '../../lib/core/codecs/generate.js';

const inner = struct('inner', { a: u16, b: u64, tag: bytes(3) });
const all = struct('all_kinds', [
  { name: 'seq', codec: u64 },
  { name: 'delta', codec: i64 },
  { name: 'x8', codec: u8 },
  { name: 's8', codec: i8 },
  { name: 'x16', codec: u16 },
  { name: 's16', codec: i16 },
  { name: 'port', codec: be16 },
  { name: 'x32', codec: u32 },
  { name: 's32', codec: i32 },
  { name: 'n32', codec: be32 },
  { name: 'ok', codec: bool },
  { name: '_pad', codec: bytes(3) },
  { name: 'fill', codec: bytes(40) },
  { name: 'src', codec: ipv4 },
  { name: 'dst6', codec: ipv6 },
  { name: 'hw', codec: mac },
  { name: 'comm', codec: cstring(16) },
  { name: 'ids', codec: array(u32, 5) },
  { name: 'stamps', codec: array(u64, 2) },
  { name: 'in', codec: inner },
  { name: 'ins', codec: array(inner, 2) },
  { name: 'big', codec: bytes(100) },
]);
const names = Object.keys(all.decode(Buffer.alloc(all.size), 0));

function checkView(view: Record<string, unknown>, eager: Record<string, unknown>): void {
  for (const k of names) if (k !== 'in') expect(view[k], k).toEqual(eager[k]);
  // nested struct views read the same as the nested plain objects
  const vin = view.in as Record<string, unknown>;
  for (const k of ['a', 'b', 'tag']) expect(vin[k], `in.${k}`).toEqual((eager.in as Record<string, unknown>)[k]);
}

describe('lazy record views', () => {
  it('only struct codecs have views', () => {
    expect(lazyFactory(u32)).toBeUndefined();
    expect(lazyFactory(array(u32, 2))).toBeUndefined();
    expect(lazyFactory(all)).toBeTypeOf('function');
    expect(lazyFactory(all)).toBe(lazyFactory(all));
  });

  for (const [label, make] of [
    ['compiled', () => lazyFactory(all)!],
    ['generic', () => genericFactory(STRUCT_MEMBERS.get(all)!)],
  ] as const) {
    it(`${label}: every field of 200 random records equals the eager decode, at any offset`, () => {
      const f = make() as (b: Buffer, d: DataView, o: number) => Record<string, unknown>;
      for (let i = 0; i < 200; i++) {
        const off = 8 * (i % 5);
        const buf = randomBytes(off + all.size + 8);
        // a C string decodes up to its first NUL; random bytes give both cases
        const view = f(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), off);
        checkView(view, all.decode(buf, off) as Record<string, unknown>);
      }
    });
  }

  for (const [label, make] of [
    ['transient compiled', () => transientFactory(all)!],
    ['transient generic', () => genericTransient(STRUCT_MEMBERS.get(all)!)],
  ] as const) {
    it(`${label}: one view moved across 200 random records reads each as the eager decode`, () => {
      const t = make();
      const n = 200;
      const buf = randomBytes(8 + n * all.size);
      const view = t.make(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength)) as Record<string, unknown>;
      const kept: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        const off = 8 + i * all.size;
        t.seek(view, off);
        checkView(view, all.decode(buf, off) as Record<string, unknown>);
        kept.push(view.fill as Buffer);
      }
      // values read from it stay valid after it moved on (Buffers over the same memory)
      kept.forEach((f, i) => expect(f.equals((all.decode(buf, 8 + i * all.size) as { fill: Buffer }).fill)).toBe(true));
    });
  }

  it('transient bytes fields are Buffers (instanceof, methods, inspect) over the record, subarray gives a plain Buffer', () => {
    const buf = Buffer.alloc(all.size);
    const t = transientFactory(all)!;
    const v = t.make(buf, new DataView(buf.buffer)) as { fill: Buffer };
    t.seek(v as never, 0);
    const off = STRUCT_MEMBERS.get(all)!.find((m) => m.name === 'fill')!.offset;
    buf.fill(0xab, off, off + 40);
    const f = v.fill;
    expect(Buffer.isBuffer(f)).toBe(true);
    expect(f).toBeInstanceOf(Buffer);
    expect(f.length).toBe(40);
    expect(f.toString('hex')).toBe('ab'.repeat(40));
    expect(f.readUInt32LE(36)).toBe(0xabababab);
    expect(f.equals(Buffer.alloc(40, 0xab))).toBe(true);
    expect(inspect(f).startsWith('<Buffer ab ab')).toBe(true);
    expect(Object.getPrototypeOf(f.subarray(1, 3))).toBe(Buffer.prototype);
    buf[off] = 1;
    expect(f[0]).toBe(1); // a view, no copy
  });

  it('padding fields are not there; fields are getters on the prototype, not own properties', () => {
    const buf = randomBytes(all.size);
    const v = lazyFactory(all)!(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), 0) as Record<string, unknown>;
    expect(v._pad).toBeUndefined();
    expect(Object.keys(v)).toEqual([]);
    expect('seq' in v).toBe(true);
    expect(Object.prototype.toString.call(v)).toBe('[object struct all_kinds]');
  });

  it('a bytes field is a Buffer over the record (no copy); the eager decode copies', () => {
    const buf = Buffer.alloc(all.size);
    const v = lazyFactory(all)!(buf, new DataView(buf.buffer), 0) as { fill: Buffer; seq: bigint };
    const e = all.decode(buf, 0) as { fill: Buffer };
    const off = STRUCT_MEMBERS.get(all)!.find((m) => m.name === 'fill')!.offset;
    buf[off] = 7;
    expect(Buffer.isBuffer(v.fill)).toBe(true);
    expect(v.fill[0]).toBe(7);
    expect(e.fill[0]).toBe(0);
    buf.writeBigUInt64LE(123n, 0);
    expect(v.seq).toBe(123n);
  });

  it('field names that are keywords or "constructor" read like any other', () => {
    const odd = struct('odd', { class: u32, constructor: u16, new: u8 });
    const buf = randomBytes(odd.size);
    const v = lazyFactory(odd)!(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), 0) as Record<string, unknown>;
    const e = odd.decode(buf, 0) as Record<string, unknown>;
    for (const k of ['class', 'constructor', 'new']) expect(v[k], k).toBe(e[k]);
  });
});
