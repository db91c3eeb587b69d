/**
 * u64n / i64n: 64-bit integers decoded as numbers. For random bit patterns (most of them
 * above 2^53) the decoded number is exactly Number() of the u64/i64 bigint, standalone, in
 * compiled and generic structs, in lazy and transient views; below 2^53 it is exact and
 * round-trips; encode writes any integer number in range exactly and refuses the rest with
 * the field named, before writing.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BpfkitError, i64, i64n, struct, u32, u64, u64n, type Codec } from '../../lib/index.js';
import { genericFactory, genericTransient, lazyFactory, transientFactory, type TransientFactory } from '../../lib/core/codecs/lazy.js';
import { STRUCT_MEMBERS } from '../../lib/core/codecs/generate.js';

/** Random 8-byte patterns with every magnitude: a random number of high bits cleared. */
function patterns(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const b = randomBytes(8);
    let v = b.readBigUInt64LE(0) >> BigInt(i % 65);
    if (i % 7 === 0) v = (1n << BigInt(53 + (i % 11))) - BigInt(i % 3); // near powers of two
    b.writeBigUInt64LE(v & ((1n << 64n) - 1n), 0);
    if (i % 5 === 0) b[7]! |= 0x80; // negative as i64
    out.push(b);
  }
  return out;
}

const pair = [
  [u64n, u64],
  [i64n, i64],
] as const;

function fail(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BpfkitError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('u64n / i64n', () => {
  it('decode gives Number() of the bigint for random values, most above 2^53', () => {
    let above = 0;
    for (const b of patterns(3000)) {
      for (const [n, big] of pair) {
        const want = Number(big.decode(b, 0));
        expect(n.decode(b, 0)).toBe(want);
        if (Math.abs(want) > Number.MAX_SAFE_INTEGER) above++;
      }
    }
    expect(above).toBeGreaterThan(1000);
  });

  it('is exact below 2^53 and round-trips: encode(number) writes the bigint bytes', () => {
    const vals = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 0x123456789a, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 500; i++) vals.push(Math.floor(Math.random() * Number.MAX_SAFE_INTEGER));
    const a = Buffer.alloc(8);
    const b = Buffer.alloc(8);
    for (const v of vals) {
      for (const s of v === 0 ? [0] : [v, -v]) {
        if (s >= 0) {
          u64n.encode(s, a, 0);
          u64.encode(s, b, 0);
          expect(a.equals(b), String(s)).toBe(true);
          expect(u64n.decode(a, 0)).toBe(s);
        }
        i64n.encode(s, a, 0);
        i64.encode(s, b, 0);
        expect(a.equals(b), String(s)).toBe(true);
        expect(i64n.decode(a, 0)).toBe(s);
      }
    }
  });

  it('encode writes integer numbers above 2^53 and bigints exactly', () => {
    const buf = Buffer.alloc(8);
    for (const v of [2 ** 53 + 2, 2 ** 60 + 2 ** 20, 2 ** 64 - 2048, 2 ** 63 - 1024]) {
      u64n.encode(v, buf, 0);
      expect(u64.decode(buf, 0)).toBe(BigInt(v));
    }
    for (const v of [-(2 ** 63), -(2 ** 60) - 2 ** 12, 2 ** 62]) {
      i64n.encode(v, buf, 0);
      expect(i64.decode(buf, 0)).toBe(BigInt(v));
    }
    u64n.encode(2n ** 64n - 1n, buf, 0);
    expect(u64.decode(buf, 0)).toBe(2n ** 64n - 1n);
    expect(u64n.decode(buf, 0)).toBe(2 ** 64); // the nearest double (documented)
  });

  it('refuses out-of-range and non-integer values with the field named, writing nothing', () => {
    const buf = Buffer.alloc(8, 0x55);
    for (const v of [-1, 2 ** 64, 1.5, NaN, Infinity, '1', -1n, 2n ** 64n, null]) {
      expect(fail(() => u64n.encode(v as number, buf, 0)).field, String(v)).toBe('u64n');
    }
    for (const v of [2 ** 63, -(2 ** 63) - 4096, 0.5, 2n ** 63n, -(2n ** 63n) - 1n]) {
      expect(fail(() => i64n.encode(v as number, buf, 0)).field, String(v)).toBe('i64n');
    }
    const s = struct('n64', { a: u32, t: u64n });
    expect(fail(() => s.encode({ a: 1, t: -5 }, Buffer.alloc(16), 0)).field).toBe('struct n64.t');
    expect(buf.equals(Buffer.alloc(8, 0x55))).toBe(true);
    expect(() => u64n.encode(1, Buffer.alloc(7), 0)).toThrow(RangeError);
  });

  it('in structs (compiled), lazy and transient views (compiled and generic), equal the bigint struct as numbers', () => {
    const nums = struct('nums', { seq: u64n, ktime: u64n, len: u32, delta: i64n });
    const bigs = struct('nums', { seq: u64, ktime: u64, len: u32, delta: i64 });
    const members = STRUCT_MEMBERS.get(nums)!;
    const views: [string, (b: Buffer, d: DataView, o: number) => Record<string, unknown>][] = [
      ['lazy', lazyFactory(nums) as never],
      ['lazy generic', genericFactory(members) as never],
    ];
    const transients: [string, TransientFactory<unknown>][] = [
      ['transient', transientFactory(nums)!],
      ['transient generic', genericTransient(members)],
    ];
    for (const [label, t] of transients) {
      views.push([
        label,
        (b, d, o) => {
          const v = t.make(b, d) as Record<string, unknown>;
          t.seek(v, o);
          return v;
        },
      ]);
    }
    const buf = Buffer.concat(patterns(400)); // 100 records of 32 bytes
    const d = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let o = 0; o + nums.size <= buf.length; o += nums.size) {
      const big = bigs.decode(buf, o) as Record<string, bigint | number>;
      const want = { seq: Number(big.seq), ktime: Number(big.ktime), len: big.len, delta: Number(big.delta) };
      expect(nums.decode(buf, o)).toEqual(want);
      for (const [label, make] of views) {
        const v = make(buf, d, o);
        expect({ seq: v.seq, ktime: v.ktime, len: v.len, delta: v.delta }, label).toEqual(want);
      }
    }
  });

  it('have the layout of u64 / i64 (BTF checks accept them for __u64 / __s64)', () => {
    expect((u64n as Codec<unknown>).layout).toEqual(u64.layout);
    expect((i64n as Codec<unknown>).layout).toEqual(i64.layout);
  });
});
