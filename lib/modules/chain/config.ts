/**
 * ServiceChainer configuration: validation (pure, nothing touches the kernel) and the
 * tuple-space compiler that turns rules into the shape table and the rule hash entries
 * of bpf/chain.bpf.c.
 */
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { array, be16, bytes, mac, parseCidr, parseIPv4, parseIPv6, struct, u16, u32, u64, u8, type Cidr } from '../../core/codecs.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { IP_PROTOCOLS, ipProtocolNumber } from '../../core/net/protocols.js';
import type { ChainConfig, ChainLimits, ChainNextHop, ChainPath, ChainRule, ChainService } from './types.js';

// ---- kernel side layout (bpf/chain.bpf.c) ------------------------------------------------

export const MAX_SHAPES = 32;
export const MAX_SERVICES = 32;
export const UPSTREAM = 0xff;
export const CF = { ifindex: 1, smac: 2, vlan: 4, vni: 8, src: 16, dst: 32, proto: 64, dport: 128 } as const;
export const CNT_UPSTREAM = MAX_SERVICES;
export const CNT_UNCLASSIFIED = MAX_SERVICES + 1;
export const CNT_META_FAILED = MAX_SERVICES + 2;
export const CNT_PACKETS = MAX_SERVICES + 3;
export const DEFAULT_PRIORITY = 1000;
export const MAX_PRIORITY = 0xffffff;
export const DEFAULT_LIMITS: Required<ChainLimits> = { maxRules: 4096 };

const shapeCodec = struct('chain_shape', { fields: u32, best_rank: u32, family: u32, src_mask: bytes(16, 4), dst_mask: bytes(16, 4) });
export const configCodec = struct('chain_config', {
  gen: u32,
  nshapes: u32,
  upstream_mark: u32,
  rule_base: u32,
  service_mark: array(u32, MAX_SERVICES),
  shapes: array(shapeCodec, MAX_SHAPES),
});
export type ConfigValue = Parameters<typeof configCodec.encode>[0];
/** The rule key of IPv6-prefix shapes (chain_rules6) ... */
export const key6Codec = struct('chain_key', {
  gen_shape: u32,
  ifindex: u32,
  vni: u32,
  smac: bytes(6),
  vlan: u16,
  family: u8,
  proto: u8,
  dport: be16,
  src: bytes(16, 4),
  dst: bytes(16, 4),
});
/** ... and of every other shape (chain_rules4): IPv4 addresses, 32 bytes. */
export const key4Codec = struct('chain_key4', {
  gen_shape: u32,
  ifindex: u32,
  vni: u32,
  smac: bytes(6),
  vlan: u16,
  family: u8,
  proto: u8,
  dport: be16,
  src: bytes(4, 4),
  dst: bytes(4, 4),
});
export type KeyValue = Parameters<typeof key6Codec.encode>[0];
export const ruleCodec = struct('chain_rule', { rank: u32, rule: u32, action: u32 });
export const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });

// ---- validation ----------------------------------------------------------------------------

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const RULE_KEYS = new Set(['id', 'priority', 'iface', 'srcMac', 'vlan', 'vni', 'src', 'dst', 'proto', 'dstPort', 'action']);
const PATH_KEYS = new Set(['mark', 'table', 'nexthops']);
const SERVICE_KEYS = new Set(['name', ...PATH_KEYS]);
const HOP_KEYS = new Set(['via', 'dev', 'weight', 'onlink']);
/** The protocols whose destination port bpf/chain.bpf.c reads (a subset of the core's PORT_PROTOCOLS). */
const PORT_PROTOS = new Set([6, 17, 132]);
const RESERVED_TABLES = new Set([253, 254, 255]);

function badRule(field: string, message: string): never {
  throw new BpfkitError('ERR_INVALID_RULE', `${field}: ${message}`, { field });
}

export function checkKeys(o: unknown, allowed: Set<string>, field: string): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) invalidArgument(field, 'must be an object');
  for (const k of Object.keys(o)) if (!allowed.has(k)) invalidArgument(field ? `${field}.${k}` : k, `unknown field (allowed: ${[...allowed].join(', ')})`);
}

