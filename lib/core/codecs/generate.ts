/**
 * Code generation for the codecs: compiled encode/decode functions built from source text,
 * with the generic code as the fallback.
 */
import { invalidArgument } from '../errors.js';
import { ipv4Into } from './ip-text.js';
import { copyOut, DECIMAL, hasOwn, room, show, view, withPath } from './shared.js';
import type { Codec } from './types.js';

// The integer codecs, struct() and array() are compiled once, on first use, into small
// functions with the byte offsets and limits as constants, the common members (integers,
// bool, ipv4, bytes) read and written in place through one DataView, decoded objects built
// by one object literal (one V8 shape) and other members called directly (each struct has
// its own call sites, so none is shared by every codec as the generic loops are). An inline
// form accepts only values the codec's own encode accepts and writes the same bytes; any
// other value goes to the codec itself, so errors (class, message, field path) are those of
// the generic code, which stays as the fallback where code generation from strings is
// disabled (node --disallow-code-generation-from-strings).

/** How compiled code reads and writes one member in place. `at(k)` is the JS expression of byte k of the member. */
export interface Inline {
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

export const INLINE = new WeakMap<object, Inline>();
/**
 * Codecs whose decode returns values that share no memory with the buffer read (numbers,
 * bigints, strings, fresh Buffers): the ring buffer may decode them straight from the
 * kernel's mapping (lib/core/ringbuf/direct.ts). A codec not made here may return a view.
 */
export const COPIES = new WeakSet<object>();
/** Codecs made here: their encode writes all `size` bytes, so a struct zeroes only the bytes around them. */
export const WRITES_ALL = new WeakSet<object>();

export const ENV: Record<string, unknown> = {
  view,
  room,
  show,
  invalidArgument,
  withPath,
  hasOwn,
  copyOut,
  ipv4Into,
  DECIMAL,
  fill: Uint8Array.prototype.fill,
};
const lit = (s: string): string => JSON.stringify(s);
/** The condition of room(buf, off, size), inline. */
const fits = (size: number): string => `Number.isInteger(off) && off >= 0 && off + ${size} <= buf.length`;

/** `function <name>(<params>) { <body> }` with ENV and `env` in scope, or undefined where code generation is disabled. */
export function compile<F>(name: string, params: string, body: string, env: Record<string, unknown> = {}): F | undefined {
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

/**
 * Compiles `codec` on its first encode or decode, not when it is made: the library makes
 * dozens of codecs at import (every module's map layouts), and compiling them all cost a
 * few ms of every cold import. Until then encode/decode are stubs that compile, put the
 * compiled pair (or, where code generation is disabled, the generic pair) in their place
 * and forward the call, so a reference to a stub kept elsewhere still ends in the compiled
 * code. `make` gets the generic pair (the stubs must not be its fallback).
 */
export function compileLater<C extends Codec<any, any>>(codec: C, make: (generic: Pick<Codec<any, any>, 'encode' | 'decode'>) => Partial<Codec<any, any>>): C {
  const generic = { encode: codec.encode, decode: codec.decode };
  let ready = false;
  const settle = (): void => {
    if (ready) return;
    ready = true;
    const f = make(generic);
    codec.encode = f.encode ?? generic.encode;
    codec.decode = f.decode ?? generic.decode;
  };
  codec.encode = function encode(v: any, buf: Buffer, off: number): void {
    settle();
    codec.encode(v, buf, off);
  };
  codec.decode = function decode(buf: Buffer, off: number): any {
    settle();
    return codec.decode(buf, off);
  };
  return codec;
}

/** Registers a codec of lib/core/codecs (and its inline form); compiles it on its own (on first use) where the form allows. */
export function builtin<C extends Codec<any, any>>(codec: C, inline?: Inline): C {
  WRITES_ALL.add(codec);
  COPIES.add(codec);
  if (!inline) return codec;
  INLINE.set(codec, inline);
  if (!inline.standalone) return codec;
  return compileLater(codec, (generic) => {
    const at = (k: number): string => (k ? `off + ${k}` : 'off');
    const id = codec.name.replace(/\W/g, '_');
    // u64/i64 write a number as two halves at off and off + 4: a non-integer offset (which
    // DataView would truncate) goes to the generic code instead
    const guard = codec.size === 8 ? 'Number.isInteger(off) && ' : '';
    const encode = compile<EncodeFn>(
      `encode_${id}`,
      'v, buf, off',
      `if (${guard}${inline.check('v', at)}) {\nconst d = view(buf);\n${inline.write('v', at)}\n} else generic(v, buf, off);`,
      { generic: generic.encode },
    );
    const decode = compile<DecodeFn>(`decode_${id}`, 'buf, off', `const d = view(buf);\nreturn ${inline.read(at)};`);
    return encode && decode ? { encode, decode } : {};
  });
}

/**
 * Compiled array encode/decode. An array that does not fit in `buf` at `off` goes to the
 * generic code (which fails at the first element out of bounds, as it always has), so the
 * compiled loop runs over bytes known to be in the buffer.
 */
export function compileArray(
  name: string,
  elem: Codec<unknown>,
  length: number,
  generic: Pick<Codec<any, any>, 'encode' | 'decode'>,
): Partial<Codec<any, any>> {
  const es = elem.size;
  const inline = INLINE.get(elem);
  const at =
    (o: string) =>
    (k: number): string =>
      k ? `${o} + ${k}` : o;
  const slow = `try { elem.encode(x, buf, o); } catch (e) { throw withPath(e, ${lit(elem.name)}, ${lit(`${name}[`)} + i + "]"); }`;
  const encode = compile<EncodeFn>(
    'encode_array',
    'v, buf, off',
    [
      `if (!(${fits(es * length)})) return genericEncode(v, buf, off);`,
      `if (!Array.isArray(v) || v.length !== ${length}) invalidArgument(${lit(name)}, ${lit(`expected an array of ${length}, got `)} + show(v));`,
      inline?.view ? 'const d = view(buf);' : '',
      `for (let i = 0, o = off; i < ${length}; i++, o += ${es}) {`,
      '  const x = v[i];',
      inline ? `  if (${inline.check('x', at('o'))}) { ${inline.write('x', at('o'))} } else { ${slow} }` : `  ${slow}`,
      '}',
    ].join('\n'),
    { elem, genericEncode: generic.encode },
  );
  const read = (o: string): string => (inline ? inline.read(at(o)) : `elem.decode(buf, ${o})`);
  const decode = compile<DecodeFn>(
    'decode_array',
    'buf, off',
    [
      `if (!(${fits(es * length)})) return genericDecode(buf, off);`,
      inline?.view ? 'const d = view(buf);' : '',
      length <= 8
        ? `return [${Array.from({ length }, (_, i) => read(i ? `off + ${i * es}` : 'off')).join(', ')}];`
        : `const out = new Array(${length});\nfor (let i = 0, o = off; i < ${length}; i++, o += ${es}) out[i] = ${read('o')};\nreturn out;`,
    ].join('\n'),
    { elem, genericDecode: generic.decode },
  );
  return encode && decode ? { encode, decode } : {};
}

export interface Member {
  name: string;
  offset: number;
  codec: Codec<unknown>;
  pad: boolean;
}

/** bytes(n) codecs: a lazy record view reads them as a view of the record's bytes (lazy.ts). */
export const PLAIN_BYTES = new WeakSet<object>();

/** The members of each struct() codec, for the lazy record views (lazy.ts). */
export const STRUCT_MEMBERS = new WeakMap<object, readonly Member[]>();

/**
 * Compiled struct encode/decode: the same checks in the same order as the generic code
 * (object, unknown fields, room, then each member in order: missing or invalid), zeroing
 * only the bytes no member of this module writes (padding, gaps, '_' fields, members of
 * other codecs) instead of the whole struct.
 */
export function compileStruct(self: string, size: number, members: Member[], known: Set<string>): Partial<Codec<any, any>> {
  const env: Record<string, unknown> = { known };
  const fieldList = members.map((m) => m.name).join(', ');
  const at =
    (base: number) =>
    (k: number): string =>
      `off + ${base + k}`;
  const inline = members.map((m) => INLINE.get(m.codec));
  members.forEach((m, i) => (env[`m${i}`] = m.codec));

  // for-in visits the own enumerable keys in Object.keys order, then inherited ones (skipped)
  const unknown = `if (hasOwn(v, k)) invalidArgument(${lit(`${self}.`)} + k, ${lit(`unknown field (fields are: ${fieldList})`)});`;
  const keyCheck =
    members.length <= 24
      ? `switch (k) { ${members.map((m) => `case ${lit(m.name)}:`).join(' ')} break; default: ${unknown} }`
      : `if (!known.has(k)) { ${unknown} }`;

  const written = new Uint8Array(size);
  members.forEach((m) => {
    if (!m.pad && WRITES_ALL.has(m.codec)) written.fill(1, m.offset, m.offset + m.codec.size);
  });
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
  const encode = compile<EncodeFn>(
    `encode_${self.slice(7)}`,
    'v, buf, off',
    [
      `if (typeof v !== "object" || v === null || Array.isArray(v)) invalidArgument(${lit(self)}, "expected an object, got " + show(v));`,
      `for (const k in v) ${keyCheck}`,
      `if (!(${fits(size)})) room(buf, off, ${size});`,
      inline.some((x) => x?.view) ? 'const d = view(buf);' : '',
      ...zero,
      ...members.map(encodeMember),
    ].join('\n'),
    env,
  );

  const decoded = members.map((m, i) =>
    m.pad ? '' : `${lit(m.name)}: ${inline[i] ? inline[i]!.read(at(m.offset)) : `m${i}.decode(buf, off + ${m.offset})`},`,
  );
  const decode = compile<DecodeFn>(
    `decode_${self.slice(7)}`,
    'buf, off',
    [
      `if (!(${fits(size)})) room(buf, off, ${size});`,
      inline.some((x, i) => x?.view && !members[i].pad) ? 'const d = view(buf);' : '',
      'return {',
      ...decoded.filter(Boolean),
      '};',
    ].join('\n'),
    env,
  );
  return encode && decode ? { encode, decode } : {};
}
