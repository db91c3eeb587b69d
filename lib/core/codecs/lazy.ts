/**
 * Lazy record views of struct() codecs: one small object per record over (buffer, offset),
 * whose fields are getters on a per-struct prototype that decode when read. Used by
 * RingBuffer's `lazy` option, where a record then costs one allocation and each field only
 * what reading it costs.
 *
 * A field reads the same value the struct's decode gives, except that a bytes(n) field is
 * a Buffer viewing the record's bytes (no copy) and a nested struct is itself a view. The
 * caller guarantees that the record's `size` bytes are in the buffer and never rewritten
 * while a view may read them.
 *
 * Transient views (RingBuffer's `lazy: 'transient'`) are one object per batch whose record
 * offset the caller moves (seek) before each delivery: no allocation per record. Their
 * bytes(n) fields are made by a Uint8Array subclass whose prototype chain has
 * Buffer.prototype (instanceof Buffer, every Buffer method; ~2-3x cheaper to make than
 * subarray()), which deep-equality checks of the prototype tell apart from a Buffer.
 */
import { compile, INLINE, PLAIN_BYTES, STRUCT_MEMBERS, type Member } from './generate.js';
import type { Codec } from './types.js';

/** Makes the view of the record at `off` of `buf` (`d`: a DataView over exactly `buf`). */
export type LazyFactory<T> = (buf: Buffer, d: DataView, off: number) => T;

/** A reusable view: `make` one per buffer, `seek` it to each record. */
export interface TransientFactory<T> {
  make(buf: Buffer, d: DataView): T;
  seek(view: T, off: number): void;
}

/** Buffer views made cheaply: a Uint8Array subclass under Buffer.prototype (see above). */
class BufferView extends Uint8Array {}
Object.setPrototypeOf(BufferView.prototype, Buffer.prototype);
// inspect() shows <Buffer ...>, subarray()/slice() make plain Buffers (Buffer[Symbol.species])
Object.defineProperty(BufferView.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });
/** `n` bytes at `off` of the ArrayBuffer `ab` as a Buffer view (shares the memory). */
export const bufferView = (ab: ArrayBuffer, off: number, n: number): Buffer => new BufferView(ab, off, n) as unknown as Buffer;

const CACHE = new WeakMap<object, LazyFactory<unknown>>();
const TRANSIENT = new WeakMap<object, TransientFactory<unknown>>();

/** Field names a class body cannot declare as a getter, or that would shadow Object.prototype. */
const RESERVED = new Set(['constructor', '__proto__']);

/**
 * The lazy view factory of a struct() codec, or undefined when `codec` is not one (any
 * other codec decodes eagerly). Views of one codec share one class (one V8 shape).
 */
export function lazyFactory<T>(codec: Codec<T, any>): LazyFactory<T> | undefined {
  const members = STRUCT_MEMBERS.get(codec);
  if (!members) return undefined;
  let f = CACHE.get(codec);
  if (!f) {
    f = compiledFactory(codec.name, members) ?? genericFactory(members);
    CACHE.set(codec, f);
  }
  return f as LazyFactory<T>;
}

/**
 * The transient view factory of a struct() codec, or undefined when `codec` is not one.
 * Nested structs are ordinary lazy views (they stay valid, as the memory does).
 */
export function transientFactory<T>(codec: Codec<T, any>): TransientFactory<T> | undefined {
  const members = STRUCT_MEMBERS.get(codec);
  if (!members) return undefined;
  let f = TRANSIENT.get(codec);
  if (!f) {
    f = compiledTransient(codec.name, members) ?? genericTransient(members);
    TRANSIENT.set(codec, f);
  }
  return f as TransientFactory<T>;
}

/** A field read of the generated class, as an expression over `b` (buffer), `d` (DataView), `o` (record offset). */
function readExpr(m: Member, i: number, env: Record<string, unknown>, transient = false): string {
  const base = `o + ${m.offset}`;
  // transient: `a` is the ArrayBuffer under the buffer and `a0` where the buffer starts in it
  if (PLAIN_BYTES.has(m.codec)) return transient ? `bufferView(a, a0 + ${base}, ${m.codec.size})` : `b.subarray(${base}, ${base} + ${m.codec.size})`;
  const nested = lazyFactory(m.codec as Codec<unknown>);
  if (nested) {
    env[`n${i}`] = nested;
    return `n${i}(b, d, ${base})`;
  }
  const inline = INLINE.get(m.codec);
  if (inline) {
    const at = (k: number): string => `${base} + ${k}`;
    // inline reads name the buffer `buf` (bounds are the caller's guarantee, see above)
    return inline.read(at).replace(/\bbuf\b/g, 'b');
  }
  env[`m${i}`] = m.codec;
  return `m${i}.decode(b, ${base})`;
}