export function checkLimits(l: ChainLimits | undefined): Required<ChainLimits> {
  if (l === undefined) return { ...DEFAULT_LIMITS };
  checkKeys(l, new Set(['maxRules']), 'limits');
  const out = { ...DEFAULT_LIMITS };
  if (l.maxRules !== undefined) {
    if (!Number.isInteger(l.maxRules) || l.maxRules < 1 || l.maxRules > 1 << 18)
      invalidArgument('limits.maxRules', `must be an integer in 1..${1 << 18}, got ${String(l.maxRules)}`);
    out.maxRules = l.maxRules;
  }
  return out;
}

/** A validated next hop, with the families it serves. */
export interface Hop {
  via?: string;
  dev?: string | number;
  weight?: number;
  onlink?: boolean;
  families: (4 | 6)[];
}

/** A validated service or upstream. */
export interface Path {
  name: string; // 'upstream' for upstream
  field: string; // 'services[2]' or 'upstream'
  mark: number;
  table: number;
  hops: Hop[];
}

function checkHop(h: ChainNextHop, field: string): Hop {
  checkKeys(h, HOP_KEYS, field);
  const out: Hop = { families: [4, 6] };
  if (h.via !== undefined) {
    if (typeof h.via === 'string' && parseIPv4(h.via)) out.families = [4];
    else if (typeof h.via === 'string' && parseIPv6(h.via)) out.families = [6];
    else invalidArgument(`${field}.via`, `must be an IPv4 or IPv6 address, got ${JSON.stringify(h.via)}`);
    out.via = h.via;
  }
  if (h.dev !== undefined) {
    const d = h.dev;
    const ok = typeof d === 'number' ? Number.isInteger(d) && d > 0 : typeof d === 'string' && d.length > 0 && Buffer.byteLength(d) <= 15 && !/[\s/:]/.test(d);
    if (!ok) invalidArgument(`${field}.dev`, `must be an interface name or index, got ${JSON.stringify(d)}`);
    out.dev = d;
  }
  if (out.via === undefined && out.dev === undefined) invalidArgument(field, 'a next hop needs via, dev or both');
  if (h.weight !== undefined) {
    if (!Number.isInteger(h.weight) || h.weight < 1 || h.weight > 256) invalidArgument(`${field}.weight`, `must be 1..256, got ${String(h.weight)}`);
    out.weight = h.weight;
  }
  if (h.onlink !== undefined) {
    if (typeof h.onlink !== 'boolean') invalidArgument(`${field}.onlink`, 'must be true or false');
    if (h.onlink && (out.via === undefined || out.dev === undefined)) invalidArgument(`${field}.onlink`, 'onlink needs both via and dev');
    out.onlink = h.onlink;
  }
  return out;
}

function checkPath(p: ChainPath, field: string, name: string, keys: Set<string>): Path {
  checkKeys(p, keys, field);
  if (!Number.isInteger(p.mark) || p.mark < 1 || p.mark > 0xffffffff)
    invalidArgument(`${field}.mark`, `must be an integer 1..0xffffffff, got ${String(p.mark)}`);
  if (!Number.isInteger(p.table) || p.table < 1 || p.table > 0xfffffff0 || RESERVED_TABLES.has(p.table)) {
    invalidArgument(`${field}.table`, `must be a table number 1..0xfffffff0 other than 253, 254, 255 (default, main, local), got ${String(p.table)}`);
  }
  if (!Array.isArray(p.nexthops) || p.nexthops.length === 0 || p.nexthops.length > 16)
    invalidArgument(`${field}.nexthops`, 'must be a list of 1 to 16 next hops');
  const hops = p.nexthops.map((h, i) => checkHop(h, `${field}.nexthops[${i}]`));
  return { name, field, mark: p.mark, table: p.table, hops };
}

