/**
 * The TraceEvents PacketTracer hands out: one object per record that holds the record's
 * numbers (read from the ring's batch as 32-bit words) and makes everything else when
 * read: strings through the tracer's bounded caches, the 64-bit time, nested objects (once
 * per event). A flood of events then costs one allocation each and no string or BigInt,
 * and a listener pays for the fields it reads. Records with IPv6 or inner headers keep a
 * copy of their bytes for those.
 *
 * A field reads exactly what decodeEvent() (layout.ts) gives, and toJSON() returns that
 * plain object, so JSON.stringify, JSON lines and console.log show what they always did.
 * The fields are getters on the prototype: `Object.keys`, spread, `for...in` and
 * structuredClone see only what was assigned to the event, and toJSON() is the plain copy.
 * Assigning a field works (it becomes an own property, also in toJSON()). An event reads
 * nothing of the ring's memory after it was made: keeping one is safe.
 */
import { inspect } from 'node:util';
import { DecodeCache, decodeEvent, EVENT_SIZE, fibOf, innerOf, neighOf, O, POINT_BY_ID, xdpOf, type TraceEvent, type TracePoint } from './layout.js';
import type { TimelineEvent } from './timeline.js';

/** A lazily read event's copy with `dtNs` for a timeline (timeline.ts calls it when present). */
export const WITH_DT = Symbol('bpfkit.tracer.withDt');

/**
 * Makes the event of the record at byte `off` of the batch `b`, whose words `w` are (a
 * Uint32Array over exactly `b`; `off` a multiple of 8).
 */
export type TraceEventFactory = (w: Uint32Array, b: Buffer, off: number) => TraceEvent;

/**
 * The plain object of an event (its toJSON() for a lazily read one, the event itself
 * otherwise): for spreading its fields into another object.
 */
export function plainEvent<T extends TraceEvent>(e: T): T {
  const toJSON = (e as { toJSON?: () => T }).toJSON;
  return typeof toJSON === 'function' ? toJSON.call(e) : e;
}

/** The fields of TraceEvent, in decodeEvent()'s order (each gets a setter that makes it an own property). */
const FIELDS = [
  'point',
  'time',
  'skb',
  'cpu',
  'netns',
  'ifindex',
  'ifname',
  'mark',
  'len',
  'family',
  'proto',
  'src',
  'dst',
  'sport',
  'dport',
  'inner',
  'dropReason',
  'dropReasonCode',
  'rc',
  'fib',
  'xdp',
  'neigh',
] as const satisfies readonly (keyof TraceEvent)[];

/** Word indices (u32) of struct tracer_event's fields. */
const W = {
  tsLo: O.ts / 4,
  skbLo: O.skb / 4,
  netns: O.netns / 4,
  ifindex: O.ifindex / 4,
  mark: O.mark / 4,
  len: O.len / 4,
  reason: O.reason / 4,
  result: O.result / 4,
  aux: O.aux / 4,
  cpu: O.cpu / 4,
  /** point (u16), family (u8), proto (u8) */
  point: O.point / 4,
  /** sport (u16), dport (u16) */
  ports: O.sport / 4,
  saddr: O.saddr / 4,
  daddr: O.daddr / 4,
  gw: O.gw / 4,
  ifname: O.ifname / 4,
  /** inner family (u8), inner proto (u8), tunnel (u8) */
  tunnel: (O.inFamily - (O.inFamily % 4)) / 4,
} as const;
const TWO_32 = 2 ** 32;
/** WITH_DT's copies: the words of the event copied (the tunnel word stays 0), and a record of zeros. */
const SCRATCH = new Uint32Array(EVENT_SIZE / 4);
const ZEROS = Buffer.alloc(EVENT_SIZE);

interface EventContext {
  cache: DecodeCache;
  dropReason: (code: number) => string;
}

/**
 * One class for every tracer's events (one V8 shape, whatever the number of tracers a
 * process starts); each event points at its tracer's caches and drop reason names.
 */
class LazyTraceEvent {
  /** The tracer's caches and drop reason names. */
  readonly #ctx: EventContext;
  // the record's words (see W), read once
  readonly #tsLo: number;
  readonly #tsHi: number;
  readonly #skbLo: number;
  readonly #skbHi: number;
  readonly #netns: number;
  readonly #ifindex: number;
  readonly #mark: number;
  readonly #len: number;
  readonly #reason: number;
  readonly #result: number;
  readonly #aux: number;
  readonly #cpu: number;
  readonly #point: number;
  readonly #ports: number;
  readonly #saddr: number;
  readonly #daddr: number;
  readonly #gw0: number;
  readonly #gw1: number;
  readonly #gw2: number;
  readonly #gw3: number;
  readonly #if0: number;
  readonly #if1: number;
  readonly #if2: number;
  readonly #if3: number;
  /** The record's bytes: copied when it has IPv6 or inner headers, else rebuilt from the words when needed. */
  #raw: Buffer | undefined;
  /** fib / xdp / neigh, built on first read. */
  #n: object | undefined = undefined;
  /** inner, built on first read (null: none). */
  #i: TraceEvent['inner'] | null = undefined;

