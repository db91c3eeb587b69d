/**
 * Input checks every layer shares: one integer check and one way to show a bad value in
 * a message, so that codecs, the core classes, routing and the modules word the same
 * mistake the same way ("<field>: expected an integer in 1..65535, got 0").
 */
import { invalidArgument } from './errors.js';

/** A value as a message shows it: strings quoted (and cut), bigints with n, shapes named. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `a ${v.constructor.name} of ${v.length} bytes`;
  return 'an object';
}

/** `v` as an integer in min..max, or ERR_INVALID_ARGUMENT naming `field`. */
export function checkInteger(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    invalidArgument(field, `expected an integer in ${min}..${max}, got ${show(v)}`);
  }
  return v;
}

/** A kernel object id (program, map, link: 1..2^32-1), or ERR_INVALID_ARGUMENT naming 'id'. */
export function checkObjectId(v: unknown): number {
  return checkInteger(v, 'id', 1, 0xffffffff);
}
