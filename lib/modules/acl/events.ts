/**
 * Policy events: the ring-buffer record written by bpf/acl/prog.h
 * (struct acl_event, 72 bytes), the event AclFirewall hands to listeners, and the
 * stream that reads the ring while someone listens or iterates.
 */
import { PORT_PROTOCOLS } from '../../core/net/protocols.js';
import type { EventEmitter } from 'node:events';
import type { Codec } from '../../core/codecs.js';
import type { RingBuffer, RingBufferLoss } from '../../core/ringbuf.js';
import { formatIPv4, formatIPv6 } from '../../core/codecs.js';
import { invalidArgument } from '../../core/errors.js';
import { ACT_DENY, ACT_LOG, EVENT_SIZE, PROTO_UNKNOWN } from './layout.js';
import type { SlotOwners } from './owners.js';

/** struct acl_event as read from the ring. */
export interface RawAclEvent {
  ktimeNs: bigint;
  gen: number;
  slot: number;
  suppressed: number;
  ifindex: number;
  pktLen: number;
  action: number;
  family: number;
  proto: number;
  sport: number;
  dport: number;
  flags: number;
  src: Buffer;
  dst: Buffer;
}

export const ACL_EVENT_SIZE = EVENT_SIZE;

/** What an AclFirewall emits. */
export interface AclFirewallEvents {
  /** A packet a 'deny' rule (or a 'deny' default) dropped: one event per flow and rule per interval. */
  deny: [event: AclEvent];
  /** A packet a 'log' rule let through: one event per flow and rule per interval. */
  log: [event: AclEvent];
  /** Every event (deny and log). */
  event: [event: AclEvent];
  /** Events that did not fit in the ring (nobody reading, or reading too slowly). */
  lost: [loss: RingBufferLoss];
  /** A failure while reading events. */
  error: [err: Error];
  /** After close(). */
  close: [];
  /** EventEmitter's own event (reading starts with the first event listener). */
  newListener: [event: string | symbol, listener: (...args: any[]) => void];
  /** EventEmitter's own event. */
  removeListener: [event: string | symbol, listener: (...args: any[]) => void];
}

/** Decoder of struct acl_event (ring-buffer records are only ever read). */
export const rawAclEventCodec: Codec<RawAclEvent, never> = {
  name: 'struct acl_event',
  size: ACL_EVENT_SIZE,
  align: 8,
  layout: { kind: 'bytes', size: ACL_EVENT_SIZE },
  encode() {
    invalidArgument('acl_event', 'events are written by the kernel only');
  },
  decode(b, o) {
    return {
      ktimeNs: b.readBigUInt64LE(o),
      gen: b.readUInt32LE(o + 8),
      slot: b.readUInt32LE(o + 12),
      suppressed: b.readUInt32LE(o + 16),
      ifindex: b.readUInt32LE(o + 20),
      pktLen: b.readUInt32LE(o + 24),
      action: b[o + 28]!,
      family: b[o + 29]!,
      proto: b.readUInt16LE(o + 30),
      sport: b.readUInt16LE(o + 32),
      dport: b.readUInt16LE(o + 34),
      flags: b[o + 36]!,
      src: b.subarray(o + 40, o + 56),
      dst: b.subarray(o + 56, o + 72),
    };
  },
};

/** One reported policy decision. */
export interface AclEvent {
  /** When the packet was judged (wall clock, from the kernel's monotonic timestamp). */
  time: Date;
  /** The matching rule's id; null when the firewall's default action decided. */
  ruleId: string | null;
  /** 'deny' (dropped) or 'log' (allowed and reported). */
  action: 'deny' | 'log';
  /** IP version. */
  family: 4 | 6;
  /** IP protocol number; null if it could not be found (IPv6 extension headers). */
  proto: number | null;
  /** Source address (text). */
  src: string;
  /** Destination address (text). */
  dst: string;
  /** TCP/UDP/SCTP/UDP-Lite/DCCP ports; null for other protocols or without an L4 header. */
  srcPort: number | null;
  /** Destination port, like `srcPort`. */
  dstPort: number | null;
  /** ICMP / ICMPv6 type and code; null otherwise. */
  icmpType: number | null;
  /** ICMP / ICMPv6 code; null otherwise. */
  icmpCode: number | null;
  /** A non-first fragment (no L4 header). */
  fragment: boolean;
  /** Ingress interface index. */
  ifindex: number;
  /** Frame length in bytes. */
  length: number;
  /** Packets of this flow and rule that were not reported since the previous event. */
  suppressed: number;
  /** Rule-set generation that judged the packet. */
  generation: number;
}

/** Turns a raw record into an AclEvent; `resolve` maps (generation, slot) to a rule id. */
export function toAclEvent(r: RawAclEvent, resolve: (gen: number, slot: number) => string | null, monoToWallMs: number): AclEvent {
  const l4 = (r.flags & 1) !== 0;
  const proto = r.proto === PROTO_UNKNOWN ? null : r.proto;
  const ports = l4 && proto !== null && PORT_PROTOCOLS.has(proto);
  const icmp = l4 && (proto === 1 || proto === 58);
  return {
    time: new Date(Number(r.ktimeNs / 1000n) / 1000 + monoToWallMs),
    ruleId: resolve(r.gen, r.slot),
    action: r.action === ACT_LOG ? 'log' : r.action === ACT_DENY ? 'deny' : 'deny',
    family: r.family === 6 ? 6 : 4,
    proto,
    src: r.family === 6 ? formatIPv6(r.src) : formatIPv4(r.src),
    dst: r.family === 6 ? formatIPv6(r.dst) : formatIPv4(r.dst),
    srcPort: ports ? r.sport : null,
    dstPort: ports ? r.dport : null,
    icmpType: icmp ? r.sport : null,
    icmpCode: icmp ? r.dport : null,
    fragment: (r.flags & 2) !== 0,
    ifindex: r.ifindex,
    length: r.pktLen,
    suppressed: r.suppressed,
    generation: r.gen,
  };
}

