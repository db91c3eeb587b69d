/**
 * PacketTracer's points and its event record (bpf/tracer/event.h): the point table (which
 * tracepoints and programs each point needs) and the decoding of one record into a
 * {@link TraceEvent}, with drop reasons named from the running kernel's BTF.
 */
import { BpfkitError } from '../../core/errors.js';
import { formatIPv4, formatIPv6 } from '../../core/codecs.js';
import type { Codec } from '../../core/codecs.js';
import { ipProtocolShown } from '../../core/net/protocols.js';
import { xdpActionName } from '../../core/programs/program.js';

/** Where in the kernel an event was seen. */
export type TracePoint = 'receive' | 'queue' | 'transmit' | 'drop' | 'consume' | 'xdp_exception' | 'xdp_redirect' | 'fib_lookup' | 'neigh_update';

/**
 * Each point: its id in the record, the kernel tracepoints it needs, the programs that serve
 * it, and optional programs loaded where the kernel has their tracepoint (IPv6 FIB lookups).
 */
export const POINTS: readonly {
  name: TracePoint;
  id: number;
  tracepoints: string[];
  programs: string[];
  optional?: { program: string; tracepoint: string }[];
}[] = [
  { name: 'receive', id: 1, tracepoints: ['netif_receive_skb'], programs: ['tr_receive'] },
  { name: 'queue', id: 2, tracepoints: ['net_dev_queue'], programs: ['tr_queue'] },
  // a transmit is reported for the packet this CPU queued last: it needs the queue program
  { name: 'transmit', id: 3, tracepoints: ['net_dev_xmit', 'net_dev_queue'], programs: ['tr_transmit', 'tr_queue'] },
  { name: 'drop', id: 4, tracepoints: ['kfree_skb'], programs: ['tr_drop'] },
  { name: 'consume', id: 5, tracepoints: ['consume_skb'], programs: ['tr_consume'] },
  { name: 'xdp_exception', id: 6, tracepoints: ['xdp_exception'], programs: ['tr_xdp_exception'] },
  { name: 'xdp_redirect', id: 7, tracepoints: ['xdp_redirect', 'xdp_redirect_err'], programs: ['tr_xdp_redirect', 'tr_xdp_redirect_err'] },
  { name: 'fib_lookup', id: 8, tracepoints: ['fib_table_lookup'], programs: ['tr_fib'], optional: [{ program: 'tr_fib6', tracepoint: 'fib6_table_lookup' }] },
  { name: 'neigh_update', id: 9, tracepoints: ['neigh_update'], programs: ['tr_neigh'] },
];
/** Every {@link TracePoint}: the names `PacketTracerOptions.points` takes. */
export const TRACE_POINTS: readonly TracePoint[] = POINTS.map((p) => p.name);
export const POINT_BY_ID: (TracePoint | undefined)[] = [];
for (const p of POINTS) POINT_BY_ID[p.id] = p.name;

/** Neighbour states (NUD_*), by bit. */
const NUD: readonly [number, string][] = [
  [0x01, 'INCOMPLETE'],
  [0x02, 'REACHABLE'],
  [0x04, 'STALE'],
  [0x08, 'DELAY'],
  [0x10, 'PROBE'],
  [0x20, 'FAILED'],
  [0x40, 'NOARP'],
  [0x80, 'PERMANENT'],
];
export function nudName(s: number): string {
  if (s === 0) return 'NONE';
  return (
    NUD.filter(([bit]) => s & bit)
      .map(([, n]) => n)
      .join('|') || `0x${s.toString(16)}`
  );
}

/**
 * The result of a FIB table lookup: 'found', or what the kernel's route types return
 * (-EAGAIN: no match in this table, the next rule is tried; -EHOSTUNREACH: unreachable
 * route; -EACCES: prohibit; -EINVAL: blackhole; -ENETUNREACH: no route at all).
 */
export function fibResult(err: number): string {
  switch (err) {
    case 0:
      return 'found';
    case -11:
      return 'no-match';
    case -113:
      return 'unreachable';
    case -13:
      return 'prohibit';
    case -22:
      return 'blackhole';
    case -101:
      return 'no-route';
    default:
      return `error(${err})`;
  }
}

