/**
 * Codecs: JS values <-> the raw bytes of BPF map keys/values and ring-buffer records.
 *
 * Conventions
 * - Integers (u16/u32/u64/..., lpmKey's prefixlen) are in host byte order; be16/be32 and the
 *   address codecs (ipv4, ipv6, mac) are in network order, as they appear in packets.
 * - encode() validates its input and throws BpfkitError ERR_INVALID_ARGUMENT whose `field`
 *   is the path to the bad value ('u32', 'struct flow_key.sport', 'struct k.ports[2]').
 *   It writes exactly `size` bytes at `offset` (padding zeroed). On error the target bytes
 *   are unspecified. A buffer too small for `offset + size` is a programming error and
 *   throws a plain RangeError (from encode and decode).
 * - decode() never keeps a reference to `buf`: Buffers it returns are copies.
 * - Struct fields whose name starts with '_' are padding/reserved: optional on encode
 *   (zero-filled when absent) and left out of decoded objects.
 */
import { endianness } from 'node:os';
import { BpfkitError, invalidArgument } from './errors.js';

export type Layout =
  | { kind: 'int'; size: number; signed: boolean }
  | { kind: 'bytes'; size: number }
  | { kind: 'array'; size: number; length: number; elem: Layout }
  | { kind: 'struct'; size: number; name: string; members: { name: string; offset: number; layout: Layout }[] };

/**
 * `T` is what decode returns; `In` is what encode accepts (defaults to `T`). They differ only
 * where encode is lenient: u64/i64 take safe-integer numbers, lpmKey takes CIDR strings,
 * bytes takes any Uint8Array, struct padding fields are optional.
 */
export interface Codec<T, In = T> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly layout: Layout;
  encode(value: In, buf: Buffer, offset: number): void;
  decode(buf: Buffer, offset: number): T;
}

/** The decoded type of a codec. */
export type Infer<C> = C extends Codec<infer T, any> ? T : never;
/** The type a codec's encode accepts. */
export type InferInput<C> = C extends Codec<any, infer I> ? I : never;

// ---------------------------------------------------------------------------------------------
// Shared helpers

const HOST_LE = endianness() === 'LE';

// Two-entry DataView cache: callers typically encode/decode many values into one or two
// scratch buffers (a batch's keys and values alternate), so this avoids a DataView
// allocation per call. Each view covers exactly its `buf`, so DataView's own bounds
// checks apply to the Buffer, not to a shared pool ArrayBuffer.
let bufA: Uint8Array | undefined;
let viewA: DataView | undefined;
let bufB: Uint8Array | undefined;
let viewB: DataView | undefined;
let nextIsA = true;
function view(buf: Uint8Array): DataView {
  if (buf === bufA) return viewA!;
  if (buf === bufB) return viewB!;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (nextIsA) {
    bufA = buf;
    viewA = v;
  } else {
    bufB = buf;
    viewB = v;
  }
  nextIsA = !nextIsA;
  return v;
}

function room(buf: Uint8Array, offset: number, size: number): void {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + size <= buf.length)) {
    throw new RangeError(`need ${size} bytes at offset ${offset} but the buffer is ${buf.length} bytes`);
  }
}

/** Short description of a value for error messages. */
function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `a ${v.constructor.name} of ${v.length} bytes`;
  return 'an object';
}

const roundUp = (n: number, align: number): number => Math.ceil(n / align) * align;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const isPaddingField = (name: string): boolean => name.startsWith('_');

function isCodec(c: unknown): c is Codec<unknown> {
  const o = c as Codec<unknown> | null;
  return typeof o === 'object' && o !== null && typeof o.encode === 'function' &&
    typeof o.decode === 'function' && Number.isInteger(o.size) && Number.isInteger(o.align);
}

/**
 * Re-throw an ERR_INVALID_ARGUMENT from an inner codec with the path of the outer value:
 * field 'u32' inside member 'a' becomes 'struct k.a' (message 'struct k.a (u32): ...'),
 * field 'struct inner.x' inside member 'in' becomes 'struct outer.in.x'.
 */
function withPath(err: unknown, inner: string, path: string): unknown {
  if (!(err instanceof BpfkitError) || err.code !== 'ERR_INVALID_ARGUMENT' || err.field === undefined) return err;
  const f = err.field;
  const rest = err.message.startsWith(f) ? err.message.slice(f.length) : `: ${err.message}`;
  const field = f !== inner && f.startsWith(inner) ? path + f.slice(inner.length) : path;
  const message = f === inner ? `${path} (${inner})${rest}` : `${field}${rest}`;
  return new BpfkitError('ERR_INVALID_ARGUMENT', message, err.details ? { field, details: err.details } : { field });
}

/** A fresh copy of `n` bytes at `off` (the caller has checked the bounds). */
function copyOut(buf: Uint8Array, off: number, n: number): Buffer {
  if (n > 64) return Buffer.from(buf.subarray(off, off + n));
  const out = Buffer.allocUnsafe(n); // a slice of Node's pool, like Buffer.from of a small array
  for (let i = 0; i < n; i++) out[i] = buf[off + i];
  return out;
}

const DECIMAL = Array.from({ length: 256 }, (_, i) => String(i));
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

