/**
 * The record cursor of RingBuffer's `lazy: 'cursor'`: ONE object per ring whose fields are
 * getters reading the record it points at straight from the kernel's mapping of the ring
 * (direct.ts), moved from record to record before each 'data' listener call. No object,
 * BigInt (with u64n fields) or Buffer per record, and no copy of the batch.
 *
 * Getters are generated per struct codec (one class, one V8 shape): integers are read
 * from typed arrays over the mapping in host order (u64n / i64n as hi * 2^32 + lo of two
 * int32 words, which rounds as Number() of the u64 would), fields at offsets their size
 * does not divide through a DataView; u64 / i64 through the DataView (a BigInt per read);
 * other members with their codec's decode, which returns copies (COPIES). A `bytes(n)`
 * field is ONE Buffer per field per cursor, allocated once and refilled (word copies when
 * aligned) at each read: valid until the listener returns or the field is read again.
 *
 * Safety: the mapping is read-only memory. Nothing the cursor hands out views it (values
 * are numbers, BigInts, strings, copies, or the cursor's own Buffers); the arrays over it
 * are private fields (or closure variables in the fallback), and the cursor's seek is not
 * reachable from the object. It reads the mapping only while a batch is delivered
 * (attach() to park()); outside, and for good after release() (close()), it reads a zeroed
 * record of its own, so a cursor kept past its listener call never sees bytes the
 * producer reused, and nothing reads the mapping after close().
 */
import { BpfkitError } from '../errors.js';
import type { Codec } from '../codecs.js';
import { compile, COPIES, INLINE, PLAIN_BYTES, STRUCT_MEMBERS, type Member } from '../codecs/generate.js';
import { HOST_LE } from '../codecs/shared.js';
import { i16, i32, i64, i64n, i8, u16, u32, u64, u64n, u8 } from '../codecs/scalars.js';

/** The memory a cursor reads: a Buffer with byteOffset 0 over a whole ArrayBuffer (DirectReader.buf). */
export interface CursorMemory {
  readonly buf: Buffer;
}

/**
 * One cursor: the object handed to listeners, and how the reader moves it. It reads the
 * memory only between attach() and park() (one batch); otherwise a zeroed record of its own.
 */
export interface RecordCursor<E> {
  /** Reads the memory again (a batch starts; nothing after release()); returns this cursor. */
  attach(): RecordCursor<E>;
  /** Points the view at the record at byte `off` of the memory (8-byte aligned) and returns it. */
  at(off: number): E;
  /** The batch is over: the view reads the zeroed record until the next attach(). */
  park(): void;
  /** The memory is going away: parks the view for good. */
  release(): void;
}

export type CursorMaker<E> = (m: CursorMemory) => RecordCursor<E>;

/** How the generated getters read an integer codec from the mapping: typed array, its element size, and the suffix that makes the read a number of the codec's range. */
const ARRAYS = new Map<object, { arr: string; size: number; fix: string }>([
  [u8, { arr: 'm8', size: 1, fix: '' }],
  [i8, { arr: 'i8', size: 1, fix: '' }],
  [u16, { arr: 'u16', size: 2, fix: '' }],
  [i16, { arr: 'i16', size: 2, fix: '' }],
  [u32, { arr: 'm32', size: 4, fix: ' >>> 0' }],
  [i32, { arr: 'm32', size: 4, fix: ' | 0' }],
]);
const DV: Record<string, string> = { u8: 'getUint8', i8: 'getInt8', u16: 'getUint16', i16: 'getInt16', u32: 'getUint32', i32: 'getInt32' };

/** Members a class body cannot declare as a getter (the interpreted form takes them). */
const RESERVED = new Set(['constructor', '__proto__']);
const CACHE = new WeakMap<object, CursorMaker<unknown>>();

/**
 * Throws the typed error of a codec a cursor cannot read: not a struct(), or a member
 * (other than '_' padding) whose decode may return a view of the memory it reads.
 */
export function checkCursorCodec(codec: Codec<unknown, unknown>): void {
  const members = STRUCT_MEMBERS.get(codec);
  if (!members) throw new BpfkitError('ERR_INVALID_ARGUMENT', `codec: lazy 'cursor' takes a struct() codec, not ${codec.name}`, { field: 'codec' });
  for (const m of members) {
    if (m.pad || COPIES.has(m.codec)) continue;
    throw new BpfkitError(
      'ERR_INVALID_ARGUMENT',
      `codec.${m.name}: lazy 'cursor' reads the kernel's mapping, and ${m.codec.name} is not a bpfkit codec whose values are copies (name it '_${m.name}' to skip it)`,
      { field: `codec.${m.name}` },
    );
  }
}