/** One event: where a packet (an sk_buff) was seen, and what the kernel did there. */
export interface TraceEvent {
  /** Where the packet was seen. */
  point: TracePoint;
  /** bpf_ktime_get_ns() (CLOCK_MONOTONIC, ns). */
  time: bigint;
  /** The sk_buff's address ('0x…'): one packet's events share it. Empty: no packet (XDP, neighbour, a route lookup of no received packet). */
  skb: string;
  /** The CPU the event happened on. */
  cpu: number;
  /** Network namespace inode (as `ls -i /run/netns/NAME` or `/proc/PID/ns/net` shows); 0 when unknown. */
  netns: number;
  /** Index of the interface the packet was on (0: none). */
  ifindex: number;
  /** Its name, as the kernel had it then. */
  ifname: string;
  /** The skb's mark (fwmark). */
  mark: number;
  /** Bytes in the skb (transmit: what the driver was handed). */
  len: number;
  /** IP version, when the packet is IP. */
  family?: 4 | 6;
  /** IP protocol name (or number). */
  proto?: string | number;
  /** Source address. */
  src?: string;
  /** Destination address. */
  dst?: string;
  /** Source port (TCP, UDP, SCTP). */
  sport?: number;
  /** Destination port (TCP, UDP, SCTP). */
  dport?: number;
  /** drop: the kernel's reason, named from its BTF enum skb_drop_reason ('NO_SOCKET', 'NETFILTER_DROP', ...). */
  dropReason?: string;
  /** drop: the reason's number on this kernel. */
  dropReasonCode?: number;
  /** transmit: the driver's return code (0: NETDEV_TX_OK). */
  rc?: number;
  /** fib_lookup: table id, result, out interface and gateway. */
  fib?: { table: number; result: string; err: number; oif?: number; gateway?: string };
  /** xdp_exception: the action; xdp_redirect: error, target (ifindex or map index) and map type. */
  xdp?: { action?: string; err?: number; target?: number; mapType?: number };
  /** With the `tunnels` filter: the inner headers of a VXLAN or Geneve packet. */
  inner?: { tunnel: 'vxlan' | 'geneve'; family: 4 | 6; proto: string | number; src: string; dst: string; sport?: number; dport?: number };
  /** neigh_update: the entry's state before and the state given, its link-layer address. */
  neigh?: { from: string; to: string; lladdr?: string };
  /**
   * A plain object of the fields (PacketTracer's events read their fields lazily, from
   * getters: spread and `Object.keys` do not see them; JSON.stringify calls this).
   */
  toJSON?(): TraceEvent;
}

/** Size of struct tracer_event. */
export const EVENT_SIZE = 160;
/** Offset of the point id (u16) in struct tracer_event. */
export const POINT_OFFSET = 48;
export const O = {
  ts: 0,
  skb: 8,
  netns: 16,
  ifindex: 20,
  mark: 24,
  len: 28,
  reason: 32,
  result: 36,
  aux: 40,
  cpu: 44,
  point: 48,
  family: 50,
  proto: 51,
  sport: 52,
  dport: 54,
  saddr: 56,
  daddr: 72,
  gw: 88,
  ifname: 104,
  inSaddr: 120,
  inDaddr: 136,
  inSport: 152,
  inDport: 154,
  inFamily: 156,
  inProto: 157,
  tunnel: 158,
} as const;

function ifname(b: Buffer, off: number): string {
  const end = b.indexOf(0, off);
  return b.toString('latin1', off, end < 0 || end > off + 16 ? off + 16 : end);
}
export const addr = (b: Buffer, off: number, family: number) => (family === 4 ? formatIPv4(b, off) : formatIPv6(b, off));
export const mac = (b: Buffer, off: number) => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Most entries of each decoding cache (names, addresses) before it starts over. */
const CACHE_MAX = 4096;

/**
 * The strings a flood of events repeats, formatted once: interface names (by the name's
 * bytes), IPv4 addresses (by value), protocol names. Each cache is bounded (cleared when
 * full), so a scan of many addresses costs what it did without them.
 */
export class DecodeCache {
  #names = new Map<number, { w: number[]; name: string }>();
  #v4 = new Map<number, string>();
  #proto: (string | number)[] = [];

  ifname(b: Buffer, off: number): string {
    return this.ifnameOf(u32(b, off), u32(b, off + 4), u32(b, off + 8), u32(b, off + 12));
  }

