/**
 * The public types of RingBuffer (options, counters, events), the checks of its
 * arguments and the opening of its maps (lib/core/ringbuf.ts is the reader itself).
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import type { Codec } from '../codecs.js';
import { checkInteger } from '../validate.js';
import { openPinnedAs, type NativeMapHandle } from '../native.js';
import type { RingBufferColumns } from './columns.js';

/** Options of {@link BpfObject.ringBuffer} and {@link RingBuffer.openPinned}. */
export interface RingBufferOptions {
  /** Most records handed to JS per batch (default 1024). */
  batchSize?: number;
  /**
   * Batches read per event-loop turn before yielding to other I/O (default 16). What is
   * left stays in the ring and is read on the next turn.
   */
  maxBatchesPerTurn?: number;
  /**
   * The per-CPU loss counter (a percpu_array with one u64): a map name in the same object.
   * Default: `<ring name>_lost` when the object has it (BPFKIT_RINGBUF declares it).
   * `false`: the program does not count losses (stats().lost is then null).
   */
  lostMap?: string | false;
  /** How often the loss counter is polled while a 'lost' listener is attached, ms (default 1000). */
  lostCheckMs?: number;
  /**
   * While reading, also drain the ring every `drainMs` ms, not only when the kernel wakes
   * the reader (default: off). For producers that skip wake-ups (bpfkit_rb_submit_every()
   * in bpfkit_ringbuf.h): records submitted after their last forced wake-up wait at most
   * this long.
   */
  drainMs?: number;
  /**
   * Deliver struct records as lazy views (default false: plain objects, decoded whole).
   * A view is one small object per record whose fields are getters decoding on read,
   * with the same names and values as the plain object, except that a `bytes(n)` field
   * is a Buffer over the record's bytes (no copy) and a nested struct is a view too.
   * The fields are on the prototype, not own properties: `Object.keys`, spread and deep
   * equality do not see them. Views stay valid for as long as they are kept: the batch
   * memory they read is never reused (a kept view keeps its batch's memory alive).
   * Codecs that are not struct() decode as plain values whatever this says.
   *
   * `'transient'`: for 'data' listeners, one view object per batch, moved to each record
   * before the listener is called (no object per record). The record object is valid
   * only during that call: keep the values read from it (numbers, bigints, Buffers, which
   * stay valid), not the object, which reads the next record afterwards. Its `bytes(n)`
   * fields are Buffers made by a Uint8Array subclass under Buffer.prototype (instanceof
   * Buffer, every Buffer method, cheaper to make; a deep-equality check of the prototype
   * tells them apart). 'batch' listeners and iterators get ordinary lazy views.
   *
   * `'cursor'`: for 'data' listeners, ONE object per ring that reads the record it points
   * at straight from the kernel's mapping of the ring, moved to each record before the
   * listener is called (no copy, no object per record). Valid only during that call; each
   * `bytes(n)` field is one Buffer of the cursor's own, refilled each time the field is
   * read (the next record's read, or reading it again, overwrites it: copy what you keep).
   * A struct() codec of bpfkit codecs only (ERR_INVALID_ARGUMENT otherwise). 'batch'
   * listeners and iterators get ordinary lazy views.
   */
  lazy?: boolean | 'transient' | 'cursor';
}

/** Counters of a ring buffer reader (see {@link RingBuffer.stats}). */
export interface RingBufferStats {
  /** Records read from the ring and decoded (delivered, or held in the current batch). */
  records: number;
  /** Payload bytes of those records. */
  bytes: number;
  /** Batches read. */
  batches: number;
  /** Records shorter than the codec: counted and skipped (an 'error' is emitted if anyone listens). */
  malformed: number;
  /** Records read from the ring but never delivered because close() came first. */
  undelivered: number;
  /**
   * Failed reservations counted by the BPF side (sum over CPUs, since the map was created);
   * null when the program has no loss counter.
   */
  lost: number | null;
  /** Bytes in the kernel ring not yet read (record headers included). */
  pendingBytes: number;
  /** Ring size in bytes. */
  size: number;
}

/** Payload of the 'lost' event. */
export interface RingBufferLoss {
  /** New losses since the last 'lost' event. */
  count: number;
  /** All losses counted so far. */
  total: number;
}

/** The events of a {@link RingBuffer}, as EventEmitter listener argument lists. */
export interface RingBufferEvents<E> {
  /** One decoded record. */
  data: [record: E];
  /** A batch of decoded records, read together (an alternative to 'data'). */
  batch: [records: E[]];
  /**
   * A batch of records as typed-array columns, decoded straight from the ring (struct
   * codecs of integer and bytes(n) fields; see {@link RingBufferColumns}). The arrays are
   * reused by the next batch: valid until the listener returns. 'columns' listeners take
   * every record and cannot share the ring with 'data' / 'batch' listeners or an iterator
   * (ERR_BUSY).
   */
  columns: [columns: RingBufferColumns<E>];
  /** A reading error, or a record shorter than the codec (counted in `malformed`). */
  error: [err: Error];
  /** Records the BPF side could not reserve because the ring was full (polled while a listener is attached). */
  lost: [loss: RingBufferLoss];
  /** After close(). */
  close: [];
  /** EventEmitter's own events (bpfkit starts reading when a 'data'/'batch' listener arrives). */
  newListener: [event: string | symbol, listener: (...args: any[]) => void];
  /** EventEmitter's own event (reading stops when the last 'data'/'batch' listener goes). */
  removeListener: [event: string | symbol, listener: (...args: any[]) => void];
}

