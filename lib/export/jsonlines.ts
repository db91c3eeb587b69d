/**
 * Event export: any bpfkit event stream as a Node Readable of JSON lines, for shipping to
 * an analytics pipeline (a file, a socket, Kafka, ...).
 *
 * Backpressure: when the consumer is slower than the events, the stream stops taking
 * them from the source where the source lets it (an async iterator is not pulled; a
 * RingBuffer is paused, so records wait in the kernel ring), and otherwise keeps at most
 * `maxQueue` lines. What does not fit is dropped and counted, never silently:
 * `stats().lost`, and a 'lost' event once the consumer has caught up. Losses the source
 * itself reports (a full kernel ring: its 'lost' event) are counted in `upstreamLost`.
 *
 * ```ts
 * toJsonLines(fw).pipe(createWriteStream('acl.jsonl'));          // AclFirewall: 'event'
 * toJsonLines(tracer, { event: 'event' }).pipe(socket);            // PacketTracer: raw events
 * toJsonLines(rb, { map: (r) => ({ seq: r.seq }) }).pipe(out);     // any RingBuffer
 * toJsonLines(fw.events());                                        // any async iterable
 * ```
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { invalidArgument } from '../core/errors.js';
import { RingBuffer } from '../core/ringbuf.js';
import { AclFirewall } from '../modules/acl/firewall.js';
import { PacketTracer } from '../modules/tracer/tracer.js';

/** What toJsonLines reads: an event emitter (AclFirewall, PacketTracer, RingBuffer, your own) or an async iterable. */
export type JsonLinesSource<T = unknown> = EventEmitter | AsyncIterable<T>;

/** Options of {@link toJsonLines}. */
export interface JsonLinesOptions<T = unknown> {
  /**
   * The emitter's event to export. Default: AclFirewall 'event' (deny and log),
   * PacketTracer 'packet' (finished timelines), RingBuffer 'batch' (every record); other
   * emitters 'data'. Ignored for async iterables.
   */
  event?: string;
  /**
   * Emitter events after which the stream ends (once the queue is written). Default:
   * AclFirewall 'close', PacketTracer 'end', RingBuffer 'close'; other emitters 'end', 'close'.
   */
  endOn?: readonly string[];
  /** Most lines held while the consumer is slow, beyond the stream's own buffer (default 4096). */
  maxQueue?: number;
  /** The stream's buffer in bytes (Readable highWaterMark; default 64 KiB). */
  highWaterMark?: number;
  /** Turns an event into the value written (default: the event). bigint is written as a string. */
  map?: (event: T) => unknown;
}

/** Accounting of a {@link JsonLinesStream}: emitted = written + lost + queued. */
export interface JsonLinesStats {
  /** Events the stream took from its source. */
  emitted: number;
  /** Lines handed to the consumer's side of the stream (pushed). */
  written: number;
  /** Events dropped because the consumer was too slow (the queue was full). */
  lost: number;
  /** Lines waiting in the queue. */
  queued: number;
  /** Losses the source reported before the stream saw the events (e.g. a full kernel ring). */
  upstreamLost: number;
}

/** The argument of a {@link JsonLinesStream}'s 'lost' event. */
export interface JsonLinesLoss {
  /** Events dropped since the last 'lost' event. */
  count: number;
  /** All events dropped so far. */
  total: number;
}

const DEFAULT_MAX_QUEUE = 4096;

const replacer = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/** Whether `x` can be paused and resumed (a RingBuffer, a Readable). */
function pausable(x: object): x is { pause(): unknown; resume(): unknown } {
  return typeof (x as { pause?: unknown }).pause === 'function' && typeof (x as { resume?: unknown }).resume === 'function';
}

/**
 * A Readable of JSON lines (one event per line, '\n' terminated) with its loss
 * accounting. At any time `emitted = written + lost + queued`.
 */
export class JsonLinesStream extends Readable {
  #emitted = 0;
  #written = 0;
  #lost = 0;
  #reportedLost = 0;
  #upstreamLost = 0;
  #queue: string[] = [];
  /** The consumer wants more (the last push() returned true, or _read() was called since). */
  #wanting = true;
  #ended = false;
  readonly #maxQueue: number;
  readonly #map: ((e: unknown) => unknown) | undefined;
  #pauseSource: (() => void) | undefined;
  #resumeSource: (() => void) | undefined;
  #pull: (() => void) | undefined;
  #detach: (() => void) | undefined;