// ---------------------------------------------------------------------------------------------
// Compiled code
//
// The integer codecs, struct() and array() are compiled once, when made, into small
// functions with the byte offsets and limits as constants, the common members (integers,
// bool, ipv4, bytes) read and written in place through one DataView, decoded objects built
// by one object literal (one V8 shape) and other members called directly (each struct has
// its own call sites, so none is shared by every codec as the generic loops are). An inline
// form accepts only values the codec's own encode accepts and writes the same bytes; any
// other value goes to the codec itself, so errors (class, message, field path) are those of
// the generic code, which stays as the fallback where code generation from strings is
// disabled (node --disallow-code-generation-from-strings).

/** How compiled code reads and writes one member in place. `at(k)` is the JS expression of byte k of the member. */
interface Inline {
  /** Uses the DataView `d` (over `buf`). */
  view: boolean;
  /** Reads and writes check their own bounds (DataView), so the codec can be compiled on its own. */
  standalone: boolean;
  /** Condition on the variable `x`, true only for values encode accepts; may write them (ipv4 parses in place). */
  check(x: string, at: (k: number) => string): string;
  /** Statements writing an `x` that passed check. */
  write(x: string, at: (k: number) => string): string;
  /** Expression decoding the member; bounds already checked unless `standalone`. */
  read(at: (k: number) => string): string;
}

const INLINE = new WeakMap<object, Inline>();
/** Codecs made here: their encode writes all `size` bytes, so a struct zeroes only the bytes around them. */
const WRITES_ALL = new WeakSet<object>();

const ENV: Record<string, unknown> = { view, room, show, invalidArgument, withPath, hasOwn, copyOut, ipv4Into, DECIMAL, fill: Uint8Array.prototype.fill };
const lit = (s: string): string => JSON.stringify(s);
/** The condition of room(buf, off, size), inline. */
const fits = (size: number): string => `Number.isInteger(off) && off >= 0 && off + ${size} <= buf.length`;

/** `function <name>(<params>) { <body> }` with ENV and `env` in scope, or undefined where code generation is disabled. */
function compile<F>(name: string, params: string, body: string, env: Record<string, unknown> = {}): F | undefined {
  const all = { ...ENV, ...env };
  try {
    return new Function(...Object.keys(all), `'use strict';\nreturn function ${name}(${params}) {\n${body}\n};`)(...Object.values(all)) as F;
  } catch (e) {
    if (e instanceof EvalError) return undefined;
    throw e;
  }
}

type EncodeFn = (v: any, buf: Buffer, off: number) => void;
type DecodeFn = (buf: Buffer, off: number) => any;

/** Registers a codec of this module (and its inline form); compiles it on its own where the form allows. */
function builtin<C extends Codec<any, any>>(codec: C, inline?: Inline): C {
  WRITES_ALL.add(codec);
  if (!inline) return codec;
  INLINE.set(codec, inline);
  if (!inline.standalone) return codec;
  const at = (k: number): string => (k ? `off + ${k}` : 'off');
  const id = codec.name.replace(/\W/g, '_');
  // u64/i64 write a number as two halves at off and off + 4: a non-integer offset (which
  // DataView would truncate) goes to the generic code instead
  const guard = codec.size === 8 ? 'Number.isInteger(off) && ' : '';
  const encode = compile<EncodeFn>(`encode_${id}`, 'v, buf, off', `if (${guard}${inline.check('v', at)}) {\nconst d = view(buf);\n${inline.write('v', at)}\n} else generic(v, buf, off);`, { generic: codec.encode });
  const decode = compile<DecodeFn>(`decode_${id}`, 'buf, off', `const d = view(buf);\nreturn ${inline.read(at)};`);
  if (encode && decode) Object.assign(codec, { encode, decode });
  return codec;
}

// ---------------------------------------------------------------------------------------------
// Integers

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

function checkInt(v: unknown, min: number, max: number, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    invalidArgument(field, `expected an integer in ${min}..${max}, got ${show(v)}`);
  }
  return v;
}

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
  return builtin<Codec<number>>({
    name, size, align: size, layout: { kind: 'int', size, signed },
    encode(v, buf, off) { set(view(buf), off, checkInt(v, min, max, name), le); },
    decode: (buf, off) => get(view(buf), off, le),
  }, {
    view: true, standalone: true,
    check: (x) => `typeof ${x} === "number" && ${INT_OK[type](x)}`,
    write: (x, at) => `d.set${access}(${at(0)}, ${x}${order});`,
    read: (at) => `d.get${access}(${at(0)}${order})`,
  });
}

function int64Codec(name: string, signed: boolean): Codec<bigint, bigint | number> {
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  const big = signed ? 'BigInt64' : 'BigUint64';
  return builtin<Codec<bigint, bigint | number>>({
    name, size: 8, align: 8, layout: { kind: 'int', size: 8, signed },
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
  }, {
    view: true, standalone: true,
    check: (x) => `(typeof ${x} === "bigint" ? BigInt.${signed ? 'asIntN' : 'asUintN'}(64, ${x}) === ${x} : ` +
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
  });
}

