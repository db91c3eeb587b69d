/**
 * RingBuffer: records from a BPF_MAP_TYPE_RINGBUF map, delivered on Node's event loop.
 *
 * The addon watches the ring's fd with a libuv poll handle (no threads) and copies
 * records in bounded batches into one buffer; this class decodes them with a codec and
 * hands them out as 'data' / 'batch' events or through `for await` ('data' with plain
 * objects or the lazy 'cursor' (ringbuf/cursor.ts) reads the kernel's mapping itself,
 * ringbuf/direct.ts; the copy path is ringbuf/copy.ts; 'columns' decodes whole batches
 * into typed arrays, ringbuf/columns.ts; the iterators are ringbuf/iterate.ts).
 * Backpressure is the kernel ring itself: while nobody consumes (paused, no listener,
 * iterator not pulling) records stay in the ring, and JS holds at most one decoded batch.
 * Reservations that fail because the ring is full are counted by the BPF side
 * (bpf/include/bpfkit_ringbuf.h) in a per-CPU counter that stats().lost reads and the
 * 'lost' event reports.
 */
import { EventEmitter } from 'node:events';
import { BpfkitError, invalidArgument } from './errors.js';
import type { Codec } from './codecs.js';
import {
  checkOpts,
  checkRecordCodec,
  mismatchError,
  objectHandles,
  pinnedHandles,
  DATA_EVENTS,
  type CheckedOptions,
  type RingHandles,
  type RingBufferEvents,
  type RingBufferOptions,
  type RingBufferSource,
  type RingBufferStats,
} from './ringbuf/options.js';
import { DirectReader } from './ringbuf/direct.js';
import { CopyReader, type Fly } from './ringbuf/copy.js';
import { ColumnReader, type RingBufferColumns } from './ringbuf/columns.js';
import { checkCursorCodec, cursorMaker, type RecordCursor } from './ringbuf/cursor.js';
import { COPIES } from './codecs/generate.js';
import { LossCounter } from './ringbuf/loss.js';
import { closedIterator, ringIterator, type IterHost, type IterState } from './ringbuf/iterate.js';
import { native, type NativeMapHandle, type NativeRingBufferHandle } from './native.js';

export type { RingBufferColumnArrays, RingBufferColumns, RingBufferNumberColumn } from './ringbuf/columns.js';
export type { RingBufferEvents, RingBufferLoss, RingBufferOptions, RingBufferSource, RingBufferStats } from './ringbuf/options.js';

/** Records of a BPF_MAP_TYPE_RINGBUF map on Node's event loop, decoded with a codec: 'data' / 'batch' events or `for await`. The kernel ring is the backpressure: unread records wait there; records that found it full are counted (`stats().lost`, the 'lost' event). */
export class RingBuffer<E> extends EventEmitter<RingBufferEvents<E>> implements AsyncIterable<E> {
  /** Name of the ring buffer map. */
  readonly name: string;
  /** The codec records are decoded with. */
  readonly codec: Codec<E, unknown>;
  /** Ring size in bytes. */
  readonly size: number;

  #h: NativeRingBufferHandle | undefined;
  #lost: LossCounter | undefined;
  readonly #opts: CheckedOptions;
  /** The copy path (ringbuf/copy.ts), and lazy 'transient': the current batch's view when #batch holds record offsets (for 'data' only). */
  readonly #copy: CopyReader<E>;
  #fly: Fly<E> | undefined;
  /** 'columns' listeners: the columns (ringbuf/columns.ts), made when the first one is added. */
  #columns: ColumnReader | undefined;
  /**
   * 'data' listeners only, plain objects, and a codec whose values share no memory with
   * the buffer read (COPIES): records are decoded from the kernel's mapping itself
   * (ringbuf/direct.ts, made on first use), with no copy per batch.
   */
  readonly #directOk: boolean;
  #direct: DirectReader | undefined;
  /** lazy 'cursor': the one record object of the direct path (ringbuf/cursor.ts), reading the mapping during a batch only (attach() ... park()). */
  #cursor: RecordCursor<E> | undefined;
  /** The direct batch being delivered: records [0, #dIdx) of the scan are delivered; #dStop ends it after the current one. */
  #dIdx = 0;
  #dStop = false;
  #batch: E[] = [];
  #idx = 0;
  #paused = false;
  #polling = false;
  #turnBatches = 0;
  /** Inside #drain (a listener calling drain() must not read the batch being delivered again). */
  #inDrain = false;
  #iter: IterState | undefined;
  #iterHost: IterHost | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  /** rawListeners('data'), refetched after any 'data' listener is added or removed. */
  #dataListeners: ((...args: unknown[]) => unknown)[] | undefined;
  #records = 0;
  #bytes = 0;
  #batches = 0;
  #malformed = 0;
  #undelivered = 0;

