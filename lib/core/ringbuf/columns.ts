/**
 * The columnar consumer of RingBuffer ('columns' event): a whole batch decoded straight
 * from the kernel's mapping (direct.ts) into typed-array columns, one array per struct
 * field, allocated once per ring and reused from batch to batch. No object, BigInt or
 * Buffer per record: the per-record work is a few typed-array loads and stores.
 */
import { BpfkitError } from '../errors.js';
import type { Codec } from '../codecs.js';
import { compile, PLAIN_BYTES, STRUCT_MEMBERS } from '../codecs/generate.js';
import { i16, i32, i64, i64n, i8, u16, u32, u64, u64n, u8 } from '../codecs/scalars.js';

/** The typed array a numeric field's column is, by what the field's codec decodes to. */
export type RingBufferNumberColumn<T> = T extends bigint
  ? BigUint64Array | BigInt64Array
  : T extends number
    ? Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float64Array
    : never;

/**
 * The columns of a record type `E`: integer fields as the typed array of their codec (u8 ->
 * Uint8Array, i32 -> Int32Array, u64 -> BigUint64Array, u64n -> Float64Array, ...), a
 * `bytes(n)` field as one Uint8Array of `length x n` bytes (record i at `i * n`).
 */
export type RingBufferColumnArrays<E> = { readonly [K in keyof E]: E[K] extends Uint8Array ? Uint8Array : RingBufferNumberColumn<E[K]> };

/**
 * Payload of the 'columns' event: one batch of records as columns. The arrays are reused
 * for the next batch: they hold this batch only until the listener returns (copy with
 * `slice()` what you keep).
 */
export interface RingBufferColumns<E> {
  /** Records in this batch (every column has this many entries; bytes columns `length x width` bytes). */
  readonly length: number;
  /** One column per field of the struct ('_' padding fields have none). */
  readonly fields: RingBufferColumnArrays<E>;
}

type Ctor = { new (n: number): ArrayBufferView & { subarray(a: number, b: number): ArrayBufferView }; BYTES_PER_ELEMENT: number };
interface Kind {
  /** the column's typed array */
  ctor: Ctor;
  /** the field's size in bytes */
  size: number;
  /** how the compiled loop reads it (none: one DataView get of `size` bytes) */
  read?: 'un' | 'in' | 'u64';
}

const KINDS = new Map<object, Kind>([
  [u8, { ctor: Uint8Array, size: 1 }],
  [i8, { ctor: Int8Array, size: 1 }],
  [u16, { ctor: Uint16Array, size: 2 }],
  [i16, { ctor: Int16Array, size: 2 }],
  [u32, { ctor: Uint32Array, size: 4 }],
  [i32, { ctor: Int32Array, size: 4 }],
  [u64, { ctor: BigUint64Array as unknown as Ctor, size: 8, read: 'u64' }],
  [i64, { ctor: BigInt64Array as unknown as Ctor, size: 8, read: 'u64' }],
  [u64n, { ctor: Float64Array, size: 8, read: 'un' }],
  [i64n, { ctor: Float64Array, size: 8, read: 'in' }],
]);

interface Col {
  name: string;
  offset: number;
  width: number;
  kind: Kind | undefined;
  /** the field's codec (the interpreted loop decodes with it) */
  codec: Codec<unknown, unknown>;
  arr: ArrayBufferView & { subarray(a: number, b: number): ArrayBufferView };
  /** Int32 words of the column (u64 columns, bytes columns of whole words) */
  words: Int32Array | undefined;
}

/** What a struct codec's columns are; throws a typed error naming the field a column cannot hold. */
export function columnPlan(
  codec: Codec<unknown, unknown>,
): { name: string; offset: number; width: number; kind: Kind | undefined; codec: Codec<unknown, unknown> }[] {
  const members = STRUCT_MEMBERS.get(codec);
  if (!members)
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `codec: 'columns' takes a struct() codec, not ${codec.name}`, {
      field: 'codec',
      details: { field: 'codec' },
    });
  const plan = [];
  for (const m of members) {
    if (m.pad) continue;
    const kind = KINDS.get(m.codec);
    if (!kind && !PLAIN_BYTES.has(m.codec)) {
      throw new BpfkitError(
        'ERR_INVALID_ARGUMENT',
        `codec.${m.name}: 'columns' takes integer (u8..u64, i8..i64, u64n, i64n) and bytes(n) fields, not ${m.codec.name} (name it '_${m.name}' to skip it)`,
        { field: `codec.${m.name}`, details: { field: `codec.${m.name}` } },
      );
    }
    plan.push({ name: m.name, offset: m.offset, width: m.codec.size, kind, codec: m.codec as Codec<unknown, unknown> });
  }
  return plan;
}

type FillFn = (m8: Buffer, m32: Int32Array, dv: DataView, offs: Int32Array, n: number, need: number, cols: Col[]) => number;

/** The columns of one ring (capacity `max` records) and the compiled loop that fills them. */
export class ColumnReader {
  readonly #cols: Col[];
  readonly #fill: FillFn;