export const u8 = intCodec('u8', 1, false);
export const u16 = intCodec('u16', 2, false);
export const u32 = intCodec('u32', 4, false);
export const i8 = intCodec('i8', 1, true);
export const i16 = intCodec('i16', 2, true);
export const i32 = intCodec('i32', 4, true);
export const u64 = int64Codec('u64', false);
export const i64 = int64Codec('i64', true);
/** Network byte order (big endian), e.g. ports as stored in packet headers. */
export const be16 = intCodec('be16', 2, false, false);
export const be32 = intCodec('be32', 4, false, false);

export const bool: Codec<boolean> = builtin<Codec<boolean>>({
  name: 'bool', size: 1, align: 1, layout: { kind: 'int', size: 1, signed: false },
  encode(v, buf, off) {
    if (typeof v !== 'boolean') invalidArgument('bool', `expected true or false, got ${show(v)}`);
    view(buf).setUint8(off, v ? 1 : 0);
  },
  decode: (buf, off) => view(buf).getUint8(off) !== 0,
}, {
  view: true, standalone: true,
  check: (x) => `typeof ${x} === "boolean"`,
  write: (x, at) => `d.setUint8(${at(0)}, ${x} ? 1 : 0);`,
  read: (at) => `d.getUint8(${at(0)}) !== 0`,
});

// ---------------------------------------------------------------------------------------------
// Byte strings

function checkSize(n: unknown, what: string, min: number): asserts n is number {
  if (!Number.isInteger(n) || (n as number) < min) invalidArgument(what, `size must be an integer >= ${min}, got ${show(n)}`);
}

/** Opaque fixed-size bytes. `align` (default 1) lets it stand in for e.g. `__be32 addr[4]`. */
export function bytes(n: number, align: 1 | 2 | 4 | 8 = 1): Codec<Buffer, Uint8Array> {
  checkSize(n, 'bytes', 1);
  if (![1, 2, 4, 8].includes(align)) invalidArgument('bytes', `align must be 1, 2, 4 or 8, got ${show(align)}`);
  const name = `bytes[${n}]`;
  return builtin<Codec<Buffer, Uint8Array>>({
    name, size: n, align, layout: { kind: 'bytes', size: n },
    encode(v, buf, off) {
      if (!(v instanceof Uint8Array) || v.length !== n) invalidArgument(name, `expected a Buffer or Uint8Array of ${n} bytes, got ${show(v)}`);
      room(buf, off, n);
      buf.set(v, off);
    },
    decode(buf, off) {
      room(buf, off, n);
      return copyOut(buf, off, n);
    },
  }, {
    view: false, standalone: false,
    check: (x) => `${x} instanceof Uint8Array && ${x}.length === ${n}`,
    write: (x, at) => `buf.set(${x}, ${at(0)});`,
    read: (at) => `copyOut(buf, ${at(0)}, ${n})`,
  });
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
    name, size: n, align: 1, layout: { kind: 'array', size: n, length: n, elem: { kind: 'int', size: 1, signed: false } },
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

const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

/** Ethernet address 'aa:bb:cc:dd:ee:ff' (encode also accepts upper case and '-' separators). */
export const mac: Codec<string> = builtin<Codec<string>>({
  name: 'mac', size: 6, align: 1, layout: { kind: 'bytes', size: 6 },
  encode(v, buf, off) {
    if (typeof v !== 'string' || !MAC_RE.test(v)) invalidArgument('mac', `expected a MAC address like aa:bb:cc:dd:ee:ff, got ${show(v)}`);
    room(buf, off, 6);
    for (let i = 0; i < 6; i++) buf[off + i] = parseInt(v.slice(i * 3, i * 3 + 2), 16);
  },
  decode(buf, off) {
    room(buf, off, 6);
    const parts: string[] = [];
    for (let i = 0; i < 6; i++) parts.push(buf[off + i].toString(16).padStart(2, '0'));
    return parts.join(':');
  },
});

// ---------------------------------------------------------------------------------------------
// IP addresses

/** Strict dotted quad: 4 decimal parts 0..255, no leading zeros (they mean octal to some tools). */
function ipv4Into(s: string, out: Uint8Array, off: number): boolean {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a virtual '.' closes the last part
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return false;
      out[off + part++] = val;
      val = digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && val === 0) return false;
      val = val * 10 + (c - 0x30);
      digits++;
      if (val > 255) return false;
    } else {
      return false;
    }
  }
  return part === 4;
}

const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/** Colon-separated 16-bit groups; the last one may be a dotted IPv4 address (two groups). */
function ipv6Groups(text: string, v4Last: boolean): number[] | null {
  if (text === '') return [];
  const pieces = text.split(':');
  const words: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    if (HEX_GROUP.test(p)) {
      words.push(parseInt(p, 16));
    } else if (v4Last && i === pieces.length - 1) {
      const q = new Uint8Array(4);
      if (!ipv4Into(p, q, 0)) return null;
      words.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
    } else {
      return null;
    }
  }
  return words;
}

function ipv6Into(s: string, out: Uint8Array, off: number): boolean {
  if (s.length > 45) return false;
  const gap = s.indexOf('::');
  if (gap !== -1 && s.indexOf('::', gap + 1) !== -1) return false;
  const head = ipv6Groups(gap === -1 ? s : s.slice(0, gap), gap === -1);
  const tail = gap === -1 ? [] : ipv6Groups(s.slice(gap + 2), true);
  if (!head || !tail) return false;
  const n = head.length + tail.length;
  if (gap === -1 ? n !== 8 : n > 7) return false; // '::' stands for at least one group
  const words = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = words[i] >> 8;
    out[off + 2 * i + 1] = words[i] & 0xff;
  }
  return true;
}

