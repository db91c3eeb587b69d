/**
 * Helpers for the AclFirewall tests: Ethernet frames built byte by byte, ClassBench
 * files, and a reference classifier written independently of lib/modules/acl (plain
 * numeric 5-tuples, first match by linear scan).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { AclFirewall } from '../../lib/index.js';
import { onCpu } from '../helpers/cpu.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';

/** The ClassBench data beside the checkout: `<repository root>/../shared/classbench`. */
export const CLASSBENCH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/classbench');
if (!existsSync(CLASSBENCH)) {
  throw new Error(`ClassBench data not found at ${CLASSBENCH} (expected ../shared/classbench beside the repository root)`);
}

export function readClassBench(rel: string): string {
  const p = `${CLASSBENCH}/${rel}`;
  if (existsSync(p)) return readFileSync(p, 'utf8');
  return execFileSync('xz', ['-dc', `${p}.xz`], { maxBuffer: 1 << 30 }).toString('utf8');
}

// ---- a host for test runs -------------------------------------------------------------

/**
 * A lab with host 'fw' holding one veth end (198.18.0.2/24) for a firewall that only sees
 * test runs: the peer end is down, so no live packet (IPv6 neighbour discovery, ...)
 * reaches it and the counters are exact.
 */
export async function testRunHost(name: string): Promise<{ lab: Lab; host: LabHost; ifname: string }> {
  const lab = await Lab.create({ name });
  try {
    const host = await lab.host('fw');
    const peer = await lab.host('peer');
    const l = await lab.link(peer, host, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
    await peer.ip(['link', 'set', 'dev', l.a.ifname, 'down']);
    return { lab, host, ifname: l.b.ifname };
  } catch (e) {
    await lab.close();
    throw e;
  }
}

// ---- frames -------------------------------------------------------------------------

export interface FrameSpec {
  family?: 4 | 6;
  /** IPv4: 4 bytes; IPv6: 16 bytes (network order). */
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  sport?: number;
  dport?: number;
  /** ICMP type/code (proto 1 / 58) */
  type?: number;
  code?: number;
  /** IPv4 fragment offset in 8-byte units (non-zero: a later fragment) and MF flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** IPv6 extension headers to insert before the upper layer (next-header numbers). */
  ext?: number[];
  /** Cut the frame right after the IP header(s) (+ this many L4 bytes). */
  l4Bytes?: number;
  vlan?: number;
  /** Total frame length (padded with zeros), default 64. */
  length?: number;
}

export function v4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

export function v6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((x) => parseInt(x || '0', 16));
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
}

export function u32ToV4(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** A frame with Ethernet (+VLAN), IPv4 or IPv6 (+ext headers) and the L4 start. */
export function frame(f: FrameSpec): Buffer {
  const family = f.family ?? (f.src.length === 16 ? 6 : 4);
  const l2: number[] = [];
  const out: Buffer[] = [];
  const eth = Buffer.alloc(12, 0);
  eth[0] = 0x02;
  eth[6] = 0x02;
  eth[11] = 1;
  out.push(eth);
  if (f.vlan !== undefined) {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(0x8100, 0);
    t.writeUInt16BE(f.vlan, 2);
    out.push(t);
  }
  const et = Buffer.alloc(2);
  et.writeUInt16BE(family === 4 ? 0x0800 : 0x86dd);
  out.push(et);
  void l2;
  let l4 = Buffer.alloc(8);
  if (f.proto === 1 || f.proto === 58) {
    l4[0] = f.type ?? 8;
    l4[1] = f.code ?? 0;
  } else {
    l4.writeUInt16BE(f.sport ?? 0, 0);
    l4.writeUInt16BE(f.dport ?? 0, 2);
  }
  if (f.l4Bytes !== undefined) l4 = l4.subarray(0, f.l4Bytes);
  if (family === 4) {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip.writeUInt16BE(((f.moreFragments ? 1 : 0) << 13) | (f.fragOffset ?? 0), 6);
    ip[8] = 64;
    ip[9] = f.proto;
    Buffer.from(f.src).copy(ip, 12);
    Buffer.from(f.dst).copy(ip, 16);
    out.push(ip);
  } else {
    const ext = f.ext ?? [];
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(ext.length * 8 + l4.length, 4);
    ip[6] = ext.length ? ext[0]! : f.proto;
    ip[7] = 64;
    Buffer.from(f.src).copy(ip, 8);
    Buffer.from(f.dst).copy(ip, 24);
    out.push(ip);
    for (let i = 0; i < ext.length; i++) {
      const h = Buffer.alloc(8);
      h[0] = i + 1 < ext.length ? ext[i + 1]! : f.proto;
      if (ext[i] === 44) h.writeUInt16BE(((f.fragOffset ?? 0) << 3) | (f.moreFragments ? 1 : 0), 2);
      out.push(h);
    }
  }
  out.push(l4);
  const b = Buffer.concat(out);
  const len = f.length ?? 64;
  return f.l4Bytes !== undefined || b.length >= len ? b : Buffer.concat([b, Buffer.alloc(len - b.length)]);
}

// ---- ClassBench reference ------------------------------------------------------------

/** A ClassBench rule as plain numbers (inclusive ranges). */
export interface RefRule {
  sLo: number;
  sHi: number;
  dLo: number;
  dHi: number;
  spLo: number;
  spHi: number;
  dpLo: number;
  dpHi: number;
  proto: number | null;
}

export interface RefHeader {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  proto: number;
}

function prefixRange(text: string): [number, number] {
  const [a, l] = text.split('/');
  const addr = a!.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(l));
  const lo = Math.floor(addr / size) * size;
  return [lo, lo + size - 1];
}