/** The cursor maker of a struct codec (checkCursorCodec first). `generic`: the interpreted form even where code generation works (tests). */
export function cursorMaker<E>(codec: Codec<E, any>, generic = false): CursorMaker<E> {
  const members = STRUCT_MEMBERS.get(codec)!;
  if (generic) return genericCursor(codec.name, codec.size, members) as CursorMaker<E>;
  let f = CACHE.get(codec);
  if (!f) {
    f = compiledCursor(codec.name, codec.size, members) ?? genericCursor(codec.name, codec.size, members);
    CACHE.set(codec, f);
  }
  return f as CursorMaker<E>;
}

/** The zeroed record a parked cursor reads (whole int32 words, room for any member). */
const zeroed = (size: number): Buffer => Buffer.alloc(Math.ceil(size / 8) * 8 + 8);

/** The getter body of member `m` (index `i`): statements ending in a return, over `this.#o`. */
function getter(m: Member, i: number, env: Record<string, unknown>, need: Set<string>): string {
  const f = m.offset;
  const at = `o + ${f}`;
  const size = m.codec.size;
  if (PLAIN_BYTES.has(m.codec)) {
    // the cursor's own Buffer for this field, refilled at each read
    if (size % 4 === 0 && f % 4 === 0 && size <= 256) {
      need.add('m32');
      const n = size >> 2;
      const copy = n <= 16 ? Array.from({ length: n }, (_, j) => `t[${j}] = m[s + ${j}];`).join(' ') : `for (let j = 0; j < ${n}; j++) t[j] = m[s + j];`;
      return `const m = this.#m32, t = this.#t${i}, s = (this.#o + ${f}) >> 2; ${copy} return this.#b${i};`;
    }
    need.add('m8');
    if (size <= 16) {
      const copy = Array.from({ length: size }, (_, j) => `b[${j}] = m[s + ${j}];`).join(' ');
      return `const m = this.#m8, b = this.#b${i}, s = this.#o + ${f}; ${copy} return b;`;
    }
    return `const o = this.#o, b = this.#b${i}; b.set(this.#m8.subarray(${at}, ${at} + ${size})); return b;`;
  }
  const arr = ARRAYS.get(m.codec);
  if (arr && f % arr.size === 0) {
    need.add(arr.arr);
    const shift = { 1: '', 2: ' >> 1', 4: ' >> 2' }[arr.size as 1 | 2 | 4];
    return `return this.#${arr.arr}[(this.#o + ${f})${shift}]${arr.fix};`;
  }
  if (arr) {
    need.add('d');
    return `return this.#d.${DV[m.codec.name]!}(this.#o + ${f}${arr.size > 1 ? `, ${HOST_LE}` : ''});`;
  }
  if ((m.codec === u64n || m.codec === i64n) && f % 4 === 0) {
    need.add('m32');
    const [lo, hi] = HOST_LE ? [f, f + 4] : [f + 4, f];
    const h = m.codec === u64n ? `(m[(o + ${hi}) >> 2] >>> 0)` : `m[(o + ${hi}) >> 2]`;
    return `const m = this.#m32, o = this.#o; return ${h} * 4294967296 + (m[(o + ${lo}) >> 2] >>> 0);`;
  }
  if (m.codec === u64 || m.codec === i64) {
    need.add('d');
    return `return this.#d.get${m.codec === u64 ? 'BigUint64' : 'BigInt64'}(this.#o + ${f}, ${HOST_LE});`;
  }
  const inline = INLINE.get(m.codec);
  if (inline) {
    need.add('b');
    if (inline.view) need.add('d');
    // inline reads name the buffer `buf` and the DataView `d`
    return `const b = this.#b, d = this.#d, o = this.#o; return ${inline.read((k) => `${at} + ${k}`).replace(/\bbuf\b/g, 'b')};`;
  }
  need.add('b');
  env[`c${i}`] = m.codec;
  return `return c${i}.decode(this.#b, this.#o + ${f});`;
}