export const DATA_EVENTS = new Set<string | symbol>(['data', 'batch', 'columns']);
export const MAX_BATCH = 1 << 16;

/** Where RingBuffer finds its ring and loss counter (BpfObject implements this). */
export interface RingBufferSource {
  maps: { name: string; type: string }[];
  nativeMap(name: string): NativeMapHandle;
}

export type CheckedOptions = Required<Omit<RingBufferOptions, 'lostMap' | 'drainMs'>> & { drainMs: number | undefined };

export function checkOpts(opts: RingBufferOptions): CheckedOptions {
  if (typeof opts !== 'object' || opts === null) invalidArgument('opts', 'must be an object');
  const int = (field: keyof RingBufferOptions, def: number, min: number, max: number): number => {
    return checkInteger(opts[field] ?? def, field, min, max);
  };
  return {
    batchSize: int('batchSize', 1024, 1, MAX_BATCH),
    maxBatchesPerTurn: int('maxBatchesPerTurn', 16, 1, 1 << 20),
    lostCheckMs: int('lostCheckMs', 1000, 1, 2 ** 31 - 1),
    lazy: checkLazy(opts.lazy),
    drainMs: opts.drainMs === undefined ? undefined : checkInteger(opts.drainMs, 'drainMs', 1, 2 ** 31 - 1),
  };
}

function checkLazy(v: unknown): boolean | 'transient' | 'cursor' {
  if (v !== undefined && typeof v !== 'boolean' && v !== 'transient' && v !== 'cursor') invalidArgument('lazy', "must be true, false, 'transient' or 'cursor'");
  return v === true || v === 'transient' || v === 'cursor' ? v : false;
}

/** The loss counter's map name for ring `name` of an object (`opts.lostMap`, or `<name>_lost` when the object has it). */
function lostMapName(maps: { name: string }[], name: string, opts: RingBufferOptions): string | undefined {
  if (opts.lostMap === undefined) return maps.some((m) => m.name === `${name}_lost`) ? `${name}_lost` : undefined;
  if (opts.lostMap === false) return undefined;
  if (typeof opts.lostMap !== 'string') invalidArgument('lostMap', 'must be a map name or false');
  if (!maps.some((m) => m.name === opts.lostMap)) invalidArgument('lostMap', `no map named '${opts.lostMap}' in this object`);
  return opts.lostMap;
}

/** A ring's map and its loss counter's (when it has one), opened; the caller owns both. */
export interface RingHandles {
  ring: NativeMapHandle;
  lost: NativeMapHandle | undefined;
}

/** RingBuffer.openPinned(): the ring pinned at `path`, the loss counter at `lostPath`. */
export function pinnedHandles(path: string, lostPath: string | undefined): RingHandles {
  if (lostPath !== undefined && (typeof lostPath !== 'string' || !lostPath.startsWith('/'))) {
    invalidArgument('lostPath', 'must be an absolute path on a BPF filesystem');
  }
  const ring = openPinnedAs(path, 'map');
  try {
    return { ring, lost: lostPath === undefined ? undefined : openPinnedAs(lostPath, 'map') };
  } catch (e) {
    ring.close();
    throw e;
  }
}

/** BpfObject.ringBuffer(): the ringbuf map `name` of an object, and its loss counter (lostMapName). */
export function objectHandles(src: RingBufferSource, name: string, opts: RingBufferOptions): RingHandles {
  if (typeof name !== 'string') invalidArgument('name', 'must be the name of a ringbuf map');
  const maps = src.maps;
  const spec = maps.find((m) => m.name === name);
  if (!spec) invalidArgument('name', `no map named '${name}' in this object (maps: ${maps.map((m) => m.name).join(', ')})`);
  if (spec.type !== 'ringbuf') invalidArgument('name', `map '${name}' is a ${spec.type}, not a ringbuf`);
  const lostName = lostMapName(maps, name, opts);
  checkOpts(opts);
  const ring = src.nativeMap(name);
  try {
    return { ring, lost: lostName === undefined ? undefined : src.nativeMap(lostName) };
  } catch (e) {
    ring.close();
    throw e;
  }
}

export function checkRecordCodec(codec: Codec<unknown, unknown>): void {
  if (typeof codec !== 'object' || codec === null || typeof codec.decode !== 'function' || !Number.isInteger(codec.size) || codec.size < 0) {
    invalidArgument('codec', 'must be a codec (e.g. struct(...), bytes(n))');
  }
}

/** The 'error' of a record shorter than the codec (skipped). */
export function mismatchError(ring: string, len: number, codec: Codec<unknown, unknown>): BpfkitError {
  return new BpfkitError(
    'ERR_CODEC_MISMATCH',
    `ring buffer '${ring}': a ${len}-byte record is shorter than codec ${codec.name} (${codec.size} bytes); skipped`,
    {
      details: { recordSize: len, codecSize: codec.size, codec: codec.name },
    },
  );
}
