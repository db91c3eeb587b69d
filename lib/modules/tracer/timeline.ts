/**
 * Per-packet timelines: events grouped by sk_buff address into one packet's path through
 * the kernel (namespace, interface, point, time since the first event, drop reason). A
 * timeline ends at a drop or a consume (the sk_buff is freed: its address may be reused),
 * when it has been idle for `idleMs`, or when the tracer stops.
 */
import type { TraceEvent } from './layout.js';
import { WITH_DT } from './view.js';

/** What became of a packet: freed as a drop, consumed (delivered), sent out last, or still unknown. */
export type TraceVerdict = 'dropped' | 'consumed' | 'transmitted' | 'unfinished';

/** One event in a timeline, with its time relative to the timeline's first event. */
export type TimelineEvent = TraceEvent & { dtNs: number };

/** One packet's path: its events in time order. */
export interface TracePacket {
  /** The sk_buff's address ('0x…'), shared by the packet's events. */
  skb: string;
  /** Time of the first event (bpf_ktime_get_ns). */
  start: bigint;
  /** Time from the first event to the last, in ns. */
  durationNs: number;
  /** How the packet's path ended. */
  verdict: TraceVerdict;
  /** The drop reason when verdict is 'dropped'. */
  dropReason?: string;
  /** Network namespaces (inodes) the packet was seen in, in order of first appearance. */
  namespaces: number[];
  /** Its events in time order. */
  events: TimelineEvent[];
}

interface Open {
  skb: string;
  events: TraceEvent[];
  lastSeen: number;
}

/** Most timelines kept open at once; beyond it the oldest is closed as 'unfinished'. */
export const MAX_OPEN_TIMELINES = 65536;

export class TimelineAssembler {
  #open = new Map<string, Open>();
  /**
   * The timelines in the order they opened, closed ones included until skipped or
   * compacted away: the oldest open one in O(1) (taking the Map's first entry walks over
   * every entry deleted before it, which made a full assembler cost microseconds per event).
   */
  #order: Open[] = [];
  #head = 0;

  get openCount(): number {
    return this.#open.size;
  }

  /** Adds an event; returns the timelines it finished (its own, or the oldest when full). */
  add(e: TraceEvent, nowMs: number): TracePacket[] {
    if (!e.skb) return NONE;
    let t = this.#open.get(e.skb);
    let done = NONE;
    if (!t) {
      if (this.#open.size >= MAX_OPEN_TIMELINES) {
        const ot = this.#oldest();
        this.#open.delete(ot.skb);
        done = [finish(ot.skb, ot.events)];
      }
      t = { skb: e.skb, events: [e], lastSeen: nowMs };
      this.#open.set(e.skb, t);
      this.#opened(t);
    } else {
      t.events.push(e);
      t.lastSeen = nowMs;
    }
    if (e.point === 'drop' || e.point === 'consume') {
      this.#open.delete(e.skb);
      const p = finish(e.skb, t.events);
      if (done === NONE) done = [p];
      else done.push(p);
    }
    return done;
  }

  /** The oldest open timeline (there is one). */
  #oldest(): Open {
    const order = this.#order;
    for (;;) {
      const t = order[this.#head++]!;
      if (this.#open.get(t.skb) === t) return t;
    }
  }

  /** Notes a new timeline; drops the closed ones from #order once they outnumber the open. */
  #opened(t: Open): void {
    this.#order.push(t);
    if (this.#order.length - this.#head > 2 * this.#open.size + 1024) {
      this.#order = this.#order.slice(this.#head).filter((x) => this.#open.get(x.skb) === x);
      this.#head = 0;
    }
  }

  /** Closes the timelines idle for at least `idleMs`. */
  sweep(nowMs: number, idleMs: number): TracePacket[] {
    const done: TracePacket[] = [];
    for (const [skb, t] of this.#open) {
      if (nowMs - t.lastSeen < idleMs) continue;
      this.#open.delete(skb);
      done.push(finish(skb, t.events));
    }
    return done;
  }

  /** Closes every open timeline. */
  flush(): TracePacket[] {
    const done = [...this.#open].map(([skb, t]) => finish(skb, t.events));
    this.#open.clear();
    this.#order = [];
    this.#head = 0;
    return done;
  }
}

/** Shared empty result of add() (never mutated: add() makes a new array to return packets). */
const NONE: TracePacket[] = [];

function finish(skb: string, events: TraceEvent[]): TracePacket {
  // events of one packet arrive in time order unless they came from several CPUs
  let sorted = events;
  for (let i = 1; i < events.length; i++) {
    if (events[i]!.time < events[i - 1]!.time) {
      sorted = [...events].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      break;
    }
  }
  const start = sorted[0]!.time;
  const last = sorted[sorted.length - 1]!;
  const verdict: TraceVerdict =
    last.point === 'drop' ? 'dropped' : last.point === 'consume' ? 'consumed' : last.point === 'transmit' ? 'transmitted' : 'unfinished';
  const namespaces: number[] = [];
  const out = new Array<TimelineEvent>(sorted.length);
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (e.netns && !namespaces.includes(e.netns)) namespaces.push(e.netns);
    const dtNs = Number(e.time - start);
    // a lazily read event makes its own copy (same bytes); a plain one is copied
    const withDt = (e as { [WITH_DT]?: (dtNs: number) => TimelineEvent })[WITH_DT];
    out[i] = withDt ? withDt.call(e, dtNs) : Object.assign({}, e, { dtNs });
  }
  const p: TracePacket = {
    skb,
    start,
    durationNs: Number(last.time - start),
    verdict,
    namespaces,
    events: out,
  };
  if (last.dropReason !== undefined) p.dropReason = last.dropReason;
  return p;
}
