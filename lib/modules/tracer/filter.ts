/**
 * PacketTracer's filter: validated here, encoded as struct tracer_filter
 * (bpf/tracer/event.h) and set as read-only data before load, so the kernel evaluates it
 * and the verifier removes the checks of fields left unset.
 */
import { statSync } from 'node:fs';
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { parseCidr } from '../../core/codecs.js';
import { checkInteger } from '../../core/validate.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { netnsPath, type NetnsRef } from '../../core/net/netns.js';
import { IP_PROTOCOLS, ipProtocolNumber } from '../../core/net/protocols.js';
import { compilePcap, type CompiledPcap } from './pcap.js';

/**
 * Which packets to trace; every field given must match. Header fields (host, proto, port)
 * are read from the packet at each point; a neighbour event matches on host, interface and
 * namespace only; XDP events (which carry no packet) only when no header field or mark is set.
 */
export interface TraceFilter {
  /** An address or CIDR, IPv4 and/or IPv6 (at most one of each), matching source or destination. */
  host?: string | readonly string[];
  /** IP protocol: a name ('tcp', 'udp', 'icmp', 'icmpv6', ...) or a number. */
  proto?: string | number;
  /** A TCP/UDP/SCTP port, source or destination. */
  port?: number;
  /** An interface (name or index). A name is looked up in `netns` (default: the caller's), and then also limits events to that namespace. */
  iface?: string | number;
  /** A network namespace: a name under /run/netns, a path, an open fd, or `{ inode }`. */
  netns?: NetnsRef | { inode: number };
  /** skb->mark, optionally under a mask (`{ value, mask }`). */
  mark?: number | { value: number; mask: number };
  /**
   * Also match host, proto and port against the inner headers of VXLAN (UDP 4789) and
   * Geneve (UDP 6081, Ethernet payload) packets, so the encapsulated packet is followed
   * before decapsulation too. Events then carry `inner`.
   */
  tunnels?: boolean;
  /**
   * A pcap-filter expression (`'tcp and dst port 80'`, see pcap-filter(7)), compiled with
   * libpcap for Ethernet and run in the kernel on each packet as tcpdump would see it on an
   * Ethernet interface (docs/tracing.md, pcap-filter expressions). Combined with the other
   * fields by AND. Events that carry no packet (XDP, neighbour, route lookups of no traced
   * packet) never match one.
   */
  pcap?: string;
}

const F_HOST4 = 1 << 0;
const F_HOST6 = 1 << 1;
const F_PROTO = 1 << 2;
const F_PORT = 1 << 3;
const F_IFINDEX = 1 << 4;
const F_NETNS = 1 << 5;
const F_MARK = 1 << 6;
const F_TUNNELS = 1 << 7;
const F_PCAP = 1 << 8;
/** sizeof(struct tracer_filter). */
export const FILTER_SIZE = 64;

function netnsInode(ns: NetnsRef | { inode: number }, field: string): number {
  if (ns !== null && typeof ns === 'object') return checkInteger(ns.inode, `${field}.inode`, 1, 0xffffffff);
  const path = netnsPath(ns) ?? '/proc/self/ns/net';
  try {
    return statSync(path).ino;
  } catch {
    return invalidArgument(field, `no network namespace at ${path}`);
  }
}

function lookup(iface: string, netns: NetnsRef | undefined): number {
  try {
    return ifIndex(iface, { netns, field: 'filter.iface' });
  } catch (e) {
    if (e instanceof BpfkitError && !e.field) throw new BpfkitError(e.code, `filter.iface: ${e.message}`, { field: 'filter.iface', cause: e });
    throw e;
  }
}

function mask(prefix: number, bytes: number): Buffer {
  const m = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    m[i] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return m;
}

/**
 * Validates a filter (ERR_INVALID_ARGUMENT naming `filter.<field>`) and encodes it, with
 * its pcap-filter expression compiled.
 */