  /** `generic`: the interpreted loop even where code generation works (for the tests). */
  constructor(codec: Codec<unknown, unknown>, max: number, generic = false) {
    this.#cols = columnPlan(codec).map((p) => {
      const arr = p.kind ? new p.kind.ctor(max) : new Uint8Array(max * p.width);
      const whole = !p.kind && p.width % 4 === 0 && p.offset % 4 === 0;
      const words = p.kind?.read === 'u64' || whole ? new Int32Array(arr.buffer, arr.byteOffset, arr.byteLength >> 2) : undefined;
      return { ...p, arr, words };
    });
    this.#fill = (generic ? undefined : compileFill(this.#cols)) ?? genericFill;
  }

  /**
   * Decodes the scanned records (offsets/lengths in `offs`) into the columns, skipping those
   * shorter than `need` bytes; returns the columns of the records kept.
   */
  read(buf: Buffer, m32: Int32Array, dv: DataView, offs: Int32Array, n: number, need: number): RingBufferColumns<unknown> {
    const k = this.#fill(buf, m32, dv, offs, n, need, this.#cols);
    const fields: Record<string, ArrayBufferView> = {};
    for (const c of this.#cols) fields[c.name] = c.arr.subarray(0, c.kind ? k : k * c.width);
    return { length: k, fields: fields as RingBufferColumnArrays<unknown> };
  }
}

/** The loop body for column `i` at record index `k`, mapping byte `o`. */
function fillOne(c: Col, i: number): string {
  const at = c.offset ? `o + ${c.offset}` : 'o';
  const kind = c.kind;
  if (kind?.read === 'u64')
    return c.offset % 4 === 0 ? `w${i}[2 * k] = m32[(${at}) >> 2]; w${i}[2 * k + 1] = m32[(${at} + 4) >> 2];` : `c${i}[k] = dv.getBigUint64(${at}, true);`;
  // 4-byte aligned fields read whole words of the mapping (records start 8-byte aligned;
  // host order, little-endian as the codecs); others go through the DataView
  const w = (k: number): string => `m32[(${at}${k ? ` + ${k}` : ''}) >> 2]`;
  const aligned = c.offset % 4 === 0;
  if (kind?.read === 'un' || kind?.read === 'in') {
    if (aligned) return `c${i}[k] = ${kind.read === 'un' ? `(${w(4)} >>> 0)` : w(4)} * 4294967296 + (${w(0)} >>> 0);`;
    const hi = kind.read === 'un' ? `dv.getUint32(${at} + 4, true)` : `dv.getInt32(${at} + 4, true)`;
    return `c${i}[k] = ${hi} * 4294967296 + dv.getUint32(${at}, true);`;
  }
  if (kind && kind.size === 4 && aligned) return `c${i}[k] = ${w(0)};`;
  if (kind) {
    const get = {
      Uint8Array: 'getUint8',
      Int8Array: 'getInt8',
      Uint16Array: 'getUint16',
      Int16Array: 'getInt16',
      Uint32Array: 'getUint32',
      Int32Array: 'getInt32',
    }[kind.ctor.name]!;
    return `c${i}[k] = dv.${get}(${at}${kind.size > 1 ? ', true' : ''});`;
  }
  if (c.words) {
    const n = c.width >> 2;
    if (n <= 16) return Array.from({ length: n }, (_, j) => `w${i}[k * ${n} + ${j}] = m32[(${at} + ${4 * j}) >> 2];`).join(' ');
    return `for (let j = 0, s = (${at}) >> 2, t = k * ${n}; j < ${n}; j++) w${i}[t + j] = m32[s + j];`;
  }
  return `for (let j = 0, s = ${at}, t = k * ${c.width}; j < ${c.width}; j++) c${i}[t + j] = m8[s + j];`;
}

function compileFill(cols: Col[]): FillFn | undefined {
  const decl = cols.map((c, i) => `const c${i} = cols[${i}].arr, w${i} = cols[${i}].words;`).join('\n');
  const body = [
    decl,
    'let k = 0;',
    'for (let i = 0; i < n; i++) {',
    '  const o = offs[2 * i];',
    '  if (offs[2 * i + 1] < need) continue;',
    ...cols.map((c, i) => `  ${fillOne(c, i)}`),
    '  k++;',
    '}',
    'return k;',
  ].join('\n');
  return compile<FillFn>('fill_columns', 'm8, m32, dv, offs, n, need, cols', body);
}

/** Where code generation from strings is disabled: the same, interpreted, each field read by its codec's decode. */
function genericFill(buf: Buffer, _m32: Int32Array, _dv: DataView, offs: Int32Array, n: number, need: number, cols: Col[]): number {
  let k = 0;
  for (let i = 0; i < n; i++) {
    const o = offs[2 * i]!;
    if (offs[2 * i + 1]! < need) continue;
    for (const c of cols) {
      const at = o + c.offset;
      if (c.kind) (c.arr as unknown as { [i: number]: unknown })[k] = c.codec.decode(buf, at);
      else (c.arr as Uint8Array).set(buf.subarray(at, at + c.width), k * c.width);
    }
    k++;
  }
  return k;
}
