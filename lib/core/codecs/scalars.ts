/** Integer, boolean, byte-string and C-string codecs. */
import { invalidArgument } from '../errors.js';
import { builtin, PLAIN_BYTES } from './generate.js';
import { checkInt, checkSize, copyOut, HOST_LE, plural, room, show, view } from './shared.js';
import type { Codec } from './types.js';

type Getter = (d: DataView, o: number, le: boolean) => number;
type Setter = (d: DataView, o: number, v: number, le: boolean) => void;
const ACCESS: Record<string, [Getter, Setter]> = {
  u8: [(d, o) => d.getUint8(o), (d, o, v) => d.setUint8(o, v)],
  i8: [(d, o) => d.getInt8(o), (d, o, v) => d.setInt8(o, v)],
  u16: [(d, o, le) => d.getUint16(o, le), (d, o, v, le) => d.setUint16(o, v, le)],
  i16: [(d, o, le) => d.getInt16(o, le), (d, o, v, le) => d.setInt16(o, v, le)],
  u32: [(d, o, le) => d.getUint32(o, le), (d, o, v, le) => d.setUint32(o, v, le)],
  i32: [(d, o, le) => d.getInt32(o, le), (d, o, v, le) => d.setInt32(o, v, le)],
};

/** Conditions true exactly for the numbers checkInt accepts, per integer type. */
const INT_OK: Record<string, (x: string) => string> = {
  u8: (x) => `(${x} & 0xff) === ${x}`,
  u16: (x) => `(${x} & 0xffff) === ${x}`,
  u32: (x) => `(${x} >>> 0) === ${x}`,
  i8: (x) => `(${x} << 24 >> 24) === ${x}`,
  i16: (x) => `(${x} << 16 >> 16) === ${x}`,
  i32: (x) => `(${x} | 0) === ${x}`,
};

function intCodec(name: string, size: 1 | 2 | 4, signed: boolean, le = HOST_LE): Codec<number> {
  const bits = size * 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const type = (signed ? 'i' : 'u') + bits;
  const [get, set] = ACCESS[type];
  const access = `${signed ? 'Int' : 'Uint'}${bits}`;
  const order = size === 1 ? '' : `, ${le}`;
  return builtin<Codec<number>>(
    {
      name,
      size,
      align: size,
      layout: { kind: 'int', size, signed },
      encode(v, buf, off) {
        set(view(buf), off, checkInt(v, min, max, name), le);
      },
      decode: (buf, off) => get(view(buf), off, le),
    },
    {
      view: true,
      standalone: true,
      check: (x) => `typeof ${x} === "number" && ${INT_OK[type](x)}`,
      write: (x, at) => `d.set${access}(${at(0)}, ${x}${order});`,
      read: (at) => `d.get${access}(${at(0)}${order})`,
    },
  );
}

function int64Codec(name: string, signed: boolean): Codec<bigint, bigint | number> {
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  const big = signed ? 'BigInt64' : 'BigUint64';
  return builtin<Codec<bigint, bigint | number>>(
    {
      name,
      size: 8,
      align: 8,
      layout: { kind: 'int', size: 8, signed },
      encode(v, buf, off) {
        let b: bigint;
        if (typeof v === 'bigint') b = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
        else if (typeof v === 'number' && Number.isInteger(v)) invalidArgument(name, `${v} is not a safe integer; pass a bigint`);
        else invalidArgument(name, `expected a bigint or a safe integer, got ${show(v)}`);
        if (b < min || b > max) invalidArgument(name, `expected an integer in ${min}..${max}, got ${b}`);
        if (signed) view(buf).setBigInt64(off, b, HOST_LE);
        else view(buf).setBigUint64(off, b, HOST_LE);
      },
      decode: signed ? (buf, off) => view(buf).getBigInt64(off, HOST_LE) : (buf, off) => view(buf).getBigUint64(off, HOST_LE),
    },
    {
      view: true,
      standalone: true,
      check: (x) =>
        `(typeof ${x} === "bigint" ? BigInt.${signed ? 'asIntN' : 'asUintN'}(64, ${x}) === ${x} : ` +
        `typeof ${x} === "number" && Number.isSafeInteger(${x})${signed ? '' : ` && ${x} >= 0`})`,
      // A number is written as two 32-bit halves (no BigInt made), the higher offset first so
      // that a buffer too small throws before anything is written, as one 64-bit write does.
      write: (x, at) => {
        const [lo, hi] = HOST_LE ? [at(0), at(4)] : [at(4), at(0)];
        const halves = [`d.setUint32(${lo}, low, ${HOST_LE});`, `d.set${signed ? 'Int' : 'Uint'}32(${hi}, (${x} - low) / 4294967296, ${HOST_LE});`];
        if (HOST_LE) halves.reverse();
        return `if (typeof ${x} === "bigint") d.set${big}(${at(0)}, ${x}, ${HOST_LE}); else { const low = ${x} >>> 0; ${halves.join(' ')} }`;
      },
      read: (at) => `d.get${big}(${at(0)}, ${HOST_LE})`,
    },
  );
}