  constructor(ctx: EventContext, w: Uint32Array, b: Buffer, off: number) {
    this.#ctx = ctx;
    const i = off >>> 2;
    this.#tsLo = w[i + W.tsLo]!;
    this.#tsHi = w[i + W.tsLo + 1]!;
    this.#skbLo = w[i + W.skbLo]!;
    this.#skbHi = w[i + W.skbLo + 1]!;
    this.#netns = w[i + W.netns]!;
    this.#ifindex = w[i + W.ifindex]!;
    this.#mark = w[i + W.mark]!;
    this.#len = w[i + W.len]!;
    this.#reason = w[i + W.reason]!;
    this.#result = w[i + W.result]! | 0;
    this.#aux = w[i + W.aux]!;
    this.#cpu = w[i + W.cpu]!;
    const p = w[i + W.point]!;
    this.#point = p;
    this.#ports = w[i + W.ports]!;
    this.#saddr = w[i + W.saddr]!;
    this.#daddr = w[i + W.daddr]!;
    this.#gw0 = w[i + W.gw]!;
    this.#gw1 = w[i + W.gw + 1]!;
    this.#gw2 = w[i + W.gw + 2]!;
    this.#gw3 = w[i + W.gw + 3]!;
    this.#if0 = w[i + W.ifname]!;
    this.#if1 = w[i + W.ifname + 1]!;
    this.#if2 = w[i + W.ifname + 2]!;
    this.#if3 = w[i + W.ifname + 3]!;
    // IPv6 addresses and inner headers are read from a copy of the record
    this.#raw = ((p >>> 16) & 255) === 6 || (w[i + W.tunnel]! & 0xff0000) !== 0 ? Buffer.from(b.subarray(off, off + EVENT_SIZE)) : undefined;
  }