export function encodeFilter(f: TraceFilter | undefined): { filter: Buffer; pcap?: CompiledPcap } {
  const b = Buffer.alloc(FILTER_SIZE);
  if (f === undefined) return { filter: b };
  if (f === null || typeof f !== 'object') invalidArgument('filter', 'must be an object');
  const known = new Set(['host', 'proto', 'port', 'iface', 'netns', 'mark', 'tunnels', 'pcap']);
  for (const k of Object.keys(f)) if (!known.has(k)) invalidArgument(`filter.${k}`, `unknown filter field (known: ${[...known].join(', ')})`);
  let flags = 0;
  if (f.host !== undefined) {
    const hosts = typeof f.host === 'string' ? [f.host] : f.host;
    if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > 2)
      invalidArgument('filter.host', 'must be an address or CIDR, or a list of one IPv4 and one IPv6');
    for (const h of hosts) {
      if (typeof h !== 'string') invalidArgument('filter.host', `expected an address or CIDR, got ${typeof h}`);
      const c = parseCidr(h, 'filter.host');
      const v6 = c.family === 6;
      if (flags & (v6 ? F_HOST6 : F_HOST4)) invalidArgument('filter.host', `at most one IPv${v6 ? 6 : 4} host or CIDR`);
      flags |= v6 ? F_HOST6 : F_HOST4;
      const m = mask(c.prefixLen, v6 ? 16 : 4);
      const a = Buffer.from(c.addr.map((x, i) => x & m[i]!));
      if (v6) {
        a.copy(b, 32);
        m.copy(b, 48);
      } else {
        a.copy(b, 4);
        m.copy(b, 8);
      }
    }
  }
  if (f.proto !== undefined) {
    const p = typeof f.proto === 'number' ? checkInteger(f.proto, 'filter.proto', 0, 255) : ipProtocolNumber(String(f.proto).toLowerCase());
    if (p === undefined) invalidArgument('filter.proto', `unknown protocol '${String(f.proto)}' (names: ${Object.keys(IP_PROTOCOLS).join(', ')}; or a number)`);
    flags |= F_PROTO;
    b[30] = p;
  }
  if (f.port !== undefined) {
    flags |= F_PORT;
    b.writeUInt16LE(checkInteger(f.port, 'filter.port', 1, 65535), 28);
  }
  if (f.netns !== undefined) {
    flags |= F_NETNS;
    b.writeUInt32LE(netnsInode(f.netns, 'filter.netns'), 16);
  }
  if (f.iface !== undefined) {
    const ns = f.netns !== undefined && (typeof f.netns !== 'object' || f.netns === null) ? f.netns : undefined;
    if (f.netns !== undefined && ns === undefined && typeof f.iface === 'string') {
      invalidArgument('filter.iface', 'an interface name cannot be looked up in a namespace given by inode: give its index, or the namespace by name or path');
    }
    flags |= F_IFINDEX;
    b.writeUInt32LE(typeof f.iface === 'number' ? checkInteger(f.iface, 'filter.iface', 1, 0x7fffffff) : lookup(f.iface, ns), 12);
    if (typeof f.iface === 'string' && f.netns === undefined) {
      flags |= F_NETNS; // an index is only unique within its namespace
      b.writeUInt32LE(netnsInode('', 'filter.netns'), 16);
    }
  }
  if (f.mark !== undefined) {
    flags |= F_MARK;
    const m = typeof f.mark === 'number' ? { value: f.mark, mask: 0xffffffff } : f.mark;
    if (m === null || typeof m !== 'object') invalidArgument('filter.mark', 'must be a number or { value, mask }');
    const maskV = checkInteger(m.mask, 'filter.mark.mask', 0, 0xffffffff);
    b.writeUInt32LE((checkInteger(m.value, 'filter.mark', 0, 0xffffffff) & maskV) >>> 0, 20);
    b.writeUInt32LE(maskV, 24);
  }
  if (f.tunnels !== undefined) {
    if (typeof f.tunnels !== 'boolean') invalidArgument('filter.tunnels', `must be true or false, got ${typeof f.tunnels}`);
    if (f.tunnels) flags |= F_TUNNELS;
  }
  let pcap: CompiledPcap | undefined;
  if (f.pcap !== undefined) {
    pcap = compilePcap(f.pcap, 'filter.pcap');
    flags |= F_PCAP;
  }
  b.writeUInt32LE(flags, 0);
  return pcap ? { filter: b, pcap } : { filter: b };
}