const EVENT_NAMES = new Set<string | symbol>(['deny', 'log', 'event']);
/** Events queued for an async iterator before the ring is paused. */
const ITER_HIGH_WATER = 65536;

/** True for the firewall events that need the ring read ('deny', 'log', 'event'). */
export function isEventName(name: string | symbol): boolean {
  return EVENT_NAMES.has(name);
}

interface Iter {
  queue: AclEvent[];
  wake: (() => void) | undefined;
}

/**
 * Reads a firewall's ring while it has listeners or iterators: ring-buffer batches become
 * AclEvents (named by `owners`), emitted on `fw` and queued for iterators.
 */
export class AclEventStream {
  readonly #fw: EventEmitter<AclFirewallEvents>;
  readonly #owners: SlotOwners;
  readonly #monoToWallMs: number;
  #rb: RingBuffer<RawAclEvent> | undefined;
  #listening = false;
  #iterators = new Set<Iter>();
  #delivered = 0;

  constructor(fw: EventEmitter<AclFirewallEvents>, owners: SlotOwners) {
    this.#fw = fw;
    this.#owners = owners;
    const hr = process.hrtime.bigint();
    this.#monoToWallMs = Date.now() - Number(hr / 1000n) / 1000;
  }

  /** Events this process read from the ring. */
  get delivered(): number {
    return this.#delivered;
  }

  /** The ring to read (set once the firewall's handles are open). */
  open(rb: RingBuffer<RawAclEvent>): void {
    this.#rb = rb;
  }

  #onBatch = (batch: RawAclEvent[]): void => {
    // named first, then the owners no later event can need are released
    const resolve = this.#owners.resolve;
    const events = batch.map((raw) => toAclEvent(raw, resolve, this.#monoToWallMs));
    this.#owners.read(batch);
    for (const ev of events) {
      this.#delivered++;
      for (const it of this.#iterators) {
        it.queue.push(ev);
        const wake = it.wake;
        it.wake = undefined;
        wake?.();
      }
      this.#fw.emit('event', ev);
      this.#fw.emit(ev.action, ev);
    }
    for (const it of this.#iterators) if (it.queue.length >= ITER_HIGH_WATER) this.#rb?.pause();
  };

  #onRbError = (e: Error): void => {
    if (this.#fw.listenerCount('error') > 0) this.#fw.emit('error', e);
  };

  /** Reads the ring while anyone listens or iterates. */
  updateListening(): void {
    const rb = this.#rb;
    if (!rb) return;
    const want = this.#iterators.size > 0 || [...EVENT_NAMES].some((n) => this.#fw.listenerCount(n as 'deny') > 0);
    if (want === this.#listening) return;
    this.#listening = want;
    if (want) {
      rb.on('batch', this.#onBatch);
      rb.on('error', this.#onRbError);
    } else {
      rb.off('batch', this.#onBatch);
      rb.off('error', this.#onRbError);
    }
  }

  /** Forwards the ring's 'lost' reports to the firewall. */
  forwardLost(): void {
    const rb = this.#rb;
    if (!rb || rb.listenerCount('lost') > 0) return;
    rb.on('lost', (l) => this.#fw.emit('lost', l));
  }

  /**
   * Events as an async iterator (deny and log). While the loop is slower than the
   * traffic, events wait in the kernel ring (and are counted as lost when it fills).
   */
  iterator(): AsyncIterableIterator<AclEvent> {
    const it: Iter = { queue: [], wake: undefined };
    let done = !this.#rb;
    if (!done) {
      this.#iterators.add(it);
      this.updateListening();
    }
    const finish = () => {
      done = true;
      this.#iterators.delete(it);
      this.updateListening();
      it.wake?.();
    };
    this.#fw.once('close', finish);
    const self = this;
    return {
      async next(): Promise<IteratorResult<AclEvent>> {
        for (;;) {
          if (it.queue.length) {
            const v = it.queue.shift()!;
            if (it.queue.length < ITER_HIGH_WATER / 2 && self.#rb?.isPaused()) self.#rb.resume();
            return { value: v, done: false };
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((r) => (it.wake = r));
        }
      },
      async return(): Promise<IteratorResult<AclEvent>> {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Lets the process exit while events are being read. */
  unref(): void {
    this.#rb?.unref();
  }

  /** Delivers now what the ring holds to the listeners and iterators (before a close; RingBuffer.drain() reads nothing when none is there). */
  drain(): void {
    this.#rb?.drain();
  }

  /** Stops reading (the firewall closes the ring) and ends every iterator. */
  close(): void {
    const rb = this.#rb;
    this.#rb = undefined;
    this.#listening = false;
    rb?.off('batch', this.#onBatch);
    for (const it of [...this.#iterators]) {
      this.#iterators.delete(it);
      const w = it.wake;
      it.wake = undefined;
      w?.();
    }
  }
}
