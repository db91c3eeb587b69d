/** Helpers of the codec unit tests (test/unit/codecs*.test.ts). */
import { expect } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import type { Codec } from '../../lib/core/codecs.js';

/** Run fn, expect a BpfkitError, return it. */
export function thrown(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError, nothing was thrown');
}

/** Encode at a non-zero offset in a buffer pre-filled with 0xee; return the encoded bytes. */
export function enc<T, I>(c: Codec<T, I>, v: I): Buffer {
  const buf = Buffer.alloc(c.size + 6, 0xee);
  c.encode(v, buf, 3);
  expect(buf.subarray(0, 3)).toEqual(Buffer.from([0xee, 0xee, 0xee]));
  expect(buf.subarray(3 + c.size)).toEqual(Buffer.from([0xee, 0xee, 0xee]));
  return Buffer.from(buf.subarray(3, 3 + c.size));
}

/** Encode then decode at offset 3, returning the decoded value. */
export function roundTrip<T, I>(c: Codec<T, I>, v: I): T {
  const buf = Buffer.alloc(c.size + 6, 0xee);
  c.encode(v, buf, 3);
  return c.decode(buf, 3);
}

export const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