/** Services and upstream: names, marks and tables unique. */
export function checkPaths(services: readonly ChainService[], upstream: ChainPath): { services: Path[]; upstream: Path } {
  if (!Array.isArray(services)) invalidArgument('services', 'must be a list of services');
  if (services.length > MAX_SERVICES) invalidArgument('services', `at most ${MAX_SERVICES} services, got ${services.length}`);
  if (upstream === undefined) invalidArgument('upstream', 'is required: where traffic goes after its service');
  const up = checkPath(upstream, 'upstream', 'upstream', PATH_KEYS);
  const out: Path[] = [];
  const names = new Set<string>();
  const marks = new Map<number, string>([[up.mark, 'upstream']]);
  const tables = new Map<number, string>([[up.table, 'upstream']]);
  services.forEach((s, i) => {
    const field = `services[${i}]`;
    checkKeys(s, SERVICE_KEYS, field);
    if (typeof s.name !== 'string' || !NAME.test(s.name)) invalidArgument(`${field}.name`, `must be 1-64 of [A-Za-z0-9_.:-], got ${JSON.stringify(s.name)}`);
    if (s.name === 'upstream') invalidArgument(`${field}.name`, "'upstream' is the name of the way back, not a service");
    if (names.has(s.name)) invalidArgument(`${field}.name`, `duplicate service '${s.name}'`);
    names.add(s.name);
    const p = checkPath(s, field, s.name, SERVICE_KEYS);
    const m = marks.get(p.mark);
    if (m) invalidArgument(`${field}.mark`, `mark ${p.mark} is already ${m}'s`);
    marks.set(p.mark, field);
    const t = tables.get(p.table);
    if (t) invalidArgument(`${field}.table`, `table ${p.table} is already ${t}'s`);
    tables.set(p.table, field);
    out.push(p);
  });
  return { services: out, upstream: up };
}

/** A validated rule, its fields as the kernel compares them. */
export interface Rule {
  index: number;
  id: string;
  priority: number;
  action: string;
  actionIndex: number; // service index or UPSTREAM
  fields: number; // CF bits
  ifindex: number;
  smac: Buffer;
  vlan: number;
  vni: number;
  family: 0 | 4 | 6;
  src: Cidr | null;
  dst: Cidr | null;
  proto: number;
  dport: number;
}

function intIn(v: unknown, lo: number, hi: number, field: string, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) badRule(field, `must be ${what} (${lo}..${hi}), got ${JSON.stringify(v)}`);
  return v;
}

function cidr(v: unknown, field: string): Cidr {
  try {
    return parseCidr(v as string, field);
  } catch (e) {
    badRule(field, e instanceof Error ? e.message.replace(`${field}: `, '') : String(e));
  }
}