/** Parses ClassBench rules (own parser, independent of lib/modules/acl/classbench.ts). */
export function refRules(text: string): RefRule[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('@'))
    .map((l) => {
      const t = l.slice(1).trim().split(/\s+/);
      const [sLo, sHi] = prefixRange(t[0]!);
      const [dLo, dHi] = prefixRange(t[1]!);
      const [pv, pm] = t[8]!.split('/').map((x) => parseInt(x, 16));
      return { sLo, sHi, dLo, dHi, spLo: +t[2]!, spHi: +t[4]!, dpLo: +t[5]!, dpHi: +t[7]!, proto: pm ? pv! : null };
    });
}

export function refTrace(text: string): RefHeader[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.trim().split(/\s+/).map(Number);
      return { src: f[0]!, dst: f[1]!, sport: f[2]!, dport: f[3]!, proto: f[4]! };
    });
}

/** Index of the first rule matching the header, or -1. */
export function refFirstMatch(rules: RefRule[], h: RefHeader): number {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (h.src < r.sLo || h.src > r.sHi || h.dst < r.dLo || h.dst > r.dHi) continue;
    if (r.proto !== null && r.proto !== h.proto) continue;
    if (h.sport < r.spLo || h.sport > r.spHi || h.dport < r.dpLo || h.dport > r.dpHi) continue;
    return i;
  }
  return -1;
}

/** Deterministic pseudo-random numbers (xorshift32). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Picks n items evenly spread over the list. */
export function spread<T>(list: T[], n: number): T[] {
  if (list.length <= n) return list;
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor((i * list.length) / n)]!);
  return out;
}

/**
 * IPv6 images of ClassBench IPv4 values: the source lands in bits 16..47 under
 * 2001::/16 and the destination in bits 80..111 under fd00::/80, so prefixes stay prefixes
 * (/L becomes /16+L and /80+L) and cross 32-bit word boundaries.
 */
export function src6(n: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(0x2001, 0);
  b.writeUInt32BE(n >>> 0, 2);
  return b;
}
export function dst6(n: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(0xfd00, 0);
  b.writeUInt32BE(n >>> 0, 10);
  return b;
}

export function fmt6(b: Buffer): string {
  const w: string[] = [];
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(2 * i).toString(16));
  return w.join(':');
}

/** Frames the header of a ClassBench trace line (ports only for TCP/UDP, like the firewall reads them). */
export function headerFrame(h: RefHeader, family: 4 | 6 = 4): Buffer {
  const src = family === 4 ? u32ToV4(h.src) : src6(h.src);
  const dst = family === 4 ? u32ToV4(h.dst) : dst6(h.dst);
  return frame({ src, dst, proto: h.proto, sport: h.sport, dport: h.dport });
}

const M64 = (1n << 64n) - 1n;
const ip4 = (a: string) => BigInt(a.split('.').reduce((x, o) => x * 256 + Number(o), 0));
/** The verdict-cache set of an IPv4 UDP flow, also its set in the rate limiter's flow memory
 * (bpf/acl/vcache.h acl_flow_set_of: the packed key's words times odd constants, xor-ed,
 * bits 32-43; ifindex and the l4 bit masked out). */
export function flowSetOf(src: string, dst: string, sport: number, dport: number): bigint {
  const p0 = (ip4(dst) << 32n) | ip4(src);
  const p1 = (BigInt(dport) << 32n) | BigInt(sport);
  const p2 = 17n | (4n << 24n);
  const h = ((p0 * 0x9e3779b97f4a7c15n) & M64) ^ ((p1 * 0xc2b2ae3d27d4eb4fn) & M64) ^ ((p2 * 0x165667b19e3779f9n) & M64);
  return (h >> 32n) & 4095n;
}

/** `n` UDP source ports (from 20000 up) whose flows src -> dst:dport share one set (fewer if none is found). */
export function portsSharingASet(src: string, dst: string, dport: number, n: number): number[] {
  const bySet = new Map<bigint, number[]>();
  for (let p = 20000; p < 65536; p++) {
    const s = flowSetOf(src, dst, p, dport);
    const l = bySet.get(s) ?? [];
    l.push(p);
    bySet.set(s, l);
    if (l.length === n) return l;
  }
  return [];
}

/** Runs `fn` with this process on CPU 0 only (one CPU's verdict cache). */
export function onCpu0<T>(fn: () => Promise<T>): Promise<T> {
  return onCpu(0, fn);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ends every flow's interval: 1 ms from now on, until the test restores its own interval. */
export async function endInterval(fw: AclFirewall): Promise<void> {
  await fw.configure({ eventIntervalMs: 1 });
  await sleep(50);
}

/**
 * Waits (at most 2 s) until `events` holds `n` events, and asserts it holds at least `n`;
 * `exactly`: then waits 50 ms more and asserts it holds exactly `n` (no more arrived).
 */
export async function waitForEvents(events: readonly unknown[], n: number, what: string, exactly = false): Promise<void> {
  for (let i = 0; i < 100 && events.length < n; i++) await sleep(20);
  if (!exactly) {
    expect(events.length, what).toBeGreaterThanOrEqual(n);
    return;
  }
  await sleep(50);
  expect(events.length, what).toBe(n);
}
