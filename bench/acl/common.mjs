// Shared pieces of bench/acl.bench.mjs and its sections: ClassBench data, frames, rule sets
// for the floods and the peer tools (iptables, nftables).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseClassBench, struct, u64 } from '../../dist/index.js';
import { median } from '../lib.mjs';

// ClassBench data beside the checkout: <repository root>/../shared/classbench
export const CB = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/classbench/generated');
if (!existsSync(CB)) throw new Error(`ClassBench data not found at ${CB} (expected ../shared/classbench beside the repository root)`);
export const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function readCB(name) {
  const p = join(CB, name);
  if (existsSync(p)) return readFileSync(p, 'utf8');
  return execFileSync('xz', ['-dc', `${p}.xz`], { maxBuffer: 1 << 30 }).toString('utf8');
}

/** 64-byte Ethernet/IPv4 frame with the first 4 L4 bytes = ports (valid IP checksum). */
export function frame4(src, dst, proto, sport, dport, dstMac = '02:00:00:00:00:02') {
  const b = Buffer.alloc(64);
  Buffer.from(dstMac.split(':').map((x) => parseInt(x, 16))).copy(b, 0);
  Buffer.from([0x02, 0, 0, 0, 0, 1]).copy(b, 6);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(50, 16);
  b[22] = 64;
  b[23] = proto;
  b.writeUInt32BE(src >>> 0, 26);
  b.writeUInt32BE(dst >>> 0, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 24);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  if (proto === 17) b.writeUInt16BE(30, 38);
  return b;
}

/**
 * Frames of `n` headers spread evenly over a ClassBench trace (the testRun section of
 * bench/acl.bench.mjs and bench/acl/frames.mjs walk the same ones).
 */
export function traceFrames(trace, n) {
  return Array.from({ length: n }, (_, i) => {
    const h = trace[Math.floor((i * trace.length) / n)];
    return frame4(h.src, h.dst, h.proto, h.srcPort, h.dstPort);
  });
}

export const ip = (s) => s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
export const FLOOD = { src: ip('198.18.0.1'), dst: ip('198.18.1.1'), proto: 17, sport: 4000, dport: 5000 };
export const FLOOD_RULE = {
  id: 'flood',
  action: 'deny',
  src: '198.18.0.0/24',
  dst: '198.18.1.0/24',
  proto: 'udp',
  srcPort: [1024, 65535],
  dstPort: [5000, 5099],
};
// the many-flows flood: source ports FLOW_PORT_BASE .. FLOW_PORT_BASE + flows - 1
export const FLOW_PORT_BASE = 1024;
export const MAX_FLOWS = 4096;
export const FEW_FLOWS = 64;

/** Can a ClassBench-derived AclRule match a flood header (any of its source ports)? (a short reference check) */
export function matchesFlood(r) {
  const inCidr = (c, a) => {
    if (!c) return true;
    const [net, len] = c.split('/');
    const l = len === undefined ? 32 : Number(len);
    const size = 2 ** (32 - l);
    return Math.floor(a / size) === Math.floor(ip(net) / size);
  };
  const inPorts = (p, lo, hi = lo) => p === undefined || (Array.isArray(p) ? p[0] <= hi && p[1] >= lo : p >= lo && p <= hi);
  const proto = r.proto === undefined ? null : typeof r.proto === 'number' ? r.proto : { tcp: 6, udp: 17, icmp: 1 }[r.proto];
  return (
    inCidr(r.src, FLOOD.src) &&
    inCidr(r.dst, FLOOD.dst) &&
    (proto === null || proto === FLOOD.proto) &&
    inPorts(r.srcPort, Math.min(FLOOD.sport, FLOW_PORT_BASE), Math.max(FLOOD.sport, FLOW_PORT_BASE + MAX_FLOWS - 1)) &&
    inPorts(r.dstPort, FLOOD.dport)
  );
}

/** ClassBench rules that never match the flood, with the flood's deny rule last (or first). */
export function liveRules(n, first = false) {
  if (n === 1) return [FLOOD_RULE];
  const set = n <= 1000 ? 'acl1_1k' : n <= 10000 ? 'acl1_10k' : 'acl1_100k';
  const rules = parseClassBench(readCB(set))
    .filter((r) => !matchesFlood(r))
    .slice(0, n - 1);
  return first ? [FLOOD_RULE, ...rules] : [...rules, FLOOD_RULE];
}

export function iptablesRules(rules) {
  const lines = ['*raw', ':PREROUTING ACCEPT [0:0]'];
  for (const r of rules) {
    const a = ['-A PREROUTING'];
    if (r.src) a.push(`-s ${r.src}`);
    if (r.dst) a.push(`-d ${r.dst}`);
    if (r.proto !== undefined) a.push(`-p ${r.proto}`);
    const pr = (p) => (Array.isArray(p) ? `${p[0]}:${p[1]}` : `${p}`);
    if (r.srcPort !== undefined) a.push(`--sport ${pr(r.srcPort)}`);
    if (r.dstPort !== undefined) a.push(`--dport ${pr(r.dstPort)}`);
    a.push(r.action === 'deny' ? '-j DROP' : '-j ACCEPT');
    lines.push(a.join(' '));
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export function nftRules(rules) {
  const out = ['table ip bkbench {', ' chain pre {', '  type filter hook prerouting priority raw; policy accept;'];
  for (const r of rules) {
    const a = [];
    if (r.src) a.push(`ip saddr ${r.src}`);
    if (r.dst) a.push(`ip daddr ${r.dst}`);
    const pr = (p) => (Array.isArray(p) ? `${p[0]}-${p[1]}` : `${p}`);
    const l4 = r.proto === 'tcp' || r.proto === 'udp' ? r.proto : null;
    if (r.proto !== undefined && !l4) a.push(`ip protocol ${r.proto}`);
    if (l4 && r.srcPort === undefined && r.dstPort === undefined) a.push(`ip protocol ${l4}`);
    if (l4 && r.srcPort !== undefined) a.push(`${l4} sport ${pr(r.srcPort)}`);
    if (l4 && r.dstPort !== undefined) a.push(`${l4} dport ${pr(r.dstPort)}`);
    a.push(r.id === 'flood' ? 'counter drop' : r.action === 'deny' ? 'drop' : 'accept');
    out.push(`  ${a.join(' ')}`);
  }
  out.push(' }', '}', '');
  return out.join('\n');
}

/** min, median and max of a list, for a figure with its spread */
export function spreadOf(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: median(s), max: s[s.length - 1] };
}