function compiledFactory(name: string, members: readonly Member[]): LazyFactory<unknown> | undefined {
  const fields = members.filter((m) => !m.pad);
  if (fields.some((m) => RESERVED.has(m.name))) return undefined;
  const env: Record<string, unknown> = {};
  const getters = fields.map((m, i) => `  get ${m.name}() { const b = this.#b, d = this.#d, o = this.#o; return ${readExpr(m, i, env)}; }`);
  const id = name.replace(/\W/g, '_');
  const body = [
    `class ${id} {`,
    '  #b; #d; #o;',
    '  constructor(b, d, o) { this.#b = b; this.#d = d; this.#o = o; }',
    ...getters,
    '}',
    `Object.defineProperty(${id}.prototype, Symbol.toStringTag, { value: ${JSON.stringify(name)} });`,
    `return (b, d, o) => new ${id}(b, d, o);`,
  ].join('\n');
  const make = compile<() => LazyFactory<unknown>>(`lazy_${id}`, '', body, env);
  return make?.();
}

function compiledTransient(name: string, members: readonly Member[]): TransientFactory<unknown> | undefined {
  const fields = members.filter((m) => !m.pad);
  if (fields.some((m) => RESERVED.has(m.name))) return undefined;
  const env: Record<string, unknown> = { bufferView };
  // the buffer's ArrayBuffer and offset in it are kept: reading them from the Buffer costs
  // more than making the bytes view
  const getters = fields.map((m, i) => {
    const vars = PLAIN_BYTES.has(m.codec) ? 'a = this.#a, a0 = this.#a0' : 'b = this.#b, d = this.#d';
    return `  get ${m.name}() { const ${vars}, o = this.#o; return ${readExpr(m, i, env, true)}; }`;
  });
  const id = name.replace(/\W/g, '_');
  const body = [
    `class ${id} {`,
    '  #b; #d; #a; #a0; #o = 0;',
    '  constructor(b, d) { this.#b = b; this.#d = d; this.#a = b.buffer; this.#a0 = b.byteOffset; }',
    '  static seek(v, o) { v.#o = o; }',
    ...getters,
    '}',
    `Object.defineProperty(${id}.prototype, Symbol.toStringTag, { value: ${JSON.stringify(name)} });`,
    `return { make: (b, d) => new ${id}(b, d), seek: ${id}.seek };`,
  ].join('\n');
  const make = compile<() => TransientFactory<unknown>>(`transient_${id}`, '', body, env);
  return make?.();
}

const B = Symbol('buf');
const D = Symbol('view');
const O = Symbol('off');
type State = { [B]: Buffer; [D]: DataView; [O]: number };

/** Where code generation from strings is disabled (and in tests): getters calling each member's decode. */
export function genericFactory(members: readonly Member[]): LazyFactory<unknown> {
  return genericProto(members, false);
}

/** genericFactory's transient form: the same getters over a record offset that seek() moves. */
export function genericTransient(members: readonly Member[]): TransientFactory<unknown> {
  const make = genericProto(members, true);
  return {
    make: (b, d) => make(b, d, 0),
    seek: (v, o) => {
      (v as State)[O] = o;
    },
  };
}

function genericProto(members: readonly Member[], transient: boolean): LazyFactory<unknown> {
  const proto: object = {};
  for (const m of members) {
    if (m.pad) continue;
    const size = m.codec.size;
    const nested = lazyFactory(m.codec as Codec<unknown>);
    const get = PLAIN_BYTES.has(m.codec)
      ? function (this: State) {
          const o = this[O] + m.offset;
          return transient ? bufferView(this[B].buffer as ArrayBuffer, this[B].byteOffset + o, size) : this[B].subarray(o, o + size);
        }
      : nested
        ? function (this: State) {
            return nested(this[B], this[D], this[O] + m.offset);
          }
        : function (this: State) {
            return m.codec.decode(this[B], this[O] + m.offset);
          };
    Object.defineProperty(proto, m.name, { get, enumerable: false, configurable: false });
  }
  return (b, d, o) => {
    const r = Object.create(proto) as State;
    r[B] = b;
    r[D] = d;
    r[O] = o;
    return r;
  };
}