  /** @internal use toJsonLines() */
  constructor(opts: { maxQueue: number; highWaterMark: number; map: ((e: unknown) => unknown) | undefined }) {
    super({ highWaterMark: opts.highWaterMark, encoding: 'utf8' });
    this.#maxQueue = opts.maxQueue;
    this.#map = opts.map;
  }

  /** Counters of the export so far. */
  stats(): JsonLinesStats {
    return { emitted: this.#emitted, written: this.#written, lost: this.#lost, queued: this.#queue.length, upstreamLost: this.#upstreamLost };
  }

  /** @internal */
  wire(w: { pause?: () => void; resume?: () => void; pull?: () => void; detach: () => void }): void {
    this.#pauseSource = w.pause;
    this.#resumeSource = w.resume;
    this.#pull = w.pull;
    this.#detach = w.detach;
  }

  /** @internal one event from the source */
  offer(event: unknown): void {
    if (this.#ended || this.destroyed) return;
    this.#emitted++;
    let line: string;
    try {
      line = `${JSON.stringify(this.#map ? this.#map(event) : event, replacer)}\n`;
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    if (this.#wanting && this.#queue.length === 0) {
      this.#push(line);
      if (this.#wanting) this.#pull?.();
    } else if (this.#queue.length < this.#maxQueue) {
      this.#queue.push(line);
    } else {
      this.#lost++;
    }
  }

  /** @internal losses reported by the source */
  upstream(count: number): void {
    if (Number.isFinite(count) && count > 0) this.#upstreamLost += count;
  }

  /** @internal the source has no more events */
  finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#detach?.();
    this.#drain();
  }

  #push(line: string): void {
    this.#written++;
    if (!this.push(line)) {
      this.#wanting = false;
      this.#pauseSource?.();
    }
  }

  /** Writes queued lines while the consumer takes them; ends the stream after the last. */
  #drain(): void {
    while (this.#wanting && this.#queue.length > 0) this.#push(this.#queue.shift()!);
    if (this.#queue.length > 0) return;
    if (this.#lost > this.#reportedLost) {
      const count = this.#lost - this.#reportedLost;
      this.#reportedLost = this.#lost;
      this.emit('lost', { count, total: this.#lost } satisfies JsonLinesLoss);
    }
    if (this.#ended) this.push(null);
    else if (this.#wanting) {
      this.#resumeSource?.();
      this.#pull?.();
    }
  }

  /** Readable's pull: the consumer wants more lines. @internal */
  override _read(): void {
    this.#wanting = true;
    this.#drain();
  }

  /** Readable's teardown: detaches from the source and drops the queue. @internal */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#ended = true;
    this.#queue = [];
    const d = this.#detach;
    this.#detach = undefined;
    try {
      d?.();
    } finally {
      cb(err);
    }
  }
}

/** Default event and end events by kind of source. */
function defaults(src: EventEmitter): { event: string; endOn: string[] } {
  if (src instanceof AclFirewall) return { event: 'event', endOn: ['close'] };
  if (src instanceof PacketTracer) return { event: 'packet', endOn: ['end'] };
  if (src instanceof RingBuffer) return { event: 'batch', endOn: ['close'] };
  return { event: 'data', endOn: ['end', 'close'] };
}

/**
 * Turns an event stream into a Readable of JSON lines with backpressure and counted loss
 * (see the module comment). Destroying the stream detaches it from the source (a
 * RingBuffer it paused is resumed; an async iterator is returned).
 */
export function toJsonLines<T = unknown>(source: JsonLinesSource<T>, opts: JsonLinesOptions<T> = {}): JsonLinesStream {
  if (typeof opts !== 'object' || opts === null) invalidArgument('opts', 'must be an object');
  const maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
  if (!Number.isInteger(maxQueue) || maxQueue < 0 || maxQueue > 1 << 24) invalidArgument('maxQueue', `must be an integer in 0..2^24, got ${String(maxQueue)}`);
  const hwm = opts.highWaterMark ?? 64 * 1024;
  if (!Number.isInteger(hwm) || hwm < 1 || hwm > 1 << 30) invalidArgument('highWaterMark', `must be an integer in 1..2^30, got ${String(hwm)}`);
  if (opts.map !== undefined && typeof opts.map !== 'function') invalidArgument('map', 'must be a function');
  if (opts.event !== undefined && (typeof opts.event !== 'string' || opts.event === '')) invalidArgument('event', 'must be an event name');
  if (opts.endOn !== undefined && (!Array.isArray(opts.endOn) || opts.endOn.some((e) => typeof e !== 'string')))
    invalidArgument('endOn', 'must be a list of event names');
  const map = opts.map as ((e: unknown) => unknown) | undefined;
  if (source instanceof EventEmitter) return fromEmitter(source, opts.event, opts.endOn, { maxQueue, highWaterMark: hwm, map });
  if (source !== null && typeof source === 'object' && typeof (source as AsyncIterable<T>)[Symbol.asyncIterator] === 'function') {
    return fromIterable(source as AsyncIterable<T>, { maxQueue, highWaterMark: hwm, map });
  }
  return invalidArgument('source', 'must be an EventEmitter (AclFirewall, PacketTracer, RingBuffer, ...) or an async iterable');
}

function fromEmitter(
  src: EventEmitter,
  event: string | undefined,
  endOn: readonly string[] | undefined,
  o: ConstructorParameters<typeof JsonLinesStream>[0],
): JsonLinesStream {
  const d = defaults(src);
  const name = event ?? d.event;
  const ends = endOn ?? d.endOn;
  const out = new JsonLinesStream(o);
  // a RingBuffer delivers whole batches: every record of one is an event
  const batched = src instanceof RingBuffer && name === 'batch';
  const onEvent = batched ? (b: unknown[]) => b.forEach((x) => out.offer(x)) : (x: unknown) => out.offer(x);
  const onLost = (l: { count?: number }) => out.upstream(Number(l?.count));
  const onEnd = () => out.finish();
  const canPause = src instanceof RingBuffer || (!(src instanceof AclFirewall) && !(src instanceof PacketTracer) && pausable(src));
  let paused = false;
  out.wire({
    pause: canPause
      ? () => {
          paused = true;
          (src as unknown as { pause(): void }).pause();
        }
      : undefined,
    resume: canPause
      ? () => {
          if (!paused) return;
          paused = false;
          (src as unknown as { resume(): void }).resume();
        }
      : undefined,
    detach: () => {
      src.off(name, onEvent);
      src.off('lost', onLost);
      for (const e of ends) src.off(e, onEnd);
      if (paused) {
        paused = false;
        (src as unknown as { resume(): void }).resume();
      }
    },
  });
  src.on(name, onEvent);
  src.on('lost', onLost);
  for (const e of ends) src.once(e, onEnd);
  if (src instanceof RingBuffer && src.closed) out.finish();
  if (src instanceof PacketTracer && src.stopped) out.finish();
  if (src instanceof AclFirewall && src.closed) out.finish();
  return out;
}

function fromIterable<T>(src: AsyncIterable<T>, o: ConstructorParameters<typeof JsonLinesStream>[0]): JsonLinesStream {
  const out = new JsonLinesStream(o);
  const it = src[Symbol.asyncIterator]();
  let pulling = false;
  let done = false;
  const pull = (): void => {
    if (pulling || done) return;
    pulling = true;
    it.next().then(
      (r) => {
        pulling = false;
        if (r.done) {
          done = true;
          out.finish();
          return;
        }
        // pushed (and pulls the next while the consumer wants more) or queued until _read()
        out.offer(r.value);
      },
      (e: unknown) => {
        pulling = false;
        done = true;
        out.destroy(e instanceof Error ? e : new Error(String(e)));
      },
    );
  };
  out.wire({
    pull,
    detach: () => {
      if (done) return;
      done = true;
      void it.return?.()?.catch(() => undefined);
    },
  });
  return out;
}