  get point(): TracePoint {
    const id = this.#point & 0xffff;
    return POINT_BY_ID[id] ?? (`unknown(${id})` as TracePoint);
  }
  get time(): bigint {
    const hi = this.#tsHi;
    // below 2^53 ns (104 days of uptime) one conversion is exact
    return hi < 0x200000 ? BigInt(hi * TWO_32 + this.#tsLo) : (BigInt(hi) << 32n) | BigInt(this.#tsLo);
  }
  get skb(): string {
    return this.#ctx.cache.skb(this.#skbLo, this.#skbHi);
  }
  get cpu(): number {
    return this.#cpu;
  }
  get netns(): number {
    return this.#netns;
  }
  get ifindex(): number {
    return this.#ifindex;
  }
  get ifname(): string {
    return this.#ctx.cache.ifnameOf(this.#if0, this.#if1, this.#if2, this.#if3);
  }
  get mark(): number {
    return this.#mark;
  }
  get len(): number {
    return this.#len;
  }
  get family(): 4 | 6 | undefined {
    const f = (this.#point >>> 16) & 255;
    return f === 4 || f === 6 ? f : undefined;
  }
  get proto(): string | number | undefined {
    return this.family !== undefined && !this.#isNeigh() ? this.#ctx.cache.proto(this.#point >>> 24) : undefined;
  }
  get src(): string | undefined {
    const f = this.family;
    if (f === undefined || this.#isNeigh()) return undefined;
    return f === 4 ? this.#ctx.cache.v4(this.#saddr) : this.#ctx.cache.addr(this.#raw!, O.saddr, 6);
  }
  get dst(): string | undefined {
    const f = this.family;
    if (f === undefined) return undefined;
    return f === 4 ? this.#ctx.cache.v4(this.#daddr) : this.#ctx.cache.addr(this.#raw!, O.daddr, 6);
  }
  get sport(): number | undefined {
    return this.#hasPorts() ? this.#ports & 0xffff : undefined;
  }
  get dport(): number | undefined {
    return this.#hasPorts() ? this.#ports >>> 16 : undefined;
  }
  get inner(): TraceEvent['inner'] {
    if (this.#i === undefined) this.#i = this.#raw ? (innerOf(this.#raw, 0) ?? null) : null;
    return this.#i ?? undefined;
  }
  get dropReason(): string | undefined {
    return this.#id() === DROP ? this.#ctx.dropReason(this.#reason) : undefined;
  }
  get dropReasonCode(): number | undefined {
    return this.#id() === DROP ? this.#reason : undefined;
  }
  get rc(): number | undefined {
    return this.#id() === TRANSMIT ? this.#result : undefined;
  }
  get fib(): TraceEvent['fib'] {
    return this.#id() === FIB ? (this.#nested() as TraceEvent['fib']) : undefined;
  }
  get xdp(): TraceEvent['xdp'] {
    const id = this.#id();
    return id === XDP_EXCEPTION || id === XDP_REDIRECT ? (this.#nested() as TraceEvent['xdp']) : undefined;
  }
  get neigh(): TraceEvent['neigh'] {
    return this.#isNeigh() ? (this.#nested() as TraceEvent['neigh']) : undefined;
  }

  /** The plain object decodeEvent() gives, with what was assigned to this event. */
  toJSON(): TraceEvent {
    const e = decodeEvent(this.#bytes(), 0, this.#ctx.cache, this.#ctx.dropReason);
    // the nested objects a listener may have read (and changed) are the ones it sees
    if (this.#n) (e as unknown as Record<string, unknown>)[this.#nestedName()] = this.#n;
    if (this.#i) e.inner = this.#i;
    return Object.assign(e, this);
  }

  [inspect.custom](_depth: number, opts: object): string {
    return inspect(this.toJSON(), opts);
  }

  /** A copy for a timeline: the same record, what was assigned, and `dtNs`. */
  [WITH_DT](dtNs: number): TimelineEvent {
    this.#store(SCRATCH);
    const c = new LazyTraceEvent(this.#ctx, SCRATCH, this.#raw ?? ZEROS, 0);
    c.#raw = this.#raw;
    c.#n = this.#n;
    c.#i = this.#i;
    const t = Object.assign(c, this) as unknown as TimelineEvent;
    t.dtNs = dtNs;
    return t;
  }

  /** The record's bytes (the IPv6 and tunnel fields are only in a copy). */
  #bytes(): Buffer {
    if (this.#raw) return this.#raw;
    const r = Buffer.alloc(EVENT_SIZE);
    this.#store(new Uint32Array(r.buffer, r.byteOffset, EVENT_SIZE / 4));
    this.#raw = r;
    return r;
  }

  /** Writes the words this event holds into `w` (a record's 40 words; the others are left as they are). */
  #store(w: Uint32Array): void {
    w[W.tsLo] = this.#tsLo;
    w[W.tsLo + 1] = this.#tsHi;
    w[W.skbLo] = this.#skbLo;
    w[W.skbLo + 1] = this.#skbHi;
    w[W.netns] = this.#netns;
    w[W.ifindex] = this.#ifindex;
    w[W.mark] = this.#mark;
    w[W.len] = this.#len;
    w[W.reason] = this.#reason;
    w[W.result] = this.#result;
    w[W.aux] = this.#aux;
    w[W.cpu] = this.#cpu;
    w[W.point] = this.#point;
    w[W.ports] = this.#ports;
    w[W.saddr] = this.#saddr;
    w[W.daddr] = this.#daddr;
    w[W.gw] = this.#gw0;
    w[W.gw + 1] = this.#gw1;
    w[W.gw + 2] = this.#gw2;
    w[W.gw + 3] = this.#gw3;
    w[W.ifname] = this.#if0;
    w[W.ifname + 1] = this.#if1;
    w[W.ifname + 2] = this.#if2;
    w[W.ifname + 3] = this.#if3;
  }

  #id(): number {
    return this.#point & 0xffff;
  }
  #isNeigh(): boolean {
    return (this.#point & 0xffff) === NEIGH;
  }
  #hasPorts(): boolean {
    const p = this.#point >>> 24;
    return this.family !== undefined && (p === 6 || p === 17 || p === 132);
  }
  #nestedName(): 'fib' | 'xdp' | 'neigh' {
    const id = this.#id();
    return id === FIB ? 'fib' : id === NEIGH ? 'neigh' : 'xdp';
  }
  #nested(): object {
    if (this.#n) return this.#n;
    const id = this.#id();
    const b = this.#bytes();
    this.#n = id === FIB ? fibOf(b, 0) : id === NEIGH ? neighOf(b, 0) : xdpOf(b, 0, id === XDP_EXCEPTION ? 'xdp_exception' : 'xdp_redirect');
    return this.#n;
  }
}

const proto = LazyTraceEvent.prototype as unknown as Record<string, unknown>;
for (const name of FIELDS) {
  const d = Object.getOwnPropertyDescriptor(proto, name)!;
  // assigning a field shadows its getter with an own property, as on a plain object
  d.set = function (this: object, value: unknown) {
    Object.defineProperty(this, name, { value, writable: true, enumerable: true, configurable: true });
  };
  Object.defineProperty(proto, name, d);
}

/**
 * The events of one tracer: its decoding caches, and drop reasons named from the running
 * kernel's BTF.
 */
export function lazyEvents(dropReason: (code: number) => string, cache = new DecodeCache()): TraceEventFactory {
  const ctx: EventContext = { cache, dropReason };
  return (w, b, off) => new LazyTraceEvent(ctx, w, b, off) as unknown as TraceEvent;
}

const idOf = (name: TracePoint): number => POINT_BY_ID.indexOf(name);
const DROP = idOf('drop');
const TRANSMIT = idOf('transmit');
const FIB = idOf('fib_lookup');
const XDP_EXCEPTION = idOf('xdp_exception');
const XDP_REDIRECT = idOf('xdp_redirect');
const NEIGH = idOf('neigh_update');
