/**
 * The direct reader: RingBuffer's 'data' path walks the kernel's own mapping of the ring
 * from JS (no copy of each batch into a JS buffer, no array of record offsets).
 *
 * The addon maps the ring as libbpf does (consumer page read-write, producer page + data
 * read-only, the data twice so a record that wraps around is contiguous) and hands the
 * two mappings to JS as external ArrayBuffers. close() detaches them before it unmaps
 * (addon/ring_buffer.cc), so a view kept in JS reads nothing (DataView reads throw)
 * instead of faulting.
 *
 * Memory ordering, against the kernel's side (kernel/bpf/ringbuf.c):
 * - reserve writes the record header (len | BUSY) and then publishes the producer
 *   position with smp_store_release; commit clears BUSY (and sets DISCARD) with xchg, a
 *   full barrier after the record's bytes are written; before reusing space, reserve
 *   reads the consumer position with smp_load_acquire.
 * - Here the producer position and each header are read with Atomics.load and the
 *   consumer position written with Atomics.store. Atomics are sequentially consistent,
 *   stronger than the acquire / release pairs needed: Atomics.load(producer position)
 *   orders the header reads after it; Atomics.load(header) without BUSY orders the
 *   record's plain reads (DataView, typed arrays) after the producer's writes; and the
 *   Atomics.store of the consumer position comes after every read of the records it
 *   frees, so the producer cannot reuse bytes a listener may still read. V8 emits the same
 *   instructions for Atomics on a non-shared ArrayBuffer as on a SharedArrayBuffer
 *   (x86: mov / xchg; arm64: ldar / stlr), and its compilers keep plain typed-array
 *   accesses in order with them.
 * - Positions are 64-bit: one BigInt64Array Atomics.load / store each, once per batch.
 * - Publish, then look at the producer position again (the next walk) before sleeping:
 *   a producer committing at that moment sees a caught-up consumer and wakes the reader
 *   (the kernel wakes only a consumer whose position equals the record's), the
 *   store-then-load pattern that needs the full ordering both sides have (xchg; SC Atomics).
 */
import type { NativeRingBufferHandle } from '../native.js';

const HDR = 8;
const LEN_MASK = 0x3fffffff;
const DISCARD = 0x40000000;

export class DirectReader {
  /** The producer page + data twice, read-only memory: read it, never write it nor hand it out. */
  readonly buf: Buffer;
  /** A DataView over exactly `buf`. */
  readonly view: DataView;
  /** After scan(): record k is at byte offs[2k] of `buf`, offs[2k + 1] bytes long. */
  readonly offs: Int32Array;
  /** Int32 words over exactly `buf` (word k is bytes 4k..4k+3), for aligned reads; scan() reads the record headers through it. */
  readonly words: Int32Array;
  readonly #ends: Float64Array;
  readonly #cons: BigInt64Array;
  readonly #prod: BigInt64Array;
  readonly #data: number;
  readonly #mask: bigint;
  /** The consumer position when the scan started, the records scanned and the bytes they (and discarded ones) take. */
  #start = 0n;
  #n = 0;
  #total = 0;
  #live = true;

  constructor(h: NativeRingBufferHandle, max: number) {
    const m = h.mapping();
    this.#cons = new BigInt64Array(m.consumer, 0, 1);
    this.#prod = new BigInt64Array(m.producer, 0, 1);
    this.words = new Int32Array(m.producer);
    this.buf = Buffer.from(m.producer);
    this.view = new DataView(m.producer);
    this.#data = m.dataOffset;
    this.#mask = BigInt(m.size - 1);
    this.offs = new Int32Array(2 * max);
    this.#ends = new Float64Array(max);
  }

  /**
   * Finds at most `max` committed records from the consumer position (discarded ones are
   * skipped) and returns how many; nothing is consumed until publish().
   */
  scan(max: number): number {
    const start = Atomics.load(this.#cons, 0);
    const avail = Number(Atomics.load(this.#prod, 0) - start);
    this.#start = start;
    this.#n = 0;
    this.#total = 0;
    if (avail <= 0) return 0;
    // the data is mapped twice: base + avail < data + 2 x size, so every record is contiguous
    const base = this.#data + Number(start & this.#mask);
    const hdr = this.words;
    const offs = this.offs;
    const ends = this.#ends;
    let adv = 0;
    let n = 0;
    while (n < max && adv < avail) {
      const p = base + adv;
      const len = Atomics.load(hdr, p >> 2);
      if (len < 0) break; // BUSY (bit 31): reserved, not yet committed; the records after it wait too
      adv += ((len & LEN_MASK) + HDR + 7) & ~7;
      if (len & DISCARD) continue;
      offs[2 * n] = p + HDR;
      offs[2 * n + 1] = len & LEN_MASK;
      ends[n++] = adv;
    }
    this.#n = n;
    this.#total = adv;
    return n;
  }

  /**
   * Consumes the first `k` records of the scan (all of it, discarded records included,
   * when k is the count): the producer may then reuse their bytes. Once per scan.
   */
  publish(k: number): void {
    if (!this.#live) return;
    const adv = k >= this.#n ? this.#total : k > 0 ? this.#ends[k - 1]! : 0;
    this.#n = 0;
    this.#total = 0;
    if (adv > 0) Atomics.store(this.#cons, 0, this.#start + BigInt(adv));
  }

  /** The mapping is about to be detached: consumes the first `k` records of the scan, then never touches the mapping again. */
  close(k: number): void {
    this.publish(k);
    this.#live = false;
  }
}
