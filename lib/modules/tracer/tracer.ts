/**
 * PacketTracer: follows packets through the kernel's network stack for one debugging
 * session. `start()` loads bpf/tracer.bpf.c with the filter as read-only data, attaches a
 * tp_btf program per point, and streams events from one ring buffer; `stop()` detaches and
 * unloads everything (and so does the death of the process: every attachment is a bpf_link).
 *
 * ```ts
 * const trace = await PacketTracer.start({ filter: { host: '198.18.0.2', proto: 'udp', port: 53 } });
 * trace.on('packet', (p) => console.log(p.verdict, p.dropReason, p.events.map((e) => `${e.ifname} ${e.point}`)));
 * trace.toJSONLines().pipe(process.stdout);
 * await trace.stop();
 * ```
 */
import { EventEmitter, on } from 'node:events';
import { Readable } from 'node:stream';
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { u32, u64 } from '../../core/codecs.js';
import { checkInteger } from '../../core/validate.js';
import { BpfObject } from '../../core/object.js';
import type { BpfMap } from '../../core/maps/map.js';
import type { RingBuffer, RingBufferLoss } from '../../core/ringbuf.js';
import { dropReasonNamer, kernelHasTracepoint, tracingSupport, type TracingLink } from '../../core/programs/tracing.js';
import { encodeFilter, type TraceFilter } from './filter.js';
import { POINTS, TRACE_POINTS, POINT_OFFSET, recordCodec, u16, type TraceEvent, type TracePoint } from './layout.js';
import { lazyEvents, type TraceEventFactory } from './view.js';
import { TimelineAssembler, type TracePacket } from './timeline.js';

/** Options of {@link PacketTracer.start}. */
export interface PacketTracerOptions {
  /** Which packets (evaluated in the kernel); default: every packet. */
  filter?: TraceFilter;
  /** Points to trace; default: all the running kernel has. */
  points?: readonly TracePoint[];
  /** Ring buffer size in bytes (a power of two, at least a page; default 4 MiB). */
  ringBytes?: number;
  /** A timeline with no new event for this long ends as 'unfinished' or 'transmitted' (default 1000 ms). */
  idleMs?: number;
}

/** Counters of a trace session (see {@link PacketTracer.stats}). */
export interface PacketTracerStats {
  /** Events the programs saw at their points (matching or not). */
  seen: number;
  /** Events that matched the filter. */
  matched: number;
  /** Events delivered to JS. */
  events: number;
  /** Timelines finished. */
  packets: number;
  /** Timelines still open. */
  open: number;
  /** Events lost because the ring buffer was full (null: unknown). */
  lost: number | null;
  /**
   * With a pcap-filter expression: how often the kernel ran it, and how often a packet's
   * verdict was remembered from its earlier point instead.
   */
  pcap?: {
    /** Packets the kernel ran the expression on. */
    runs: number;
    /** Points that reused a packet's verdict from an earlier point instead of running it again. */
    remembered: number;
  };
}

/** The events of a {@link PacketTracer}, as EventEmitter listener argument lists. */
export interface PacketTracerEvents {
  /** One event, as it arrives. */
  event: [TraceEvent];
  /** One packet's whole path, once it ended (or went idle). */
  packet: [TracePacket];
  /** Events lost because the ring buffer was full (checked once a second). */
  lost: [RingBufferLoss];
  /** A failure while reading events. */
  error: [Error];
  /** After stop(): every timeline has been emitted. */
  end: [];
}

type Listener<A extends unknown[]> = (...args: A) => void;
interface TracerLink {
  point: TracePoint;
  program: string;
  link: TracingLink;
}

/** A running trace session (see the module comment). */
export class PacketTracer extends EventEmitter<PacketTracerEvents> implements AsyncIterable<TracePacket> {
  /** What this kernel cannot trace, said once at start (e.g. no kprobe-based per-function tracing). */
  readonly warnings: readonly string[];
  /** The points being traced. */
  readonly points: readonly TracePoint[];
  #obj: BpfObject;
  #links: TracerLink[];
  /** Records arrive as offsets into the ring's batch buffer (see recordCodec()). */
  #rb: RingBuffer<number>;
  #batchBuf: Buffer = Buffer.alloc(0);
  #makeEvent: TraceEventFactory;
  /** Words of the ring's batch buffer (a Uint32Array over #batchBuf), remade when the buffer changes. */
  #words: Uint32Array = new Uint32Array(0);
  #wordsOf: Buffer | undefined;
  /** Make TraceEvents only while someone listens for 'event' or 'packet' (else count the records). */
  #decode = false;
  /** rawListeners('event'), refetched after an 'event' listener is added or removed. */
  #eventFns: ((e: TraceEvent) => void)[] | undefined;
  #wantedIds: boolean[] = [];
  #timelines = new TimelineAssembler();
  #sweep: NodeJS.Timeout;
  #idleMs: number;
  #wanted: Set<TracePoint>;
  #events = 0;
  #packets = 0;
  #stopped = false;
  #pcap: boolean;

