/**
 * Policy events: the ring-buffer record written by bpf/include/acl_prog.h
 * (struct acl_event, 72 bytes) and the event AclFirewall hands to listeners.
 */
import type { Codec } from '../../core/codecs.js';
import { formatIPv4, formatIPv6 } from '../../core/codecs.js';
import { invalidArgument } from '../../core/errors.js';
import { ACT_DENY, ACT_LOG, PROTO_UNKNOWN } from './layout.js';

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

export const ACL_EVENT_SIZE = 72;

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
  family: 4 | 6;
  /** IP protocol number; null if it could not be found (IPv6 extension headers). */
  proto: number | null;
  src: string;
  dst: string;
  /** TCP/UDP/SCTP/UDP-Lite/DCCP ports; null for other protocols or without an L4 header. */
  srcPort: number | null;
  dstPort: number | null;
  /** ICMP / ICMPv6 type and code; null otherwise. */
  icmpType: number | null;
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

const PORT_PROTOS = new Set([6, 17, 33, 132, 136]);

/** Turns a raw record into an AclEvent; `resolve` maps (generation, slot) to a rule id. */
export function toAclEvent(r: RawAclEvent, resolve: (gen: number, slot: number) => string | null, monoToWallMs: number): AclEvent {
  const l4 = (r.flags & 1) !== 0;
  const proto = r.proto === PROTO_UNKNOWN ? null : r.proto;
  const ports = l4 && proto !== null && PORT_PROTOS.has(proto);
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