/** Validates rules against the services; interface names are resolved in `ns` (a read: nothing changes). */
export function checkRules(rules: readonly ChainRule[], services: readonly Path[], limits: Required<ChainLimits>, ns: string | undefined): Rule[] {
  if (!Array.isArray(rules)) badRule('rules', 'must be a list of rules');
  if (rules.length > limits.maxRules) badRule('rules', `${rules.length} rules exceed limits.maxRules (${limits.maxRules}), fixed at load`);
  const byName = new Map(services.map((s, i) => [s.name, i]));
  const ifindexes = new Map<string, number>();
  return rules.map((r, index): Rule => {
    const f = (k: string) => `rules[${index}].${k}`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) badRule(`rules[${index}]`, 'must be an object');
    for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) badRule(f(k), `unknown field (allowed: ${[...RULE_KEYS].join(', ')})`);
    const out: Rule = {
      index,
      id: String(index),
      priority: DEFAULT_PRIORITY,
      action: '',
      actionIndex: 0,
      fields: 0,
      ifindex: 0,
      smac: Buffer.alloc(6),
      vlan: 0,
      vni: 0,
      family: 0,
      src: null,
      dst: null,
      proto: 0,
      dport: 0,
    };
    if (r.id !== undefined) {
      if (typeof r.id !== 'string' || !NAME.test(r.id)) badRule(f('id'), `must be 1-64 of [A-Za-z0-9_.:-], got ${JSON.stringify(r.id)}`);
      out.id = r.id;
    }
    if (r.priority !== undefined) out.priority = intIn(r.priority, 0, MAX_PRIORITY, f('priority'), 'an integer');
    if (typeof r.action !== 'string') badRule(f('action'), `must be a service name or 'upstream', got ${JSON.stringify(r.action)}`);
    if (r.action === 'upstream') out.actionIndex = UPSTREAM;
    else {
      const i = byName.get(r.action);
      if (i === undefined) badRule(f('action'), `unknown service '${r.action}' (services: ${[...byName.keys()].join(', ') || 'none'}; or 'upstream')`);
      out.actionIndex = i;
    }
    out.action = r.action;
    if (r.iface !== undefined) {
      if (typeof r.iface === 'number') out.ifindex = intIn(r.iface, 1, 0x7fffffff, f('iface'), 'an interface index');
      else {
        if (typeof r.iface !== 'string' || r.iface.length === 0 || Buffer.byteLength(r.iface) > 15 || /[\s/:]/.test(r.iface))
          badRule(f('iface'), `must be an interface name or index, got ${JSON.stringify(r.iface)}`);
        let idx = ifindexes.get(r.iface);
        if (idx === undefined) {
          try {
            idx = ifIndex(r.iface, { netns: ns });
          } catch (e) {
            badRule(f('iface'), `no interface '${r.iface}'${ns ? ` in ${ns}` : ''} (${e instanceof Error ? e.message : String(e)})`);
          }
          ifindexes.set(r.iface, idx);
        }
        out.ifindex = idx;
      }
      out.fields |= CF.ifindex;
    }
    if (r.srcMac !== undefined) {
      try {
        mac.encode(r.srcMac, out.smac, 0);
      } catch {
        badRule(f('srcMac'), `must be a MAC address like 02:00:00:00:00:01, got ${JSON.stringify(r.srcMac)}`);
      }
      if (out.smac[0]! & 1) badRule(f('srcMac'), `${r.srcMac} is a group address: no frame comes from it`);
      out.fields |= CF.smac;
    }
    if (r.vlan !== undefined) {
      out.vlan = intIn(r.vlan, 1, 4094, f('vlan'), 'a VLAN id');
      out.fields |= CF.vlan;
    }
    if (r.vni !== undefined) {
      out.vni = intIn(r.vni, 0, 0xffffff, f('vni'), 'a VNI');
      out.fields |= CF.vni;
    }
    if (r.src !== undefined) {
      out.src = cidr(r.src, f('src'));
      out.family = out.src.family;
      out.fields |= CF.src;
    }
    if (r.dst !== undefined) {
      out.dst = cidr(r.dst, f('dst'));
      if (out.src && out.src.family !== out.dst.family) badRule(f('dst'), `is IPv${out.dst.family} but src is IPv${out.src.family}`);
      out.family = out.dst.family;
      out.fields |= CF.dst;
    }
    if (r.proto !== undefined) {
      if (typeof r.proto === 'string') {
        const p = ipProtocolNumber(r.proto);
        if (p === undefined) badRule(f('proto'), `unknown protocol '${r.proto}' (${Object.keys(IP_PROTOCOLS).join(', ')} or a number 0..255)`);
        out.proto = p;
      } else out.proto = intIn(r.proto, 0, 255, f('proto'), 'an IP protocol number');
      out.fields |= CF.proto;
    }
    if (r.dstPort !== undefined) {
      out.dport = intIn(r.dstPort, 0, 65535, f('dstPort'), 'a port');
      if (!(out.fields & CF.proto) || !PORT_PROTOS.has(out.proto)) badRule(f('dstPort'), "needs proto 'tcp', 'udp' or 'sctp'");
      out.fields |= CF.dport;
    }
    return out;
  });
}

// ---- tuple-space compiler ---------------------------------------------------------------------

export interface Shape {
  fields: number;
  family: 0 | 4 | 6;
  srcLen: number;
  dstLen: number;
  bestRank: number;
  rules: number;
}

export interface Compiled {
  shapes: Shape[];
  /** rule hash entries (gen filled in by the caller); `wide`: chain_rules6, else chain_rules4 (src/dst 4 bytes) */
  entries: { wide: boolean; key: KeyValue; value: { rank: number; rule: number; action: number } }[];
  /** rules that can never match: an earlier rule has the same shape and masked fields */
  shadowed: number[];
}

function maskBytes(len: number, family: 0 | 4 | 6): Buffer {
  const b = Buffer.alloc(16);
  const bits = family === 4 ? Math.min(len, 32) : len;
  for (let i = 0; i < 16; i++) {
    const n = Math.max(0, Math.min(8, bits - i * 8));
    b[i] = n === 0 ? 0 : (0xff << (8 - n)) & 0xff;
  }
  return b;
}