/** Parse a dotted-quad IPv4 address into 4 bytes (network order), or null if invalid. */
export function parseIPv4(s: string): Buffer | null {
  const out = Buffer.alloc(4);
  return typeof s === 'string' && ipv4Into(s, out, 0) ? out : null;
}

/** Parse any RFC 4291 IPv6 text form ('::' compression, embedded IPv4) into 16 bytes, or null. */
export function parseIPv6(s: string): Buffer | null {
  const out = Buffer.alloc(16);
  return typeof s === 'string' && ipv6Into(s, out, 0) ? out : null;
}

export function formatIPv4(buf: Uint8Array, offset = 0): string {
  room(buf, offset, 4);
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/**
 * RFC 5952 canonical text: lower case, no leading zeros, the longest run (first on a tie) of
 * two or more zero groups replaced by '::'. IPv4-mapped addresses (::ffff:0:0/96) use the
 * mixed notation of RFC 5952 section 5: '::ffff:198.18.0.1'.
 */
export function formatIPv6(buf: Uint8Array, offset = 0): string {
  room(buf, offset, 16);
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((buf[offset + 2 * i] << 8) | buf[offset + 2 * i + 1]);
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) return `::ffff:${formatIPv4(buf, offset + 12)}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = Math.max(j, i + 1);
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best === -1 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** Set all bits after the first `prefixLen` to zero. */
function maskHostBits(addr: Uint8Array, prefixLen: number): Buffer {
  const net = Buffer.from(addr);
  for (let i = 0; i < net.length; i++) net[i] &= (0xff00 >> Math.min(8, Math.max(0, prefixLen - 8 * i))) & 0xff;
  return net;
}

function formatAddr(addr: Uint8Array): string {
  return addr.length === 4 ? formatIPv4(addr) : formatIPv6(addr);
}

function checkHostBits(addr: Buffer, prefixLen: number, field: string): void {
  const net = maskHostBits(addr, prefixLen);
  if (!net.equals(addr)) {
    invalidArgument(field, `${formatAddr(addr)}/${prefixLen} has host bits set (did you mean ${formatAddr(net)}/${prefixLen}?)`);
  }
}

export interface Cidr {
  family: 4 | 6;
  /** Network address, 4 or 16 bytes in network order. */
  addr: Buffer;
  prefixLen: number;
}

/**
 * Parse '198.18.0.0/16' or '2001:db8::/32'. A missing prefix means a host route (/32, /128).
 * Host bits beyond the prefix are an error, not silently masked. `field` names the input in
 * the ERR_INVALID_ARGUMENT error.
 */
export function parseCidr(s: string, field = 'CIDR'): Cidr {
  if (typeof s !== 'string') invalidArgument(field, `expected a CIDR string like 198.18.0.0/16, got ${show(s)}`);
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const family = addrText.includes(':') ? 6 : 4;
  const addr = family === 4 ? parseIPv4(addrText) : parseIPv6(addrText);
  if (!addr) invalidArgument(field, `${show(s)} does not start with a valid IPv${family} address`);
  const max = family === 4 ? 32 : 128;
  let prefixLen = max;
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
      invalidArgument(field, `${show(s)} has an invalid prefix length (expected /0 to /${max})`);
    }
    prefixLen = Number(p);
  }
  checkHostBits(addr, prefixLen, field);
  return { family, addr, prefixLen };
}

function addressCodec(family: 4 | 6): Codec<string> {
  const name = family === 4 ? 'ipv4' : 'ipv6';
  const size = family === 4 ? 4 : 16;
  const parseInto = family === 4 ? ipv4Into : ipv6Into;
  const format = family === 4 ? formatIPv4 : formatIPv6;
  const example = family === 4 ? '198.18.0.1' : '2001:db8::1';
  return {
    name, size, align: 4, layout: { kind: 'bytes', size },
    encode(v, buf, off) {
      room(buf, off, size);
      if (typeof v !== 'string' || !parseInto(v, buf, off)) invalidArgument(name, `expected an IPv${family} address like ${example}, got ${show(v)}`);
    },
    decode: (buf, off) => format(buf, off),
  };
}

/** IPv4 address as a dotted string; 4 bytes in network order, aligned like `__be32`. */
export const ipv4 = builtin(addressCodec(4), {
  view: false, standalone: false,
  check: (x, at) => `typeof ${x} === "string" && ipv4Into(${x}, buf, ${at(0)})`,
  write: () => '',
  read: (at) => [0, 1, 2, 3].map((k) => `DECIMAL[buf[${at(k)}]]`).join(' + "." + '),
});
/** IPv6 address; 16 bytes in network order, aligned like `struct in6_addr` (4). */
export const ipv6 = builtin(addressCodec(6));

export interface LpmKey {
  prefixLen: number;
  addr: string;
}

/**
 * LPM-trie key: u32 prefixlen (host order) followed by the address (network order), i.e.
 * `struct { __u32 prefixlen; __u8 addr[4 or 16]; }`. Encode takes { prefixLen, addr } or a
 * CIDR string. Host bits beyond the prefix are rejected, never masked. Its layout is plain
 * bytes, so checkCodec does not depend on the C member names.
 */
export function lpmKey(family: 4 | 6): Codec<LpmKey, LpmKey | string> {
  if (family !== 4 && family !== 6) invalidArgument('lpmKey', `family must be 4 or 6, got ${show(family)}`);
  const name = `lpmKey(${family})`;
  const max = family === 4 ? 32 : 128;
  const size = 4 + max / 8;
  const parse = family === 4 ? parseIPv4 : parseIPv6;
  const format = family === 4 ? formatIPv4 : formatIPv6;
  return builtin<Codec<LpmKey, LpmKey | string>>({
    name, size, align: 4, layout: { kind: 'bytes', size },
    encode(v, buf, off) {
      let prefixLen: number;
      let addr: Buffer | null;
      if (typeof v === 'string') {
        const c = parseCidr(v, name);
        if (c.family !== family) invalidArgument(name, `${show(v)} is not an IPv${family} prefix`);
        ({ prefixLen, addr } = c);
      } else {
        if (typeof v !== 'object' || v === null) invalidArgument(name, `expected { prefixLen, addr } or a CIDR string, got ${show(v)}`);
        const extra = Object.keys(v).find((k) => k !== 'prefixLen' && k !== 'addr');
        if (extra !== undefined) invalidArgument(name, `unknown field ${show(extra)} (expected prefixLen and addr)`);
        prefixLen = checkInt(v.prefixLen, 0, max, `${name}.prefixLen`);
        addr = typeof v.addr === 'string' ? parse(v.addr) : null;
        if (!addr) invalidArgument(`${name}.addr`, `expected an IPv${family} address, got ${show(v.addr)}`);
        checkHostBits(addr, prefixLen, name);
      }
      room(buf, off, size);
      view(buf).setUint32(off, prefixLen, HOST_LE);
      buf.set(addr, off + 4);
    },
    decode(buf, off) {
      return { prefixLen: view(buf).getUint32(off, HOST_LE), addr: format(buf, off + 4) };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Arrays and structs

/** Fixed-length array (C `T x[length]`); encode requires exactly `length` elements. */
export function array<C extends Codec<any, any>>(codec: C, length: number): Codec<Infer<C>[], InferInput<C>[]> {
  if (!isCodec(codec)) invalidArgument('array', 'the element codec is not a codec');
  checkSize(length, 'array', 1);
  const name = `${codec.name}[${length}]`;
  const es = codec.size;
  const c: Codec<Infer<C>[], InferInput<C>[]> = {
    name, size: es * length, align: codec.align,
    layout: { kind: 'array', size: es * length, length, elem: codec.layout },
    encode(v, buf, off) {
      if (!Array.isArray(v) || v.length !== length) invalidArgument(name, `expected an array of ${length}, got ${show(v)}`);
      for (let i = 0; i < length; i++) {
        try {
          codec.encode(v[i], buf, off + i * es);
        } catch (e) {
          throw withPath(e, codec.name, `${name}[${i}]`);
        }
      }
    },
    decode(buf, off) {
      const out = new Array<Infer<C>>(length);
      for (let i = 0; i < length; i++) out[i] = codec.decode(buf, off + i * es);
      return out;
    },
  };
  if (WRITES_ALL.has(codec)) WRITES_ALL.add(c);
  return Object.assign(c, compileArray(name, codec, length, c));
}

/**
 * Compiled array encode/decode. An array that does not fit in `buf` at `off` goes to the
 * generic code (which fails at the first element out of bounds, as it always has), so the
 * compiled loop runs over bytes known to be in the buffer.
 */
function compileArray(name: string, elem: Codec<unknown>, length: number, generic: Codec<any, any>): Partial<Codec<any, any>> {
  const es = elem.size;
  const inline = INLINE.get(elem);
  const at = (o: string) => (k: number): string => (k ? `${o} + ${k}` : o);
  const slow = `try { elem.encode(x, buf, o); } catch (e) { throw withPath(e, ${lit(elem.name)}, ${lit(`${name}[`)} + i + "]"); }`;
  const encode = compile<EncodeFn>('encode_array', 'v, buf, off', [
    `if (!(${fits(es * length)})) return genericEncode(v, buf, off);`,
    `if (!Array.isArray(v) || v.length !== ${length}) invalidArgument(${lit(name)}, ${lit(`expected an array of ${length}, got `)} + show(v));`,
    inline?.view ? 'const d = view(buf);' : '',
    `for (let i = 0, o = off; i < ${length}; i++, o += ${es}) {`,
    '  const x = v[i];',
    inline ? `  if (${inline.check('x', at('o'))}) { ${inline.write('x', at('o'))} } else { ${slow} }` : `  ${slow}`,
    '}',
  ].join('\n'), { elem, genericEncode: generic.encode });
  const read = (o: string): string => (inline ? inline.read(at(o)) : `elem.decode(buf, ${o})`);
  const decode = compile<DecodeFn>('decode_array', 'buf, off', [
    `if (!(${fits(es * length)})) return genericDecode(buf, off);`,
    inline?.view ? 'const d = view(buf);' : '',
    length <= 8
      ? `return [${Array.from({ length }, (_, i) => read(i ? `off + ${i * es}` : 'off')).join(', ')}];`
      : `const out = new Array(${length});\nfor (let i = 0, o = off; i < ${length}; i++, o += ${es}) out[i] = ${read('o')};\nreturn out;`,
  ].join('\n'), { elem, genericDecode: generic.decode });
  return encode && decode ? { encode, decode } : {};
}

export interface FieldSpec {
  readonly name: string;
  readonly codec: Codec<any, any>;
  /** Explicit byte offset, for odd layouts; must not overlap other fields. */
  readonly offset?: number;
}

export interface StructOptions {
  /** Like `__attribute__((packed))`: no implicit padding, struct alignment 1. */
  packed?: boolean;
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type FieldsOf<A extends readonly FieldSpec[]> = { [E in A[number] as E['name']]: E['codec'] };
type StructOut<F> = Simplify<{ [K in keyof F as K extends `_${string}` ? never : K]: Infer<F[K]> }>;
type StructIn<F> = Simplify<
  { [K in keyof F as K extends `_${string}` ? never : K]: InferInput<F[K]> } &
  { [K in keyof F as K extends `_${string}` ? K : never]?: InferInput<F[K]> }
>;

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * C struct. Fields are an ordered array of { name, codec, offset? } or an object (in key
 * order). Members are placed by C rules: each at the next multiple of its codec's align, the
 * size rounded up to the largest align. Encode zeroes padding and rejects missing and unknown
 * fields; '_'-prefixed fields are optional on encode and omitted from decode.
 */
export function struct<const A extends readonly FieldSpec[]>(name: string, fields: A, opts?: StructOptions): Codec<StructOut<FieldsOf<A>>, StructIn<FieldsOf<A>>>;
export function struct<F extends Record<string, Codec<any, any>>>(name: string, fields: F, opts?: StructOptions): Codec<StructOut<F>, StructIn<F>>;
export function struct(
  name: string,
  fields: readonly FieldSpec[] | Record<string, Codec<any, any>>,
  opts: StructOptions = {},
): Codec<Record<string, unknown>> {
  const cname = typeof name === 'string' && name.startsWith('struct ') ? name.slice(7) : name;
  if (typeof cname !== 'string' || !C_IDENT.test(cname)) invalidArgument('struct', `name must be a C identifier, got ${show(name)}`);
  const self = `struct ${cname}`;
  const specs: readonly FieldSpec[] = Array.isArray(fields)
    ? fields
    : Object.entries(fields as Record<string, Codec<any, any>>).map(([n, codec]) => ({ name: n, codec }));
  if (specs.length === 0) invalidArgument(self, 'needs at least one field');

  const members: Member[] = [];
  let end = 0;
  let align = 1;
  for (const f of specs) {
    if (typeof f?.name !== 'string' || !C_IDENT.test(f.name)) invalidArgument(self, `field names must be C identifiers, got ${show(f?.name)}`);
    const field = `${self}.${f.name}`;
    if (members.some((m) => m.name === f.name)) invalidArgument(field, 'duplicate field');
    if (!isCodec(f.codec)) invalidArgument(field, `expected a codec, got ${show(f.codec)}`);
    const a = opts.packed ? 1 : f.codec.align;
    let offset = roundUp(end, a);
    if (f.offset !== undefined) {
      if (!Number.isInteger(f.offset) || f.offset < 0) invalidArgument(field, `offset must be an integer >= 0, got ${show(f.offset)}`);
      offset = f.offset;
    }
    const clash = members.find((m) => offset < m.offset + m.codec.size && m.offset < offset + f.codec.size);
    if (clash) {
      invalidArgument(field, `bytes ${offset}..${offset + f.codec.size - 1} overlap field ${clash.name} (bytes ${clash.offset}..${clash.offset + clash.codec.size - 1})`);
    }
    members.push({ name: f.name, offset, codec: f.codec, pad: isPaddingField(f.name) });
    end = Math.max(end, offset + f.codec.size);
    align = Math.max(align, a);
  }
  const size = roundUp(end, align);
  const known = new Set(members.map((m) => m.name));
  const fieldList = members.map((m) => m.name).join(', ');

  const c: Codec<Record<string, unknown>> = {
    name: self, size, align,
    layout: { kind: 'struct', size, name: cname, members: members.map((m) => ({ name: m.name, offset: m.offset, layout: m.codec.layout })) },
    encode(v, buf, off) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) invalidArgument(self, `expected an object, got ${show(v)}`);
      for (const k of Object.keys(v)) if (!known.has(k)) invalidArgument(`${self}.${k}`, `unknown field (fields are: ${fieldList})`);
      room(buf, off, size);
      buf.fill(0, off, off + size);
      for (const m of members) {
        const x = v[m.name];
        if (x === undefined) {
          if (m.pad) continue;
          invalidArgument(`${self}.${m.name}`, 'missing');
        }
        try {
          m.codec.encode(x, buf, off + m.offset);
        } catch (e) {
          throw withPath(e, m.codec.name, `${self}.${m.name}`);
        }
      }
    },
    decode(buf, off) {
      room(buf, off, size);
      const out: Record<string, unknown> = {};
      for (const m of members) if (!m.pad) out[m.name] = m.codec.decode(buf, off + m.offset);
      return out;
    },
  };
  return builtin(Object.assign(c, compileStruct(self, size, members, known)));
}

interface Member { name: string; offset: number; codec: Codec<unknown>; pad: boolean }

/**
 * Compiled struct encode/decode: the same checks in the same order as the generic code
 * (object, unknown fields, room, then each member in order: missing or invalid), zeroing
 * only the bytes no member of this module writes (padding, gaps, '_' fields, members of
 * other codecs) instead of the whole struct.
 */
function compileStruct(self: string, size: number, members: Member[], known: Set<string>): Partial<Codec<any, any>> {
  const env: Record<string, unknown> = { known };
  const fieldList = members.map((m) => m.name).join(', ');
  const at = (base: number) => (k: number): string => `off + ${base + k}`;
  const inline = members.map((m) => INLINE.get(m.codec));
  members.forEach((m, i) => (env[`m${i}`] = m.codec));

  // for-in visits the own enumerable keys in Object.keys order, then inherited ones (skipped)
  const unknown = `if (hasOwn(v, k)) invalidArgument(${lit(`${self}.`)} + k, ${lit(`unknown field (fields are: ${fieldList})`)});`;
  const keyCheck = members.length <= 24
    ? `switch (k) { ${members.map((m) => `case ${lit(m.name)}:`).join(' ')} break; default: ${unknown} }`
    : `if (!known.has(k)) { ${unknown} }`;

  const written = new Uint8Array(size);
  members.forEach((m) => { if (!m.pad && WRITES_ALL.has(m.codec)) written.fill(1, m.offset, m.offset + m.codec.size); });
  const zero: string[] = [];
  for (let i = 0; i < size; i++) {
    if (written[i]) continue;
    let j = i;
    while (j < size && !written[j]) j++;
    zero.push(j - i <= 16 ? Array.from({ length: j - i }, (_, k) => `buf[off + ${i + k}] = 0;`).join(' ') : `fill.call(buf, 0, off + ${i}, off + ${j});`);
    i = j;
  }

  const encodeMember = (m: Member, i: number): string => {
    const path = `${self}.${m.name}`;
    const slow = `try { m${i}.encode(x, buf, off + ${m.offset}); } catch (e) { throw withPath(e, ${lit(m.codec.name)}, ${lit(path)}); }`;
    const put = inline[i] ? `if (${inline[i]!.check('x', at(m.offset))}) { ${inline[i]!.write('x', at(m.offset))} } else { ${slow} }` : slow;
    return `{ const x = v[${lit(m.name)}]; if (x === undefined) { ${m.pad ? '' : `invalidArgument(${lit(path)}, "missing");`} } else { ${put} } }`;
  };
  const encode = compile<EncodeFn>(`encode_${self.slice(7)}`, 'v, buf, off', [
    `if (typeof v !== "object" || v === null || Array.isArray(v)) invalidArgument(${lit(self)}, "expected an object, got " + show(v));`,
    `for (const k in v) ${keyCheck}`,
    `if (!(${fits(size)})) room(buf, off, ${size});`,
    inline.some((x) => x?.view) ? 'const d = view(buf);' : '',
    ...zero,
    ...members.map(encodeMember),
  ].join('\n'), env);

  const decoded = members.map((m, i) => (m.pad ? '' : `${lit(m.name)}: ${inline[i] ? inline[i]!.read(at(m.offset)) : `m${i}.decode(buf, off + ${m.offset})`},`));
  const decode = compile<DecodeFn>(`decode_${self.slice(7)}`, 'buf, off', [
    `if (!(${fits(size)})) room(buf, off, ${size});`,
    inline.some((x, i) => x?.view && !members[i].pad) ? 'const d = view(buf);' : '',
    'return {',
    ...decoded.filter(Boolean),
    '};',
  ].join('\n'), env);
  return encode && decode ? { encode, decode } : {};
}

// ---------------------------------------------------------------------------------------------
// Checking a codec against the map's BTF type

/** A BTF type as described by the native side (typedefs and qualifiers already resolved). */
export interface BtfTypeInfo {
  kind: 'int' | 'struct' | 'union' | 'array' | 'enum' | 'ptr' | 'float' | 'void' | 'other';
  name: string;
  size: number;
  signed?: boolean;
  /** Offsets in bytes; bitfields also carry bitSize (and bitOffset in bits, when known). */
  members?: { name: string; offset: number; bitSize?: number; bitOffset?: number; type: BtfTypeInfo | null }[];
  elem?: BtfTypeInfo | null;
  length?: number;
}

function btfName(t: BtfTypeInfo): string {
  if (t.kind === 'struct' || t.kind === 'union') return `${t.kind} ${t.name || '<anon>'}`;
  if (t.kind === 'array') return `${t.elem ? btfName(t.elem) : '?'}[${t.length ?? '?'}]`;
  return t.name || t.kind;
}

function layoutName(l: Layout): string {
  switch (l.kind) {
    case 'int': return `${l.signed ? 'i' : 'u'}${l.size * 8}`;
    case 'bytes': return `bytes[${l.size}]`;
    case 'array': return `${layoutName(l.elem)}[${l.length}]`;
    case 'struct': return `struct ${l.name}`;
  }
}

/** BTF padding/reserved members need not be covered by the codec. */
const isBtfPadding = (name: string): boolean => name === '' || /^(_|pad|reserved)/i.test(name);

interface FlatMember { name: string; offset: number; size: number; bitSize?: number; type: BtfTypeInfo | null }

/** Members of a struct/union with anonymous struct/union members flattened (as C does). */
function flatMembers(t: BtfTypeInfo, base = 0, out: FlatMember[] = []): FlatMember[] {
  for (const m of t.members ?? []) {
    const offset = base + m.offset;
    if (m.name === '' && m.type && (m.type.kind === 'struct' || m.type.kind === 'union')) {
      flatMembers(m.type, offset, out);
      continue;
    }
    let size = m.type?.size ?? 0;
    if (m.bitSize) {
      const firstBit = m.bitOffset !== undefined ? m.bitOffset - 8 * m.offset : 0;
      size = Math.ceil((firstBit + m.bitSize) / 8);
    }
    out.push({ name: m.name, offset, size, bitSize: m.bitSize || undefined, type: m.type });
  }
  return out;
}

/** BTF kinds each (non-bytes) layout kind can describe. */
const MATCHING_KINDS: Record<Layout['kind'], readonly BtfTypeInfo['kind'][]> = {
  bytes: [], int: ['int', 'enum'], array: ['array'], struct: ['struct', 'union'],
};

/** First difference between a codec layout and a BTF type, or null. `path` names the member. */
function diffLayout(l: Layout, t: BtfTypeInfo, path: string): string | null {
  const subject = `${path ? `member ${path}: ` : ''}codec ${layoutName(l)}`;
  if (l.size !== t.size) return `${subject} is ${plural(l.size, 'byte')} but BTF type '${btfName(t)}' is ${plural(t.size, 'byte')}`;
  if (l.kind === 'bytes') return null;
  if (!MATCHING_KINDS[l.kind].includes(t.kind)) return `${subject} (${l.kind}) does not match BTF type '${btfName(t)}' (${t.kind})`;
  if (l.kind === 'array') {
    if (t.length !== undefined && t.length !== l.length) return `${subject} has ${plural(l.length, 'element')} but BTF type '${btfName(t)}' has ${t.length}`;
    return t.elem ? diffLayout(l.elem, t.elem, `${path}[*]`) : null;
  }
  if (l.kind === 'struct') return diffStruct(l, t, path);
  return null;
}

function diffStruct(l: Extract<Layout, { kind: 'struct' }>, t: BtfTypeInfo, path: string): string | null {
  const btf = flatMembers(t);
  if (btf.length === 0) return null; // members not described (nesting too deep): sizes matched
  const where = `BTF type '${btfName(t)}'`;
  for (const m of l.members) {
    const p = path ? `${path}.${m.name}` : m.name;
    const bm = btf.find((b) => b.name === m.name);
    if (!bm) {
      // A member the BTF does not name is fine over bytes the codec cannot name otherwise:
      // compiler/BTF padding (if the member is padding too) or bitfield storage.
      const over = btf.filter((b) => b.offset < m.offset + m.layout.size && m.offset < b.offset + b.size);
      const blocking = over.find((b) => !isBtfPadding(b.name) && !b.bitSize);
      if (!blocking && (isBtfPadding(m.name) || over.some((b) => b.bitSize))) continue;
      return `member ${p} is not in ${where}${blocking ? ` (its bytes overlap ${blocking.name})` : ''}`;
    }
    if (bm.bitSize) return `member ${p} is a ${bm.bitSize}-bit bitfield in ${where}; cover its bytes with a differently named member instead`;
    if (bm.offset !== m.offset) return `member ${p} is at offset ${m.offset} in the codec but at offset ${bm.offset} in ${where}`;
    const d = bm.type ? diffLayout(m.layout, bm.type, p) : null;
    if (d) return d;
  }
  if (t.kind !== 'struct') return null; // a union needs only the members the codec uses
  for (const bm of btf) {
    if (isBtfPadding(bm.name)) continue;
    const covered = l.members.some((m) => m.name === bm.name || (m.offset <= bm.offset && bm.offset + bm.size <= m.offset + m.layout.size));
    if (!covered) {
      const p = path ? `${path}.${bm.name}` : bm.name;
      return `BTF member ${p} (offset ${bm.offset}, ${plural(bm.size, 'byte')}) of ${where} is not covered by the codec`;
    }
  }
  return null;
}

/**
 * Check `codec` against the BTF type of a map key/value (`what` like "map 'counters' key").
 * No BTF: nothing to check. Sizes must match; structs must agree member by member (by name,
 * offset and size, recursively; BTF padding members may be left out); ints ignore signedness;
 * arrays compare length and element; 'bytes' codecs (addresses, lpmKey) match any type of the
 * same size. Throws BpfkitError ERR_CODEC_MISMATCH describing the first difference.
 */
export function checkCodec(codec: Codec<unknown>, btf: BtfTypeInfo | null, what: string): void {
  if (!btf) return;
  const fail = (msg: string): never => {
    throw new BpfkitError('ERR_CODEC_MISMATCH', `${what}: ${msg}`, { details: { codec, btf } });
  };
  if (codec.size !== btf.size) {
    fail(`codec ${codec.name} is ${plural(codec.size, 'byte')} but the map's BTF type '${btfName(btf)}' is ${plural(btf.size, 'byte')}`);
  }
  const diff = diffLayout(codec.layout, btf, '');
  if (diff) fail(diff);
}