const TWO32 = 4294967296;

/**
 * A 64-bit integer decoded as a number, read as two 32-bit halves (no BigInt made):
 * hi * 2^32 + lo, one rounding, so the value is exact up to 2^53 and otherwise the nearest
 * double, the same number `Number()` of the bigint gives. Encode takes a bigint or any
 * integer number in range (every integer-valued double is written exactly).
 */
function int64NumberCodec(name: string, signed: boolean): Codec<number, number | bigint> {
  const minN = signed ? -(2 ** 63) : 0;
  const maxN = 2 ** 64 / (signed ? 2 : 1); // exclusive
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  const hiType = signed ? 'Int32' : 'Uint32';
  const [loAt, hiAt] = HOST_LE ? [0, 4] : [4, 0];
  const decode = (buf: Buffer, off: number): number => {
    const d = view(buf);
    const hi = signed ? d.getInt32(off + hiAt, HOST_LE) : d.getUint32(off + hiAt, HOST_LE);
    return hi * TWO32 + d.getUint32(off + loAt, HOST_LE);
  };
  return builtin<Codec<number, number | bigint>>(
    {
      name,
      size: 8,
      align: 8,
      layout: { kind: 'int', size: 8, signed },
      encode(v, buf, off) {
        const d = view(buf);
        if (typeof v === 'bigint') {
          if (v < min || v > max) invalidArgument(name, `expected an integer in ${min}..${max}, got ${v}`);
          if (signed) d.setBigInt64(off, v, HOST_LE);
          else d.setBigUint64(off, v, HOST_LE);
          return;
        }
        if (typeof v !== 'number' || !Number.isInteger(v)) invalidArgument(name, `expected an integer number or a bigint, got ${show(v)}`);
        if (v < minN || v >= maxN) invalidArgument(name, `expected an integer in ${min}..${max}, got ${v}`);
        // the higher offset first: a buffer too small throws before anything is written
        const hi = Math.floor(v / TWO32);
        const writeLo = (): void => d.setUint32(off + loAt, v - hi * TWO32, HOST_LE);
        if (!HOST_LE) writeLo();
        if (signed) d.setInt32(off + hiAt, hi, HOST_LE);
        else d.setUint32(off + hiAt, hi, HOST_LE);
        if (HOST_LE) writeLo();
      },
      decode,
    },
    {
      view: true,
      standalone: true,
      check: (x) =>
        `(typeof ${x} === "bigint" ? BigInt.${signed ? 'asIntN' : 'asUintN'}(64, ${x}) === ${x} : ` +
        `typeof ${x} === "number" && Number.isInteger(${x}) && ${x} >= ${minN} && ${x} < ${maxN})`,
      // the higher offset first, so that a buffer too small throws before anything is written
      write: (x, at) => {
        const halves = [`d.setUint32(${at(loAt)}, ${x} - hi * 4294967296, ${HOST_LE});`, `d.set${hiType}(${at(hiAt)}, hi, ${HOST_LE});`];
        if (HOST_LE) halves.reverse();
        return (
          `if (typeof ${x} === "bigint") d.set${signed ? 'BigInt64' : 'BigUint64'}(${at(0)}, ${x}, ${HOST_LE}); ` +
          `else { const hi = Math.floor(${x} / 4294967296); ${halves.join(' ')} }`
        );
      },
      read: (at) => `(d.get${hiType}(${at(hiAt)}, ${HOST_LE}) * 4294967296 + d.getUint32(${at(loAt)}, ${HOST_LE}))`,
    },
  );
}

/** Unsigned 8-bit integer (`__u8`), decoded as a number. */
export const u8 = intCodec('u8', 1, false);
/** Unsigned 16-bit integer in host byte order (`__u16`). */
export const u16 = intCodec('u16', 2, false);
/** Unsigned 32-bit integer in host byte order (`__u32`). */
export const u32 = intCodec('u32', 4, false);
/** Signed 8-bit integer (`__s8`). */
export const i8 = intCodec('i8', 1, true);
/** Signed 16-bit integer in host byte order (`__s16`). */
export const i16 = intCodec('i16', 2, true);
/** Signed 32-bit integer in host byte order (`__s32`). */
export const i32 = intCodec('i32', 4, true);
/** Unsigned 64-bit integer (`__u64`): decoded as a bigint; encode also takes a safe-integer number. */
export const u64 = int64Codec('u64', false);
/** Signed 64-bit integer (`__s64`): decoded as a bigint; encode also takes a safe-integer number. */
export const i64 = int64Codec('i64', true);
/**
 * Unsigned 64-bit integer (`__u64`) decoded as a number instead of a bigint, for counters
 * and timestamps read at high rates (no BigInt per value). Exact up to 2^53 - 1
 * (`Number.MAX_SAFE_INTEGER`); a larger value decodes as the nearest double, the same as
 * `Number()` of the u64 bigint (a ktime_get_ns() timestamp passes 2^53 after ~104 days of
 * uptime and is then within 1 ns). Encode takes a bigint or any integer number in
 * 0..2^64-1; decode then encode writes back the same bytes only below 2^53 (the last 1024
 * values below 2^64 decode as 2^64, which encode refuses). Use u64 where
 * every bit matters.
 */
