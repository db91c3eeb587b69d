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
 */
import { compile, INLINE, PLAIN_BYTES, STRUCT_MEMBERS, type Member } from './generate.js';
import type { Codec } from './types.js';

/** Makes the view of the record at `off` of `buf` (`d`: a DataView over exactly `buf`). */
export type LazyFactory<T> = (buf: Buffer, d: DataView, off: number) => T;

const CACHE = new WeakMap<object, LazyFactory<unknown>>();

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

/** A field read of the generated class, as an expression over `b` (buffer), `d` (DataView), `o` (record offset). */
function readExpr(m: Member, i: number, env: Record<string, unknown>): string {
  const base = `o + ${m.offset}`;
  if (PLAIN_BYTES.has(m.codec)) return `b.subarray(${base}, ${base} + ${m.codec.size})`;
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

const B = Symbol('buf');
const D = Symbol('view');
const O = Symbol('off');
type State = { [B]: Buffer; [D]: DataView; [O]: number };

/** Where code generation from strings is disabled (and in tests): getters calling each member's decode. */
export function genericFactory(members: readonly Member[]): LazyFactory<unknown> {
  const proto: object = {};
  for (const m of members) {
    if (m.pad) continue;
    const size = m.codec.size;
    const nested = lazyFactory(m.codec as Codec<unknown>);
    const get = PLAIN_BYTES.has(m.codec)
      ? function (this: State) {
          const o = this[O] + m.offset;
          return this[B].subarray(o, o + size);
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