function masked(c: Cidr | null): Buffer {
  const b = Buffer.alloc(16);
  if (c) c.addr.copy(b, 0); // parseCidr refuses host bits: the address is its own network
  return b;
}

/** First-match order: priority, then list order. */
export function ranked(rules: readonly Rule[]): Rule[] {
  return [...rules].sort((a, b) => a.priority - b.priority || a.index - b.index);
}

/** Groups rules into shapes (<= MAX_SHAPES, sorted by best rank) and builds their keys. */
export function compile(rules: readonly Rule[], gen: number): Compiled {
  const order = ranked(rules);
  const shapes = new Map<string, Shape>();
  for (const [rank, r] of order.entries()) {
    const sig = `${r.fields}|${r.family}|${r.src?.prefixLen ?? 0}|${r.dst?.prefixLen ?? 0}`;
    const s = shapes.get(sig);
    if (s) s.rules++;
    else shapes.set(sig, { fields: r.fields, family: r.family, srcLen: r.src?.prefixLen ?? 0, dstLen: r.dst?.prefixLen ?? 0, bestRank: rank, rules: 1 });
  }
  if (shapes.size > MAX_SHAPES) {
    throw new BpfkitError(
      'ERR_INVALID_RULE',
      `rules: ${shapes.size} rule shapes (combinations of matched fields and prefix lengths), at most ${MAX_SHAPES}: ` +
        'each shape costs a hash lookup per packet; use fewer distinct prefix lengths or field combinations',
      { field: 'rules', details: { shapes: shapes.size, max: MAX_SHAPES } },
    );
  }
  const list = [...shapes.entries()].sort((a, b) => a[1].bestRank - b[1].bestRank);
  const index = new Map(list.map(([sig], i) => [sig, i]));
  const seen = new Set<string>();
  const entries: Compiled['entries'] = [];
  const shadowed: number[] = [];
  for (const [rank, r] of order.entries()) {
    const sig = `${r.fields}|${r.family}|${r.src?.prefixLen ?? 0}|${r.dst?.prefixLen ?? 0}`;
    const wide = r.family === 6 && (r.fields & (CF.src | CF.dst)) !== 0;
    const size = wide ? 16 : 4;
    const key: KeyValue = {
      gen_shape: (gen << 8) | index.get(sig)!,
      ifindex: r.ifindex,
      vni: r.vni,
      smac: r.smac,
      vlan: r.vlan,
      family: r.fields & (CF.src | CF.dst) ? r.family : 0,
      proto: r.proto,
      dport: r.dport,
      src: masked(r.src).subarray(0, size),
      dst: masked(r.dst).subarray(0, size),
    };
    const id = `${key.gen_shape}|${key.ifindex}|${key.vni}|${r.smac.toString('hex')}|${key.vlan}|${key.family}|${key.proto}|${key.dport}|${(key.src as Buffer).toString('hex')}|${(key.dst as Buffer).toString('hex')}`;
    if (seen.has(id)) {
      shadowed.push(r.index);
      continue;
    }
    seen.add(id);
    entries.push({ wide, key, value: { rank, rule: r.index, action: r.actionIndex } });
  }
  return { shapes: list.map(([, s]) => s), entries, shadowed };
}

export function configValue(c: Compiled, gen: number, paths: { services: readonly Path[]; upstream: Path }, maxRules: number): ConfigValue {
  const shapes = Array.from({ length: MAX_SHAPES }, (_, i) => {
    const s = c.shapes[i];
    if (!s) return { fields: 0, best_rank: 0xffffffff, family: 0, src_mask: Buffer.alloc(16), dst_mask: Buffer.alloc(16) };
    return {
      fields: s.fields,
      best_rank: s.bestRank,
      family: s.fields & (CF.src | CF.dst) ? s.family : 0,
      src_mask: s.fields & CF.src ? maskBytes(s.srcLen, s.family) : Buffer.alloc(16),
      dst_mask: s.fields & CF.dst ? maskBytes(s.dstLen, s.family) : Buffer.alloc(16),
    };
  });
  const marks = Array.from({ length: MAX_SERVICES }, (_, i) => paths.services[i]?.mark ?? 0);
  return { gen, nshapes: c.shapes.length, upstream_mark: paths.upstream.mark, rule_base: gen * maxRules, service_mark: marks, shapes };
}

export type { ChainConfig };
