/**
 * The copy path of RingBuffer: a batch of records copied by the addon (consume()) into a
 * JS buffer, then decoded as plain objects, lazy views or (lazy 'transient') the records'
 * offsets for one moving view. Used by 'batch' listeners, iterators, lazy views and codecs
 * that may return views of the bytes they read; the 'data' path of plain objects reads
 * the kernel's mapping instead (direct.ts).
 */
import type { Codec } from '../codecs.js';
import { lazyFactory, transientFactory, type LazyFactory, type TransientFactory } from '../codecs/lazy.js';
import type { NativeRingBufferHandle } from '../native.js';

/** lazy 'transient': the one view of a batch, the buffer it reads and a DataView over it. */
export interface Fly<E> {
  view: E;
  buf: Buffer;
  d: DataView;
}

/** One batch read: the decoded records (or, with `fly`, their offsets), and what it took. */
export interface CopyBatch<E> {
  out: E[];
  fly: Fly<E> | undefined;
  /** payload bytes of every record read, short ones included */
  bytes: number;
}

export class CopyReader<E> {
  #buf: Buffer;
  /** lazy: the views' factory, and where the next batch goes in #buf (never reused, see read()). */
  readonly #lazy: LazyFactory<E> | undefined;
  #view: DataView | undefined;
  #pos = 0;
  /** lazy 'transient': the factory, the view of the current buffer, and the offsets array (reused from batch to batch). */
  readonly #transient: TransientFactory<E> | undefined;
  #flyKept: Fly<E> | undefined;
  readonly #flyOffs: E[] = [];
  readonly #offs: Uint32Array;

  constructor(
    readonly codec: Codec<E, unknown>,
    lazy: boolean | 'transient' | 'cursor',
    readonly batchSize: number,
    ringSize: number,
  ) {
    const stride = Math.ceil(Math.max(codec.size, 8) / 8) * 8;
    this.#buf = Buffer.allocUnsafe(Math.min(Math.max(stride * batchSize, 4096), Math.max(ringSize, 4096)));
    this.#lazy = lazy ? lazyFactory(codec) : undefined;
    this.#transient = lazy === 'transient' ? transientFactory(codec) : undefined;
    if (this.#lazy) this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
    this.#offs = new Uint32Array(2 * batchSize);
  }

  /** lazy 'transient' is on. */
  get transient(): boolean {
    return this.#transient !== undefined;
  }

  /**
   * Reads and decodes one batch; undefined when the ring is empty. `fly` (lazy 'transient'
   * with only 'data' listeners): the batch is the records' offsets for one moving view.
   * Records shorter than the codec go to `short` and are left out.
   */
  read(h: NativeRingBufferHandle, fly: boolean, short: (len: number) => void): CopyBatch<E> | undefined {
    const codec = this.codec;
    const need = codec.size;
    const lazy = this.#lazy;
    for (;;) {
      // lazy views read the batch memory after delivery: each batch goes after the last
      // one in #buf, and a full #buf is replaced, never overwritten
      const base = lazy ? this.#pos : 0;
      const n = h.consume(base ? this.#buf.subarray(base) : this.#buf, this.#offs, this.batchSize);
      if (n < 0) {
        // the next record does not fit: a fresh buffer, larger if it did not fit an empty one
        const len = base ? this.#buf.length : Math.max(this.#buf.length * 2, Math.ceil(-n / 8) * 8 + 8);
        this.#newBuffer(len);
        continue;
      }
      if (n === 0) return undefined;
      const buf = this.#buf;
      const offs = this.#offs;
      fly &&= this.#transient !== undefined;
      // the view and the offsets array are reused from batch to batch (nothing keeps them)
      if (fly && this.#flyKept?.buf !== buf) this.#flyKept = { view: this.#transient!.make(buf, this.#view!), buf, d: this.#view! };
      const out = fly ? this.#flyOffs : new Array<E>(n);
      if (fly) out.length = n;
      let k = 0;
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const len = offs[2 * i + 1]!;
        bytes += len;
        if (len < need) {
          short(len);
          continue;
        }
        out[k++] = fly ? ((base + offs[2 * i]!) as E) : lazy ? lazy(buf, this.#view!, base + offs[2 * i]!) : codec.decode(buf, offs[2 * i]!);
      }
      if (lazy) {
        this.#pos = base + Math.ceil((offs[2 * n - 2]! + offs[2 * n - 1]!) / 8) * 8;
        // less than a quarter left: the next batch starts a fresh buffer
        if (this.#buf.length - this.#pos < this.#buf.length / 4) this.#newBuffer(this.#buf.length);
      }
      if (k !== n) out.length = k;
      return { out, fly: fly ? this.#flyKept : undefined, bytes };
    }
  }

  /** Moves the transient view to the record at `off`. */
  seek(view: E, off: number): void {
    this.#transient!.seek(view, off);
  }

  /** Ordinary lazy views of the offsets `rest` of a transient batch read from `fly` (for an iterator). */
  views(fly: Fly<E>, rest: number[]): E[] {
    return rest.map((o) => this.#lazy!(fly.buf, fly.d, o));
  }

  #newBuffer(len: number): void {
    this.#buf = Buffer.allocUnsafe(len);
    this.#pos = 0;
    if (this.#lazy) this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  }
}
