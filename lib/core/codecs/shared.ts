/** Helpers shared by the codecs: the DataView cache, bounds checks, value descriptions, error paths. */
import { endianness } from 'node:os';
import { BpfkitError, invalidArgument } from '../errors.js';
import type { Codec } from './types.js';
import { checkInteger, show } from '../validate.js';

export const HOST_LE = endianness() === 'LE';

// Two-entry DataView cache: callers typically encode/decode many values into one or two
// scratch buffers (a batch's keys and values alternate), so this avoids a DataView
// allocation per call. Each view covers exactly its `buf`, so DataView's own bounds
// checks apply to the Buffer, not to a shared pool ArrayBuffer.
let bufA: Uint8Array | undefined;
let viewA: DataView | undefined;
let bufB: Uint8Array | undefined;
let viewB: DataView | undefined;
let nextIsA = true;
export function view(buf: Uint8Array): DataView {
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

export function room(buf: Uint8Array, offset: number, size: number): void {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + size <= buf.length)) {
    throw new RangeError(`need ${size} bytes at offset ${offset} but the buffer is ${buf.length} bytes`);
  }
}

/** Short description of a value for error messages. */
export { show };

export const roundUp = (n: number, align: number): number => Math.ceil(n / align) * align;
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
export const isPaddingField = (name: string): boolean => name.startsWith('_');

export function isCodec(c: unknown): c is Codec<unknown> {
  const o = c as Codec<unknown> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.encode === 'function' &&
    typeof o.decode === 'function' &&
    Number.isInteger(o.size) &&
    Number.isInteger(o.align)
  );
}

/**
 * Re-throw an ERR_INVALID_ARGUMENT from an inner codec with the path of the outer value:
 * field 'u32' inside member 'a' becomes 'struct k.a' (message 'struct k.a (u32): ...'),
 * field 'struct inner.x' inside member 'in' becomes 'struct outer.in.x'.
 */
export function withPath(err: unknown, inner: string, path: string): unknown {
  if (!(err instanceof BpfkitError) || err.code !== 'ERR_INVALID_ARGUMENT' || err.field === undefined) return err;
  const f = err.field;
  const rest = err.message.startsWith(f) ? err.message.slice(f.length) : `: ${err.message}`;
  const field = f !== inner && f.startsWith(inner) ? path + f.slice(inner.length) : path;
  const message = f === inner ? `${path} (${inner})${rest}` : `${field}${rest}`;
  return new BpfkitError('ERR_INVALID_ARGUMENT', message, err.details ? { field, details: err.details } : { field });
}

/** A fresh copy of `n` bytes at `off` (the caller has checked the bounds). */
export function copyOut(buf: Uint8Array, off: number, n: number): Buffer {
  if (n > 64) return Buffer.from(buf.subarray(off, off + n));
  const out = Buffer.allocUnsafe(n); // a slice of Node's pool, like Buffer.from of a small array
  for (let i = 0; i < n; i++) out[i] = buf[off + i];
  return out;
}

export const DECIMAL = Array.from({ length: 256 }, (_, i) => String(i));
export const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

export function checkInt(v: unknown, min: number, max: number, field: string): number {
  return checkInteger(v, field, min, max);
}

export function checkSize(n: unknown, what: string, min: number): asserts n is number {
  if (!Number.isInteger(n) || (n as number) < min) invalidArgument(what, `size must be an integer >= ${min}, got ${show(n)}`);
}