function compiledCursor(name: string, size: number, members: readonly Member[]): CursorMaker<unknown> | undefined {
  const fields = members.filter((m) => !m.pad);
  if (fields.some((m) => RESERVED.has(m.name))) return undefined;
  const env: Record<string, unknown> = { zeroed };
  const need = new Set<string>();
  const getters = fields.map((m, i) => `  get ${m.name}() { ${getter(m, i, env, need)} }`);
  // the arrays over the memory the getters use, and each bytes field's Buffer (+ its words)
  const arrays: Record<string, string> = {
    b: 'b',
    d: 'new DataView(ab)',
    m8: 'b',
    i8: 'new Int8Array(ab)',
    u16: 'new Uint16Array(ab, 0, ab.byteLength >> 1)',
    i16: 'new Int16Array(ab, 0, ab.byteLength >> 1)',
    m32: 'new Int32Array(ab, 0, ab.byteLength >> 2)',
  };
  const used = Object.keys(arrays).filter((k) => need.has(k));
  const own = fields.flatMap((m, i) => (PLAIN_BYTES.has(m.codec) ? [i] : []));
  const ownDecl = own.map((i) => `#b${i}; #t${i};`).join(' ');
  const ownInit = own.map(
    (i) =>
      `this.#b${i} = Buffer.alloc(${fields[i]!.codec.size}); this.#t${i} = new Int32Array(this.#b${i}.buffer, this.#b${i}.byteOffset, ${fields[i]!.codec.size >> 2});`,
  );
  const id = name.replace(/\W/g, '_');
  const body = [
    'let seek, point;',
    `class ${id} {`,
    `  #o = 0; ${used.map((k) => `#${k};`).join(' ')} ${ownDecl}`,
    `  constructor(a) { ${ownInit.join(' ')} point(this, a); }`,
    '  static {',
    '    seek = (v, o) => { v.#o = o; };',
    `    point = (v, a) => { ${used.map((k) => `v.#${k} = a.${k};`).join(' ')} v.#o = 0; };`,
    '  }',
    ...getters,
    '}',
    `Object.defineProperty(${id}.prototype, Symbol.toStringTag, { value: ${JSON.stringify(name)} });`,
    // the arrays over the mapping and over a zeroed record, made once: parking and attaching allocate nothing
    `const over = (b) => { const ab = b.buffer; return { ${used.map((k) => `${k}: ${arrays[k]}`).join(', ')} }; };`,
    'return (mem) => {',
    `  let live = over(mem.buf); const zero = over(zeroed(${size}));`,
    `  const v = new ${id}(zero);`,
    '  const cur = {',
    '    at: (o) => (seek(v, o), v),',
    '    attach: () => { if (live) point(v, live); return cur; },',
    '    park: () => point(v, zero),',
    '    release: () => { live = undefined; point(v, zero); },',
    '  };',
    '  return cur;',
    '};',
  ].join('\n');
  const make = compile<() => CursorMaker<unknown>>(`cursor_${id}`, '', body, { ...env, Buffer });
  return make?.();
}

/** Where code generation from strings is disabled: the same getters, interpreted, over closure variables (nothing reachable from the object). */
function genericCursor(name: string, size: number, members: readonly Member[]): CursorMaker<unknown> {
  return (mem) => {
    const zero = zeroed(size);
    let buf = zero;
    let o = 0;
    const proto: object = {};
    for (const m of members) {
      if (m.pad) continue;
      const n = m.codec.size;
      const own = PLAIN_BYTES.has(m.codec) ? Buffer.alloc(n) : undefined;
      const get = own
        ? () => {
            own.set(buf.subarray(o + m.offset, o + m.offset + n));
            return own;
          }
        : () => m.codec.decode(buf, o + m.offset);
      Object.defineProperty(proto, m.name, { get, enumerable: false, configurable: false });
    }
    Object.defineProperty(proto, Symbol.toStringTag, { value: name });
    const view = Object.create(proto) as unknown;
    let live: Buffer | undefined = mem.buf;
    const point = (b: Buffer): void => {
      buf = b;
      o = 0;
    };
    const cur: RecordCursor<unknown> = {
      at: (off) => {
        o = off;
        return view;
      },
      attach: () => {
        if (live) point(live);
        return cur;
      },
      park: () => point(zero),
      release: () => {
        live = undefined;
        point(zero);
      },
    };
    return cur;
  };
}
