/**
 * Rule sets of any shape (bench/acl-shapes.mjs: random wide-range/wildcard sets, narrow
 * sets, adversarial families) and what the tests check them against: a reference
 * first-match classifier written for the tests over the AclRules themselves (BigInt
 * address arithmetic, no code shared with the compiler), and headers drawn inside the
 * rules (so the later, replicated rules get hit) and at random.
 */
import type { AclRule } from '../../lib/index.js';
import { adversarialRules, narrowRules, randomRules, rng } from '../../bench/acl-shapes.mjs';
import { frame } from './acl.helpers.js';

export { adversarialRules, narrowRules, randomRules };

/** A packet's header; addresses as unsigned integers of 32 (IPv4) or 128 (IPv6) bits. */
export interface ShapeHeader {
  family: 4 | 6;
  src: bigint;
  dst: bigint;
  proto: number;
  sport: number;
  dport: number;
}

interface Cidr {
  family: 4 | 6;
  net: bigint;
  len: number;
}

function parseAddr(s: string): { family: 4 | 6; addr: bigint } {
  if (s.includes('.')) return { family: 4, addr: s.split('.').reduce((a, x) => (a << 8n) | BigInt(Number(x)), 0n) };
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return { family: 6, addr: words.reduce((a, x) => (a << 16n) | BigInt(parseInt(x || '0', 16)), 0n) };
}

const cidrCache = new Map<string, Cidr>();
function cidr(s: string): Cidr {
  let c = cidrCache.get(s);
  if (!c) {
    const [a, l] = s.split('/');
    const { family, addr } = parseAddr(a!);
    c = { family, net: addr, len: l === undefined ? (family === 4 ? 32 : 128) : Number(l) };
    cidrCache.set(s, c);
  }
  return c;
}

function inCidr(c: Cidr, family: 4 | 6, a: bigint): boolean {
  if (c.family !== family) return false;
  const shift = BigInt((family === 4 ? 32 : 128) - c.len);
  return a >> shift === c.net >> shift;
}

function inList(v: string | readonly string[] | undefined, family: 4 | 6, a: bigint): boolean | null {
  if (v === undefined) return null; // any
  const list = typeof v === 'string' ? [v] : v;
  return list.some((s) => inCidr(cidr(s), family, a));
}

function families(v: string | readonly string[] | undefined): Set<number> {
  if (v === undefined) return new Set([4, 6]);
  return new Set((typeof v === 'string' ? [v] : v).map((s) => cidr(s).family));
}

const PROTO: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 };

function inPorts(p: AclRule['srcPort'], v: number): boolean {
  if (p === undefined) return true;
  if (typeof p === 'number') return p === v;
  if (typeof p === 'string') throw new Error('port text not used by the shape generators');
  return v >= p[0] && v <= p[1];
}

/** Does `r` match `h`? (the documented semantics: AND of fields, a list is an OR) */
export function refMatch(r: AclRule, h: ShapeHeader): boolean {
  if (!families(r.src).has(h.family) || !families(r.dst).has(h.family)) return false;
  if (inList(r.src, h.family, h.src) === false) return false;
  if (inList(r.dst, h.family, h.dst) === false) return false;
  if (r.proto !== undefined && r.proto !== 'any') {
    const p = typeof r.proto === 'number' ? r.proto : PROTO[r.proto]!;
    if (p !== h.proto) return false;
  }
  return inPorts(r.srcPort, h.sport) && inPorts(r.dstPort, h.dport);
}

/** Index of the first rule matching `h`, or -1. */
export function refFirstMatch(rules: readonly AclRule[], h: ShapeHeader): number {
  for (let i = 0; i < rules.length; i++) if (refMatch(rules[i]!, h)) return i;
  return -1;
}

function randBits(r: () => number, bits: number): bigint {
  let v = 0n;
  for (let b = 0; b < bits; b += 16) v = (v << 16n) | BigInt(Math.floor(r() * 65536));
  return v & ((1n << BigInt(bits)) - 1n);
}

function pointIn(r: () => number, v: string | readonly string[] | undefined, family: 4 | 6): bigint {
  const W = family === 4 ? 32 : 128;
  if (v === undefined) return randBits(r, W);
  const list = (typeof v === 'string' ? [v] : v).map(cidr).filter((c) => c.family === family);
  const c = list[Math.floor(r() * list.length)]!;
  const host = W - c.len;
  return ((c.net >> BigInt(host)) << BigInt(host)) | randBits(r, host);
}

function portIn(r: () => number, p: AclRule['srcPort']): number {
  if (typeof p === 'number') return p;
  if (Array.isArray(p)) return p[0] + Math.floor(r() * (p[1] - p[0] + 1));
  return Math.floor(r() * 65536);
}

/**
 * `n` headers for `rules` (seed `seed`): three in four inside a random rule (a point of
 * its addresses, its protocol or tcp/udp, ports in its ranges), the others at random
 * (both families, tcp/udp/icmp).
 */
export function shapeHeaders(rules: readonly AclRule[], n: number, seed: number): ShapeHeader[] {
  const r = rng(seed);
  const out: ShapeHeader[] = [];
  for (let i = 0; i < n; i++) {
    if (r() < 0.75) {
      const rule = rules[Math.floor(r() * rules.length)]!;
      const fam = [...families(rule.src)].filter((f) => families(rule.dst).has(f));
      const family = (fam.length === 1 ? fam[0] : r() < 0.5 ? 4 : 6) as 4 | 6;
      const proto = rule.proto === undefined || rule.proto === 'any' ? (r() < 0.5 ? 6 : 17) : typeof rule.proto === 'number' ? rule.proto : PROTO[rule.proto]!;
      out.push({
        family,
        src: pointIn(r, rule.src, family),
        dst: pointIn(r, rule.dst, family),
        proto,
        sport: portIn(r, rule.srcPort),
        dport: portIn(r, rule.dstPort),
      });
    } else {
      const family = r() < 0.7 ? 4 : 6;
      const p = r();
      const proto = p < 0.45 ? 6 : p < 0.9 ? 17 : family === 4 ? 1 : 58;
      const W = family === 4 ? 32 : 128;
      out.push({ family, src: randBits(r, W), dst: randBits(r, W), proto, sport: Math.floor(r() * 65536), dport: Math.floor(r() * 65536) });
    }
    const h = out[out.length - 1]!;
    if (h.proto === 1 || h.proto === 58) {
      // ICMP: type and code in the port words
      h.sport &= 255;
      h.dport &= 255;
    }
  }
  return out;
}

function bytes(a: bigint, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(a & 255n);
    a >>= 8n;
  }
  return b;
}

/** The frame of a header (ICMP: type and code from sport and dport). */
export function shapeFrame(h: ShapeHeader): Buffer {
  const n = h.family === 4 ? 4 : 16;
  const icmp = h.proto === 1 || h.proto === 58;
  return frame({
    family: h.family,
    src: bytes(h.src, n),
    dst: bytes(h.dst, n),
    proto: h.proto,
    ...(icmp ? { type: h.sport, code: h.dport } : { sport: h.sport, dport: h.dport }),
  });
}

/** The key words the XDP program builds for a header (bpf/acl/parse.h), for walks in JS. */
export function shapeKey(h: ShapeHeader, ifindex = 1): number[] {
  const addr = (a: bigint) => (h.family === 4 ? [Number(a)] : [0, 1, 2, 3].map((i) => Number((a >> BigInt(96 - 32 * i)) & 0xffffffffn)));
  return [...addr(h.src), ...addr(h.dst), h.sport, h.dport, h.proto, ifindex, 1];
}