export const u64n = int64NumberCodec('u64n', false);
/** Signed 64-bit integer (`__s64`) decoded as a number: as {@link u64n}, exact within ±(2^53 - 1). */
export const i64n = int64NumberCodec('i64n', true);
/** Network byte order (big endian), e.g. ports as stored in packet headers. */
export const be16 = intCodec('be16', 2, false, false);
/** 32-bit unsigned integer in network byte order (big endian). */
export const be32 = intCodec('be32', 4, false, false);

/** One byte: false is 0, true is 1; decodes any non-zero byte as true. */
export const bool: Codec<boolean> = builtin<Codec<boolean>>(
  {
    name: 'bool',
    size: 1,
    align: 1,
    layout: { kind: 'int', size: 1, signed: false },
    encode(v, buf, off) {
      if (typeof v !== 'boolean') invalidArgument('bool', `expected true or false, got ${show(v)}`);
      view(buf).setUint8(off, v ? 1 : 0);
    },
    decode: (buf, off) => view(buf).getUint8(off) !== 0,
  },
  {
    view: true,
    standalone: true,
    check: (x) => `typeof ${x} === "boolean"`,
    write: (x, at) => `d.setUint8(${at(0)}, ${x} ? 1 : 0);`,
    read: (at) => `d.getUint8(${at(0)}) !== 0`,
  },
);

/** Opaque fixed-size bytes. `align` (default 1) lets it stand in for e.g. `__be32 addr[4]`. */
export function bytes(n: number, align: 1 | 2 | 4 | 8 = 1): Codec<Buffer, Uint8Array> {
  checkSize(n, 'bytes', 1);
  if (![1, 2, 4, 8].includes(align)) invalidArgument('bytes', `align must be 1, 2, 4 or 8, got ${show(align)}`);
  const name = `bytes[${n}]`;
  const c = builtin<Codec<Buffer, Uint8Array>>(
    {
      name,
      size: n,
      align,
      layout: { kind: 'bytes', size: n },
      encode(v, buf, off) {
        if (!(v instanceof Uint8Array) || v.length !== n) invalidArgument(name, `expected a Buffer or Uint8Array of ${n} bytes, got ${show(v)}`);
        room(buf, off, n);
        buf.set(v, off);
      },
      decode(buf, off) {
        room(buf, off, n);
        return copyOut(buf, off, n);
      },
    },
    {
      view: false,
      standalone: false,
      check: (x) => `${x} instanceof Uint8Array && ${x}.length === ${n}`,
      write: (x, at) => `buf.set(${x}, ${at(0)});`,
      read: (at) => `copyOut(buf, ${at(0)}, ${n})`,
    },
  );
  PLAIN_BYTES.add(c);
  return c;
}

/**
 * Fixed-size NUL-padded UTF-8 string (C `char name[n]`). Encode requires room for the NUL
 * terminator (at most n-1 bytes) so C code can rely on it; decode stops at the first NUL or
 * after n bytes.
 */
export function cstring(n: number): Codec<string> {
  checkSize(n, 'cstring', 1);
  const name = `cstring[${n}]`;
  return builtin<Codec<string>>({
    name,
    size: n,
    align: 1,
    layout: { kind: 'array', size: n, length: n, elem: { kind: 'int', size: 1, signed: false } },
    encode(v, buf, off) {
      if (typeof v !== 'string') invalidArgument(name, `expected a string, got ${show(v)}`);
      if (v.includes('\0')) invalidArgument(name, `${show(v)} contains a NUL character`);
      const len = Buffer.byteLength(v);
      if (len > n - 1) invalidArgument(name, `${show(v)} is ${plural(len, 'byte')} but at most ${n - 1} fit (plus the NUL terminator)`);
      room(buf, off, n);
      buf.fill(0, off, off + n);
      buf.write(v, off, 'utf8');
    },
    decode(buf, off) {
      room(buf, off, n);
      const nul = buf.subarray(off, off + n).indexOf(0);
      return buf.toString('utf8', off, off + (nul === -1 ? n : nul));
    },
  });
}
