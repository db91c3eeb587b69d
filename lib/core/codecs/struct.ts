/** Composite codecs: fixed-length arrays and C structs. */
import { invalidArgument } from '../errors.js';
import { builtin, compileArray, compileLater, compileStruct, COPIES, STRUCT_MEMBERS, WRITES_ALL, type Member } from './generate.js';
import { checkSize, isCodec, isPaddingField, room, roundUp, show, withPath } from './shared.js';
import type { Codec, Infer, InferInput } from './types.js';

/** Fixed-length array (C `T x[length]`); encode requires exactly `length` elements. */
export function array<C extends Codec<any, any>>(codec: C, length: number): Codec<Infer<C>[], InferInput<C>[]> {
  if (!isCodec(codec)) invalidArgument('array', 'the element codec is not a codec');
  checkSize(length, 'array', 1);
  const name = `${codec.name}[${length}]`;
  const es = codec.size;
  const c: Codec<Infer<C>[], InferInput<C>[]> = {
    name,
    size: es * length,
    align: codec.align,
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
  if (COPIES.has(codec)) COPIES.add(c);
  return compileLater(c, (generic) => compileArray(name, codec, length, generic));
}

/** One field of a struct codec given as a list (for explicit offsets or names that are not identifiers). */
export interface FieldSpec {
  /** The field's name (a C member name; names starting with `_` are padding and are left out of decoded values). */
  readonly name: string;
  /** The field's codec. */
  readonly codec: Codec<any, any>;
  /** Explicit byte offset, for odd layouts; must not overlap other fields. */
  readonly offset?: number;
}

/** Options of {@link struct}. */
export interface StructOptions {
  /** Like `__attribute__((packed))`: no implicit padding, struct alignment 1. */
  packed?: boolean;
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type FieldsOf<A extends readonly FieldSpec[]> = { [E in A[number] as E['name']]: E['codec'] };
type StructOut<F> = Simplify<{ [K in keyof F as K extends `_${string}` ? never : K]: Infer<F[K]> }>;
type StructIn<F> = Simplify<
  { [K in keyof F as K extends `_${string}` ? never : K]: InferInput<F[K]> } & { [K in keyof F as K extends `_${string}` ? K : never]?: InferInput<F[K]> }
>;

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * C struct. Fields are an ordered array of { name, codec, offset? } or an object (in key
 * order). Members are placed by C rules: each at the next multiple of its codec's align, the
 * size rounded up to the largest align. Encode zeroes padding and rejects missing and unknown
 * fields; '_'-prefixed fields are optional on encode and omitted from decode.
 */
export function struct<const A extends readonly FieldSpec[]>(
  name: string,
  fields: A,
  opts?: StructOptions,
): Codec<StructOut<FieldsOf<A>>, StructIn<FieldsOf<A>>>;
export function struct<F extends Record<string, Codec<any, any>>>(name: string, fields: F, opts?: StructOptions): Codec<StructOut<F>, StructIn<F>>;
export function struct(name: string, fields: readonly FieldSpec[] | Record<string, Codec<any, any>>, opts: StructOptions = {}): Codec<Record<string, unknown>> {
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
      invalidArgument(
        field,
        `bytes ${offset}..${offset + f.codec.size - 1} overlap field ${clash.name} (bytes ${clash.offset}..${clash.offset + clash.codec.size - 1})`,
      );
    }
    members.push({ name: f.name, offset, codec: f.codec, pad: isPaddingField(f.name) });
    end = Math.max(end, offset + f.codec.size);
    align = Math.max(align, a);
  }
  const size = roundUp(end, align);
  const known = new Set(members.map((m) => m.name));
  const fieldList = members.map((m) => m.name).join(', ');

  const c: Codec<Record<string, unknown>> = {
    name: self,
    size,
    align,
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
  STRUCT_MEMBERS.set(c, members);
  const out = builtin(compileLater(c, () => compileStruct(self, size, members, known)));
  // padding is never decoded; any other member may share the buffer's memory unless made here
  if (!members.every((m) => m.pad || COPIES.has(m.codec))) COPIES.delete(out);
  return out;
}