  private constructor(m: { obj: BpfObject; links: TracerLink[]; points: TracePoint[]; warnings: string[]; idleMs: number; pcap: boolean }) {
    super();
    this.#pcap = m.pcap;
    this.#obj = m.obj;
    this.#links = m.links;
    this.points = m.points;
    this.warnings = m.warnings;
    this.#idleMs = m.idleMs;
    this.#wanted = new Set(m.points);
    for (const p of POINTS) this.#wantedIds[p.id] = this.#wanted.has(p.name);
    this.#makeEvent = lazyEvents(dropReasonNamer());
    const listeners = () => {
      queueMicrotask(() => (this.#decode = this.listenerCount('event') + this.listenerCount('packet') > 0));
    };
    (this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (name === 'event') this.#eventFns = undefined;
      if (name === 'event' || name === 'packet') this.#decode = true;
    });
    (this as EventEmitter).on('removeListener', (name: string | symbol) => {
      if (name === 'event') this.#eventFns = undefined;
      if (name === 'event' || name === 'packet') listeners();
    });
    const codec = recordCodec((b) => (this.#batchBuf = b));
    this.#rb = m.obj.ringBuffer('events', codec, { batchSize: 1024 });
    this.#rb.on('batch', (offs) => this.#onBatch(this.#batchBuf, offs));
    this.#rb.on('error', (e) => this.#emitError(e));
    this.#rb.on('lost', (l) => this.emit('lost', l));
    this.#sweep = setInterval(() => this.#deliver(this.#timelines.sweep(Date.now(), this.#idleMs)), Math.max(50, Math.min(this.#idleMs, 1000)));
    this.#sweep.unref();
  }

  /**
   * Loads and attaches the tracer. Bad options are ERR_INVALID_ARGUMENT naming the field,
   * before anything reaches the kernel. Points whose tracepoint this kernel lacks are
   * skipped with a warning (an explicitly requested one is ERR_UNSUPPORTED).
   */
  static async start(opts: PacketTracerOptions = {}): Promise<PacketTracer> {
    if (opts === null || typeof opts !== 'object') invalidArgument('options', 'must be an object');
    const { filter, pcap } = encodeFilter(opts.filter);
    const idleMs = opts.idleMs === undefined ? 1000 : checkInteger(opts.idleMs, 'idleMs', 1, 3_600_000);
    const ringBytes = opts.ringBytes === undefined ? 1 << 22 : checkInteger(opts.ringBytes, 'ringBytes', 4096, 1 << 30);
    if ((ringBytes & (ringBytes - 1)) !== 0) invalidArgument('ringBytes', `must be a power of two, got ${ringBytes}`);
    let wanted: TracePoint[];
    if (opts.points === undefined) {
      wanted = [...TRACE_POINTS];
    } else {
      if (!Array.isArray(opts.points) || opts.points.length === 0) invalidArgument('points', `must be a non-empty list of: ${TRACE_POINTS.join(', ')}`);
      for (const p of opts.points)
        if (!TRACE_POINTS.includes(p)) invalidArgument('points', `unknown point ${JSON.stringify(p)} (known: ${TRACE_POINTS.join(', ')})`);
      wanted = [...new Set(opts.points)];
    }

    const support = tracingSupport();
    const warnings: string[] = [];
    if (!support.kprobe || !support.fentry) {
      warnings.push(
        `per-function tracing (kprobes, fentry) is unavailable on this kernel; tracing on tracepoints only (${support.missing.filter((m) => /^(kprobe|fentry)/.test(m)).join('; ')})`,
      );
    }
    if (!support.tpBtf)
      throw new BpfkitError('ERR_UNSUPPORTED', 'PacketTracer needs BTF tracepoints (tp_btf): the kernel has no BTF (/sys/kernel/btf/vmlinux)', {
        details: { feature: 'kernel BTF' },
      });
    const points: TracePoint[] = [];
    for (const name of wanted) {
      const p = POINTS.find((x) => x.name === name)!;
      const missing = p.tracepoints.filter((tp) => kernelHasTracepoint(tp) === false);
      if (missing.length === 0) {
        points.push(name);
        continue;
      }
      const msg = `point '${name}' needs the tracepoint${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which this kernel does not have`;
      if (opts.points !== undefined) throw new BpfkitError('ERR_UNSUPPORTED', msg, { field: 'points', details: { feature: `tracepoint ${missing[0]}` } });
      warnings.push(msg);
    }

    const programs = new Map<string, TracePoint>();
    for (const name of points) {
      const p = POINTS.find((x) => x.name === name)!;
      for (const prog of p.programs) if (!programs.has(prog)) programs.set(prog, name);
      for (const o of p.optional ?? []) {
        if (kernelHasTracepoint(o.tracepoint) !== false) programs.set(o.program, name);
        else warnings.push(`point '${name}': this kernel has no tracepoint ${o.tracepoint}; that part of it is not traced`);
      }
    }
    const autoload: Record<string, { autoload: boolean }> = {};
    for (const p of POINTS) for (const prog of [...p.programs, ...(p.optional ?? []).map((o) => o.program)]) autoload[prog] = { autoload: programs.has(prog) };

    const globals: Record<string, Buffer | number> = pcap ? { filter, pcap_len: pcap.length, pcap_insns: pcap.insns } : { filter };
    const open = (probeReads: number) =>
      BpfObject.openBuiltin('tracer', { globals: { ...globals, probe_reads: probeReads }, programs: autoload, maps: { events: { maxEntries: ringBytes } } });
    let obj = open(0);
    const links: TracerLink[] = [];
    try {
      try {
        await obj.load();
      } catch {
        // a kernel that refuses direct loads of packet bytes: every read through
        // bpf_probe_read_kernel() instead (bpf/tracer/headers.h, probe_reads)
        obj.close();
        obj = open(1);
        await obj.load();
      }
      for (const [prog, point] of programs) {
        const p = obj.tracingProgram(prog);
        try {
          links.push({ point, program: prog, link: p.attach() });
        } finally {
          p.close(); // the link holds the program
        }
      }
      return new PacketTracer({ obj, links, points, warnings, idleMs, pcap: pcap !== undefined });
    } catch (e) {
      for (const l of links) l.link.close();
      obj.close();
      throw e;
    }
  }

  /** The loaded programs, by point (ids as `bpftool prog show` lists them). */
  get programs(): { point: TracePoint; name: string; id: number; linkId: number }[] {
    if (this.#stopped) return [];
    return this.#links.map((l) => {
      const i = l.link.info;
      return { point: l.point, name: l.program, id: i.progId, linkId: i.id };
    });
  }

  /** Lets the process exit while tracing (the ring buffer's poll handle no longer holds the event loop). */
  unref(): this {
    if (!this.#stopped) this.#rb.unref();
    return this;
  }
  /** Undoes unref(): a running trace keeps the process alive until stop() (the default). */
  ref(): this {
    if (!this.#stopped) this.#rb.ref();
    return this;
  }

  /** True once stop() was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The session's counters: events seen and matched in the kernel, delivered, lost; packets. */
  stats(): PacketTracerStats {
    const s: PacketTracerStats = { seen: 0, matched: 0, events: this.#events, packets: this.#packets, open: this.#timelines.openCount, lost: null };
    if (this.#stopped) return { ...s, ...this.#final };
    if (!this.#obj.loaded) return s;
    this.#counters ??= this.#obj.perCpuMap('tracer_stats', { key: u32, value: u64 });
    const counters = this.#counters;
    const sum = (k: number) => Number((counters.get(k) ?? []).reduce((a, b) => a + b, 0n));
    s.seen = sum(0);
    s.matched = sum(1);
    if (this.#pcap) s.pcap = { runs: sum(2), remembered: sum(3) };
    s.lost = this.#rb.stats().lost;
    return s;
  }
  #counters: BpfMap<number, bigint[], number, bigint[] | bigint> | undefined;
  #final: Pick<PacketTracerStats, 'seen' | 'matched' | 'lost' | 'pcap'> = { seen: 0, matched: 0, lost: null };

  /** Raw events, until stop(). */
  async *events(): AsyncGenerator<TraceEvent> {
    yield* this.#iterate<TraceEvent>('event');
  }
  /** Finished timelines, until stop(). */
  async *packets(): AsyncGenerator<TracePacket> {
    yield* this.#iterate<TracePacket>('packet');
  }
  /** Same as `packets()`: for `for await`. */
  [Symbol.asyncIterator](): AsyncIterator<TracePacket> {
    return this.packets();
  }

  /**
   * A readable stream of JSON lines, one per finished timeline (or per event with
   * `{ events: true }`), ending after stop(). Times are strings (they are 64-bit ns).
   */
  toJSONLines(opts: { events?: boolean } = {}): Readable {
    const name = opts.events ? 'event' : 'packet';
    const out = new Readable({ read() {} });
    const onItem: Listener<[TraceEvent | TracePacket]> = (x) =>
      out.push(`${JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    const onEnd = () => {
      this.off(name, onItem);
      out.push(null);
    };
    this.on(name, onItem);
    if (this.#stopped) onEnd();
    else this.once('end', onEnd);
    return out;
  }

  /**
   * Detaches the points, delivers the events they wrote before (nothing is left unread in the
   * ring), unloads everything, emits the open timelines as 'packet', then 'end'. A listener
   * that throws meanwhile does not stop it half-way: stop() finishes, then rejects with that error.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    for (const l of this.#links) l.link.close();
    clearInterval(this.#sweep);
    // the points are detached: what they wrote before is delivered (or counted) now, not left in the ring
    let failed: { e: unknown } | undefined;
    try {
      this.#rb.drain();
    } catch (e) {
      failed = { e }; // a listener threw: stop anyway, then reject with its error
    }
    try {
      const { seen, matched, lost, pcap } = this.stats();
      this.#final = pcap ? { seen, matched, lost, pcap } : { seen, matched, lost };
    } catch {
      /* counters unreadable: the last values stay 0 */
    }
    this.#stopped = true;
    this.#rb.close();
    this.#counters?.close();
    this.#obj.close();
    this.#deliver(this.#timelines.flush());
    this.emit('end');
    if (failed) throw failed.e;
  }
  /** Same as `stop()`: for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async *#iterate<T>(name: 'event' | 'packet'): AsyncGenerator<T> {
    if (this.#stopped) return;
    const ac = new AbortController();
    const it = on(this as EventEmitter, name, { close: ['end'], signal: ac.signal } as Parameters<typeof on>[2]);
    try {
      for await (const [x] of it) yield x as T;
    } finally {
      ac.abort();
    }
  }

  /**
   * One batch of the ring: `offs` are the records' offsets in `b`, the ring's buffer (read
   * into again after this returns). With listeners, each record becomes a TraceEvent that
   * holds its numbers (read here as words) and makes the rest when read.
   */
  #onBatch(b: Buffer, offs: number[]): void {
    const n = offs.length;
    const wanted = this.#wantedIds;
    if (!this.#decode) {
      // nobody listens: counted only (queue events still only when asked for)
      for (let i = 0; i < n; i++) if (wanted[u16(b, offs[i]! + POINT_OFFSET)]) this.#events++;
      return;
    }
    if (this.#wordsOf !== b) {
      // records are 8-byte aligned in the batch; a buffer that is not (never seen) is copied to one that is
      let aligned = b;
      if (b.byteOffset % 4 !== 0) {
        aligned = Buffer.allocUnsafeSlow(b.length);
        b.copy(aligned);
      }
      this.#words = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 2);
      this.#wordsOf = aligned === b ? b : undefined;
      b = aligned;
    }
    const w = this.#words;
    const make = this.#makeEvent;
    const now = Date.now();
    const done: TracePacket[] = [];
    const onEvent = this.listenerCount('event') > 0;
    const onPacket = this.listenerCount('packet') > 0;
    for (let i = 0; i < n; i++) {
      const off = offs[i]!;
      // queue events serve transmits; they are shown only when asked for
      if (!wanted[w[(off + POINT_OFFSET) >>> 2]! & 0xffff]) continue;
      const e = make(w, b, off);
      this.#events++;
      if (onEvent) {
        // one listener (the usual case): called as emit() would, without its per-call overhead
        const fns = (this.#eventFns ??= this.rawListeners('event') as ((e: TraceEvent) => void)[]);
        if (fns.length === 1) fns[0]!.call(this, e);
        else this.emit('event', e);
      }
      // timelines are assembled while someone listens for them
      if (onPacket || this.#timelines.openCount > 0) {
        const finished = this.#timelines.add(e, now);
        for (let j = 0; j < finished.length; j++) done.push(finished[j]!);
      }
    }
    this.#deliver(done);
  }

  #deliver(done: TracePacket[]): void {
    for (const p of done) {
      this.#packets++;
      this.emit('packet', p);
    }
  }

  #emitError(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }
}