  /** The interface name whose 16 bytes are these four little-endian words. */
  ifnameOf(w0: number, w1: number, w2: number, w3: number): string {
    const key = (w0 ^ Math.imul(w1, 31) ^ Math.imul(w2, 961) ^ Math.imul(w3, 29791)) >>> 0;
    const hit = this.#names.get(key);
    if (hit && hit.w[0] === w0 && hit.w[1] === w1 && hit.w[2] === w2 && hit.w[3] === w3) return hit.name;
    const raw = Buffer.allocUnsafe(16);
    raw.writeUInt32LE(w0, 0);
    raw.writeUInt32LE(w1, 4);
    raw.writeUInt32LE(w2, 8);
    raw.writeUInt32LE(w3, 12);
    const name = ifname(raw, 0);
    if (this.#names.size >= CACHE_MAX) this.#names.clear();
    this.#names.set(key, { w: [w0, w1, w2, w3], name });
    return name;
  }

  addr(b: Buffer, off: number, family: number): string {
    return family === 4 ? this.v4(u32(b, off)) : formatIPv6(b, off);
  }

  /** An IPv4 address from its little-endian word (the bytes in network order). */
  v4(v: number): string {
    let s = this.#v4.get(v);
    if (s === undefined) {
      s = `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${v >>> 24}`;
      if (this.#v4.size >= CACHE_MAX) this.#v4.clear();
      this.#v4.set(v, s);
    }
    return s;
  }

  /** One packet's events share its sk_buff: its string is made once (direct-mapped by address). */
  #skbLo = new Int32Array(1024);
  #skbHi = new Int32Array(1024);
  #skbStr: string[] = new Array<string>(1024).fill('');
  skb(lo: number, hi: number): string {
    const i = (lo >>> 8) & 1023; // sk_buffs are at least 256-byte aligned apart
    if (this.#skbLo[i] === (lo | 0) && this.#skbHi[i] === (hi | 0) && this.#skbStr[i] !== '') return this.#skbStr[i]!;
    const s = skbHex(lo, hi);
    this.#skbLo[i] = lo;
    this.#skbHi[i] = hi;
    this.#skbStr[i] = s;
    return s;
  }

  proto(p: number): string | number {
    return (this.#proto[p] ??= ipProtocolShown(p));
  }
}

/** The sk_buff address as '0x…' hex, from its two 32-bit halves (no BigInt). */
function skbHex(lo: number, hi: number): string {
  if (hi === 0) return lo === 0 ? '' : `0x${lo.toString(16)}`;
  const l = lo.toString(16);
  return `0x${hi.toString(16)}${'00000000'.slice(l.length)}${l}`;
}

/** A u32 of the record, little-endian (no bounds checks: records are whole, see the ring's codec check). */
export const u32 = (b: Buffer, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
/** A u16 of the record, little-endian. */
export const u16 = (b: Buffer, o: number): number => b[o]! | (b[o + 1]! << 8);

/** With the `tunnels` filter: the inner headers of the record at `off`, or undefined. */
export function innerOf(b: Buffer, off: number): TraceEvent['inner'] {
  const tunnel = b[off + O.tunnel]!;
  const inFamily = b[off + O.inFamily]!;
  if (!((tunnel === 1 || tunnel === 2) && (inFamily === 4 || inFamily === 6))) return undefined;
  const p = b[off + O.inProto]!;
  const inner: NonNullable<TraceEvent['inner']> = {
    tunnel: tunnel === 1 ? 'vxlan' : 'geneve',
    family: inFamily,
    proto: ipProtocolShown(p),
    src: addr(b, off + O.inSaddr, inFamily),
    dst: addr(b, off + O.inDaddr, inFamily),
  };
  if (p === 6 || p === 17 || p === 132) {
    inner.sport = u16(b, off + O.inSport);
    inner.dport = u16(b, off + O.inDport);
  }
  return inner;
}

/** fib_lookup: table, result, out interface and gateway. */
export function fibOf(b: Buffer, off: number): NonNullable<TraceEvent['fib']> {
  const result = b.readInt32LE(off + O.result);
  const fib: NonNullable<TraceEvent['fib']> = { table: u32(b, off + O.reason), result: fibResult(result), err: result };
  const aux = u32(b, off + O.aux);
  if (aux) fib.oif = aux;
  const gw = b.subarray(off + O.gw, off + O.gw + 16);
  if (gw.some((x) => x !== 0)) fib.gateway = gw.subarray(4).some((x) => x !== 0) ? formatIPv6(gw, 0) : formatIPv4(gw, 0);
  return fib;
}

/** xdp_exception: the action; xdp_redirect: error, target and map type. */
export function xdpOf(b: Buffer, off: number, point: 'xdp_exception' | 'xdp_redirect'): NonNullable<TraceEvent['xdp']> {
  const reason = u32(b, off + O.reason);
  if (point === 'xdp_exception') return { action: xdpActionName(reason) };
  return { err: b.readInt32LE(off + O.result), target: u32(b, off + O.aux), mapType: reason };
}

/** neigh_update: the states before and given, the link-layer address. */
export function neighOf(b: Buffer, off: number): NonNullable<TraceEvent['neigh']> {
  const neigh: NonNullable<TraceEvent['neigh']> = { from: nudName(u32(b, off + O.aux)), to: nudName(u32(b, off + O.reason)) };
  if (b.subarray(off + O.gw, off + O.gw + 6).some((x) => x !== 0)) neigh.lladdr = mac(b, off + O.gw);
  return neigh;
}

/**
 * Decodes the record at `off` of `b` into a plain TraceEvent (every field read now; the
 * reference a lazily read {@link TraceEvent} of view.ts equals field by field).
 */
export function decodeEvent(b: Buffer, off: number, cache: DecodeCache, dropReason: (code: number) => string): TraceEvent {
  const id = b.readUInt16LE(off + O.point);
  const family = b[off + O.family]!;
  const e: TraceEvent = {
    point: POINT_BY_ID[id] ?? (`unknown(${id})` as TracePoint),
    time: b.readBigUInt64LE(off + O.ts),
    skb: cache.skb(b.readUInt32LE(off + O.skb), b.readUInt32LE(off + O.skb + 4)),
    cpu: b.readUInt32LE(off + O.cpu),
    netns: b.readUInt32LE(off + O.netns),
    ifindex: b.readUInt32LE(off + O.ifindex),
    ifname: cache.ifname(b, off + O.ifname),
    mark: b.readUInt32LE(off + O.mark),
    len: b.readUInt32LE(off + O.len),
  };
  if (family === 4 || family === 6) {
    e.family = family;
    const p = b[off + O.proto]!;
    if (e.point !== 'neigh_update') {
      e.proto = cache.proto(p);
      e.src = cache.addr(b, off + O.saddr, family);
    }
    e.dst = cache.addr(b, off + O.daddr, family);
    if (p === 6 || p === 17 || p === 132) {
      e.sport = b.readUInt16LE(off + O.sport);
      e.dport = b.readUInt16LE(off + O.dport);
    }
  }
  const inner = innerOf(b, off);
  if (inner) e.inner = inner;
  switch (e.point) {
    case 'drop': {
      const reason = u32(b, off + O.reason);
      e.dropReason = dropReason(reason);
      e.dropReasonCode = reason;
      break;
    }
    case 'transmit':
      e.rc = b.readInt32LE(off + O.result);
      break;
    case 'fib_lookup':
      e.fib = fibOf(b, off);
      break;
    case 'xdp_exception':
    case 'xdp_redirect':
      e.xdp = xdpOf(b, off, e.point);
      break;
    case 'neigh_update':
      e.neigh = neighOf(b, off);
      break;
    default:
  }
  return e;
}

/**
 * The ring buffer codec of PacketTracer: decode() only notes the batch buffer and returns
 * the record's offset; the tracer reads the batch (point ids, or lazy events over a copy)
 * when the ring hands it over, before the buffer is read into again.
 */
export function recordCodec(onRecord: (b: Buffer) => void): Codec<number> {
  return {
    name: 'tracer_event',
    size: EVENT_SIZE,
    align: 8,
    layout: { kind: 'bytes', size: EVENT_SIZE },
    encode() {
      throw new BpfkitError('ERR_UNSUPPORTED', 'trace events are read, never written');
    },
    decode(b, off) {
      onRecord(b);
      return off;
    },
  };
}