  static #dispatch: (owner: RingBuffer<unknown>, status: number) => void;
  /** The loss timer's tick (holds no ring: the timer holds its ring weakly). */
  static #lostTick: (rb: RingBuffer<unknown>) => void;
  static {
    RingBuffer.#dispatch = (rb, status) => rb.#onReadable(status);
    RingBuffer.#lostTick = (rb) => {
      try {
        rb.#checkLost();
      } catch (e) {
        rb.#fail(e as Error);
      }
    };
  }

  /**
   * @internal Use BpfObject.ringBuffer() or RingBuffer.openPinned(). Takes ownership of
   * `lost` (closed with the ring); `ring` stays the caller's.
   */
  constructor(ring: NativeMapHandle, codec: Codec<E, any>, opts: RingBufferOptions = {}, lost?: NativeMapHandle) {
    super({ captureRejections: false });
    let info: ReturnType<NativeMapHandle['info']>;
    try {
      this.#opts = checkOpts(opts);
      checkRecordCodec(codec as Codec<unknown, unknown>);
      if (this.#opts.lazy === 'cursor') checkCursorCodec(codec as Codec<unknown, unknown>);
      info = ring.info();
      if (info.type !== 'ringbuf') invalidArgument('map', `map '${info.name}' is a ${info.type}, not a ringbuf: open it with map()`);
      if (lost) this.#lost = new LossCounter(lost);
    } catch (e) {
      lost?.close();
      throw e;
    }
    this.name = info.name;
    this.codec = codec;
    this.size = info.maxEntries;
    const Ctor = native().NativeRingBuffer;
    try {
      this.#h = new Ctor(ring.fd, this, RingBuffer.#dispatch);
    } catch (e) {
      this.#lost?.close();
      throw e;
    }
    this.#copy = new CopyReader(codec, this.#opts.lazy, this.#opts.batchSize, this.size);
    this.#directOk = (!this.#opts.lazy || this.#opts.lazy === 'cursor') && COPIES.has(codec);
    this.on('newListener', (event: string | symbol) => {
      if (DATA_EVENTS.has(event)) this.#columnsCheck(event === 'columns');
      this.#dStop = true;
      if (event === 'data') this.#dataListeners = undefined;
      if (DATA_EVENTS.has(event) || event === 'lost') queueMicrotask(() => this.#update());
    });
    this.on('removeListener', (event: string | symbol) => {
      this.#dStop = true;
      if (event === 'data') this.#dataListeners = undefined;
      if (DATA_EVENTS.has(event) || event === 'lost') this.#update();
    });
  }

  /**
   * Opens a ring buffer map pinned on a BPF filesystem. `lostPath` is the pinned per-CPU
   * loss counter, if the producer has one.
   */
  static openPinned<E>(path: string, codec: Codec<E, any>, opts: RingBufferOptions & { lostPath?: string } = {}): RingBuffer<E> {
    return RingBuffer.#own(pinnedHandles(path, opts.lostPath), codec, opts);
  }

  /** @internal BpfObject.ringBuffer(). */
  static fromObject<E>(src: RingBufferSource, name: string, codec: Codec<E, any>, opts: RingBufferOptions = {}): RingBuffer<E> {
    return RingBuffer.#own(objectHandles(src, name, opts), codec, opts);
  }

  static #own<E>(h: RingHandles, codec: Codec<E, any>, opts: RingBufferOptions): RingBuffer<E> {
    try {
      return new RingBuffer(h.ring, codec, opts, h.lost);
    } finally {
      h.ring.close();
    }
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#h === undefined;
  }

  /** True after pause() (until resume()). */
  isPaused(): boolean {
    return this.#paused;
  }

  /** Stops reading: new records wait in the kernel ring (and are lost, counted, when it fills). */
  pause(): this {
    this.#paused = true;
    this.#dStop = true;
    this.#update();
    return this;
  }

  /** Reads again (records that waited in the ring arrive first, in order). */
  resume(): this {
    this.#paused = false;
    this.#update();
    return this;
  }

  /** Lets the process exit while this ring is open (like socket.unref()). */
  unref(): this {
    this.#h?.unref();
    return this;
  }

  /** Keeps the process alive while this ring is reading (the default). */
  ref(): this {
    this.#h?.ref();
    return this;
  }

  /** Counters of this reader, and the kernel's count of lost records. */
  stats(): RingBufferStats {
    return {
      records: this.#records,
      bytes: this.#bytes,
      batches: this.#batches,
      malformed: this.#malformed,
      undelivered: this.#undelivered,
      lost: this.#lost && !this.#lost.closed ? this.#lost.read() : this.#lost ? this.#lost.seen : null,
      pendingBytes: this.#h?.pending ?? 0,
      size: this.size,
    };
  }

  /**
   * Async iteration with backpressure: a batch is read from the ring only when the loop
   * asks for a record. While iterating, records go to the iterator ('data' is not
   * emitted; 'batch' is). Leaving the loop early (break, throw) closes the ring unless
   * `closeOnReturn` is false. A closed ring iterates as empty.
   */
  iterate(opts: { closeOnReturn?: boolean } = {}): AsyncIterableIterator<E> {
    return this.#iterator<E>(opts, false);
  }

  /**
   * Like iterate(), one array per batch read from the ring (the fast way to consume with
   * `for await`: one promise per batch instead of one per record).
   */
  batches(opts: { closeOnReturn?: boolean } = {}): AsyncIterableIterator<E[]> {
    return this.#iterator<E[]>(opts, true);
  }

  /** Same as `iterate()`: for `for await`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<E> {
    return this.iterate();
  }

  /**
   * Delivers now, synchronously, what the ring holds to the 'data', 'batch' and 'columns'
   * listeners (past `maxBatchesPerTurn`, up to what it held at the call); returns the records
   * read. For an end: stop the producer, `drain()`, `close()`, and nothing it made is left
   * unread. Nothing while paused, closed or iterated, nor inside a listener (the rest follows
   * when it returns). A listener that throws ends it.
   */
  drain(): number {
    const h = this.#h;
    if (!h || this.#paused || this.#iter || this.#inDrain) return 0;
    const from = this.#records + this.#malformed;
    const until = this.#bytes + h.pending;
    let bytes;
    do {
      bytes = this.#bytes;
      this.#turnBatches = 0;
      this.#drain();
    } while (this.#h && !this.#paused && this.#bytes !== bytes && this.#bytes < until);
    return this.#records + this.#malformed - from;
  }

  /**
   * Stops reading and releases the ring (idempotent; safe inside a listener). Records
   * still in the kernel ring stay there for another reader; records of the current batch
   * not yet delivered are counted in stats().undelivered. Emits 'close' on the next tick.
   */
  close(): void {
    const h = this.#h;
    if (!h) return;
    this.#dStop = true;
    if (this.#lost && this.listenerCount('lost') > 0) {
      try {
        this.#checkLost();
      } catch {
        /* the counter is informative; closing must not fail */
      }
    }
    const lostTotal = this.#lost ? this.#lost.safeRead() : null;
    this.#h = undefined;
    // publishes the position past the record being delivered; the mapping is detached next
    this.#direct?.close(this.#dIdx);
    this.#direct = undefined;
    this.#cursor?.release();
    h.close();
    this.#polling = false;
    if (this.#drainTimer) clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
    if (lostTotal !== null) this.#lost!.seen = lostTotal;
    this.#lost?.close();
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#undelivered += this.#batch.length - this.#idx;
    this.#batch = [];
    this.#idx = 0;
    this.#fly = undefined;
    const it = this.#iter;
    this.#iter = undefined;
    if (it?.waiting) {
      const w = it.waiting;
      it.waiting = undefined;
      w.resolve({ value: undefined, done: true });
    }
    process.nextTick(() => this.emit('close'));
  }

  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #iterator<T>(opts: { closeOnReturn?: boolean }, whole: boolean): AsyncIterableIterator<T> {
    if (!this.#h) return closedIterator<T>();
    if (this.#iter) throw new BpfkitError('ERR_BUSY', `ring buffer '${this.name}' already has an active iterator`);
    this.#columnsCheck(false);
    const it: IterState = { waiting: undefined, whole, closeOnReturn: opts.closeOnReturn ?? true };
    this.#iter = it;
    this.#dStop = true;
    this.#paused = false;
    return ringIterator<T>((this.#iterHost ??= this.#lendToIterator()), it);
  }

  /** What an iterator may do with this ring (ringbuf/iterate.ts). */
  #lendToIterator(): IterHost {
    return {
      owns: (it) => this.#iter === it,
      open: () => this.#h !== undefined,
      buffered: () => this.#idx < this.#batch.length,
      take: (whole) => this.#take(whole),
      readNow: () => {
        if (this.#paused || this.#turnBatches >= this.#opts.maxBatchesPerTurn || !this.#readBatch()) return false;
        this.#turnBatches++;
        return true;
      },
      finish: (it) => {
        if (this.#iter === it) this.#iter = undefined;
        this.#update();
      },
      update: () => this.#update(),
      close: () => this.close(),
    };
  }

  /** The next record of the current batch, or (whole) all that is left of it. */
  #take(whole: boolean): E | E[] {
    this.#viewsFromOffsets();
    if (!whole) return this.#batch[this.#idx++]!;
    const rest = this.#idx === 0 ? this.#batch : this.#batch.slice(this.#idx);
    this.#idx = this.#batch.length;
    return rest;
  }

  // ---- internals -------------------------------------------------------------------

  #hasConsumer(): boolean {
    if (this.#iter) return this.#iter.waiting !== undefined;
    return this.listenerCount('data') > 0 || this.listenerCount('batch') > 0 || this.listenerCount('columns') > 0;
  }

  /** A 'columns' listener (`columns`) or another consumer is coming: 'columns' listeners take every record, alone. */
  #columnsCheck(columns: boolean): void {
    const other = this.#iter ? 'an iterator' : this.listenerCount('data') + this.listenerCount('batch') > 0 ? "'data'/'batch' listeners" : undefined;
    const held = this.#idx < this.#batch.length ? 'records read for another consumer, not yet delivered' : undefined;
    const why = columns ? (other ?? held) : this.listenerCount('columns') > 0 ? "'columns' listeners" : undefined;
    if (why) throw new BpfkitError('ERR_BUSY', `ring buffer '${this.name}': 'columns' listeners take every record, alone; it has ${why}`);
    if (columns) this.#columns ??= new ColumnReader(this.codec, this.#opts.batchSize);
  }

  /** Starts or stops the poll handle (and the loss timer) to match who is consuming. */
  #update(): void {
    const h = this.#h;
    if (!h) return;
    const want = !this.#paused && this.#hasConsumer();
    if (want && this.#idx < this.#batch.length && !this.#immediate) {
      // records read before a pause: deliver them without waiting for the kernel
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#drain();
      });
    }
    if (want !== this.#polling) {
      if (want) h.start();
      else h.stop();
      this.#polling = want;
    }
    if (want && this.#opts.drainMs !== undefined && !this.#drainTimer) {
      // strong while reading, like the poll handle; cleared as soon as reading stops
      this.#drainTimer = setInterval(() => {
        if (!this.#polling) return;
        this.#turnBatches = 0;
        this.#drain();
      }, this.#opts.drainMs).unref();
    } else if (!want && this.#drainTimer) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = undefined;
    }
    if (this.#lost && this.listenerCount('lost') > 0) this.#lost.start(this, this.#opts.lostCheckMs, RingBuffer.#lostTick);
    else this.#lost?.stop();
  }

  #onReadable(status: number): void {
    this.#turnBatches = 0;
    if (status < 0) {
      this.#fail(new BpfkitError('ERR_SYSTEM', `ring buffer '${this.name}': poll failed (libuv status ${status})`, { details: { status } }));
      return;
    }
    this.#drain();
  }

  #fail(err: Error): void {
    const w = this.#iter?.waiting;
    if (w) {
      this.#iter!.waiting = undefined;
      w.reject(err);
    } else {
      this.emit('error', err);
    }
  }

  /** Delivers what the consumers want, reading at most maxBatchesPerTurn batches. */
  #drain(): void {
    this.#inDrain = true;
    try {
      while (this.#h && !this.#paused) {
        if (this.#idx >= this.#batch.length) {
          if (!this.#hasConsumer() || this.#turnBatches >= this.#opts.maxBatchesPerTurn) break;
          if (this.listenerCount('columns') > 0) {
            if (!this.#walkColumns()) break;
            this.#turnBatches++;
            continue;
          }
          if (this.#directOk && !this.#iter && this.listenerCount('batch') === 0) {
            if (!this.#walk()) break;
            this.#turnBatches++;
            continue;
          }
          if (!this.#readBatch()) break;
          this.#turnBatches++;
        }
        if (!this.#deliver()) break;
      }
    } finally {
      this.#inDrain = false;
      if (this.#lost?.timing && performance.now() - this.#lost.lastCheck >= this.#opts.lostCheckMs) this.#checkLost();
      this.#update();
    }
  }

  /** Hands out the current batch; false when no one takes more right now. */
  #deliver(): boolean {
    const it = this.#iter;
    if (it) {
      const w = it.waiting;
      if (!w) return false;
      it.waiting = undefined;
      w.resolve({ value: this.#take(it.whole), done: false });
      return false; // the iterator pulls the rest itself
    }
    if (this.listenerCount('data') === 0) {
      // 'batch' listeners already had the records
      if (this.listenerCount('batch') === 0) return false;
      this.#idx = this.#batch.length;
      return true;
    }
    const batch = this.#batch;
    while (this.#idx < batch.length) {
      if (this.#paused || !this.#h || this.#batch !== batch) return false;
      const fly = this.#fly;
      if (fly) {
        // lazy 'transient': one view, moved to each record
        const fns = (this.#dataListeners ??= this.rawListeners('data') as ((...args: unknown[]) => unknown)[]);
        this.#copy.seek(fly.view, batch[this.#idx++] as number);
        if (fns.length === 1) fns[0]!.call(this, fly.view);
        else this.emit('data', fly.view);
        continue;
      }
      // one listener (the usual case): call it as emit() would, without emit()'s
      // argument handling and listener-array copy per record
      const fns = (this.#dataListeners ??= this.rawListeners('data') as ((...args: unknown[]) => unknown)[]);
      if (fns.length === 1) fns[0]!.call(this, batch[this.#idx++]!);
      else this.emit('data', batch[this.#idx++]!);
    }
    return true;
  }

  /**
   * Delivers one batch straight from the kernel's mapping to the 'data' listeners; false
   * when the ring had none. The consumer position moves once, past the records whose
   * listeners were called (all of them unless paused, closed or a listener changed).
   */
  #walk(): boolean {
    const d = (this.#direct ??= new DirectReader(this.#h!, this.#opts.batchSize));
    const n = d.scan(this.#opts.batchSize);
    if (n === 0) return false;
    this.#batches++;
    this.#dStop = false;
    const cur = this.#opts.lazy === 'cursor' ? (this.#cursor ??= cursorMaker(this.codec)(d)).attach() : undefined;
    const offs = d.offs;
    const need = this.codec.size;
    const codec = this.codec;
    const src = d.buf;
    let i = 0;
    try {
      while (i < n && !this.#dStop) {
        const off = offs[2 * i]!;
        const len = offs[2 * i + 1]!;
        this.#dIdx = ++i;
        this.#bytes += len;
        if (len < need) {
          this.#mismatch(len);
          continue;
        }
        this.#records++;
        const fns = (this.#dataListeners ??= this.rawListeners('data') as ((...args: unknown[]) => unknown)[]);
        const rec = cur ? cur.at(off) : (codec.decode(src, off) as E);
        if (fns.length === 1) fns[0]!.call(this, rec);
        else this.emit('data', rec);
      }
    } finally {
      // also when a listener threw: its record is delivered, the rest stays in the ring
      if (this.#direct === d) d.publish(i);
      cur?.park();
      this.#dIdx = 0;
    }
    return true;
  }

  /**
   * Delivers one batch straight from the kernel's mapping to the 'columns' listeners, as
   * columns; false when the ring had none. The records are consumed before the listeners
   * run (the columns are copies): pause or close inside one stops after this batch.
   */
  #walkColumns(): boolean {
    const d = (this.#direct ??= new DirectReader(this.#h!, this.#opts.batchSize));
    const n = d.scan(this.#opts.batchSize);
    if (n === 0) return false;
    const offs = d.offs;
    const cols = this.#columns!.read(d.buf, d.words, d.view, offs, n, this.codec.size);
    d.publish(n);
    this.#batches++;
    this.#records += cols.length;
    for (let i = 0; i < n; i++) this.#bytes += offs[2 * i + 1]!;
    if (cols.length < n) for (let i = 0; i < n; i++) if (offs[2 * i + 1]! < this.codec.size) this.#mismatch(offs[2 * i + 1]!);
    if (cols.length === 0) return true;
    if (this.#h) this.emit('columns', cols as RingBufferColumns<E>);
    else this.#undelivered += cols.length;
    return true;
  }

  /** A record shorter than the codec: counted, skipped, and reported if anyone listens. */
  #mismatch(len: number): void {
    this.#malformed++;
    if (this.listenerCount('error') > 0) this.emit('error', mismatchError(this.name, len, this.codec));
  }

  /** Reads and decodes one batch from the ring; false when the ring is empty. */
  #readBatch(): boolean {
    // inside a direct batch's listener (an iterator's next()): consume the records it delivered first
    if (this.#dIdx > 0) this.#direct?.publish(this.#dIdx);
    // lazy 'transient' with only 'data' listeners: the batch is the records' offsets
    const r = this.#copy.read(this.#h!, !this.#iter && this.listenerCount('batch') === 0, (len) => this.#mismatch(len));
    if (!r) return false;
    const out = r.out;
    this.#fly = r.fly;
    this.#records += out.length;
    this.#bytes += r.bytes;
    this.#batches++;
    this.#batch = out;
    this.#idx = 0;
    if (out.length > 0 && this.listenerCount('batch') > 0) this.emit('batch', out);
    return true;
  }

  /** A batch of offsets (lazy 'transient') about to go to an iterator: ordinary lazy views of what is left. */
  #viewsFromOffsets(): void {
    const fly = this.#fly;
    if (!fly) return;
    this.#fly = undefined;
    this.#batch = this.#copy.views(fly, this.#batch.slice(this.#idx) as unknown as number[]);
    this.#idx = 0;
  }

  #checkLost(): void {
    const loss = this.#lost?.check();
    if (loss) this.emit('lost', loss);
  }
}
