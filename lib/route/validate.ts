/**
 * Validation of rule and route specs into the addon's normalised form. Everything here
 * runs on the JS thread before the kernel is asked anything, and throws a BpfkitError
 * (ERR_INVALID_ARGUMENT) naming the field. Pure: no addon, no syscalls.
 */
import { formatIPv4, formatIPv6, parseCidr, parseIPv4, parseIPv6, type Cidr } from '../core/codecs.js';
import { canonicalIPv4 } from '../core/codecs/ip-text.js';
import { checkInteger } from '../core/validate.js';
import { invalidArgument } from '../core/errors.js';
import type { NativeNextHop, NativeRoute, NativeRule } from '../core/native.js';
import {
  BPFKIT_ROUTE_PROTOCOL,
  FIB_RULE_INVERT,
  IP_PROTO_NAMES,
  PROTOCOL_NAMES,
  ROUTE_TYPES,
  RTNH_F_ONLINK,
  RULE_ACTIONS,
  SCOPES,
  TABLE_NAMES,
  lookupName,
} from './names.js';
import type { IpRouteSpec, IpRuleSelector, IpRuleSpec, NextHop } from './types.js';

// ---- numbers and names -------------------------------------------------------------

const u32 = (v: unknown, field: string, min = 0): number => checkInteger(v, field, min, 0xffffffff);
const u8 = (v: unknown, field: string, min = 0): number => checkInteger(v, field, min, 255);

/** @internal table name or number -> number (1..2^32-1). */
export function parseTable(t: unknown, field: string): number {
  if (typeof t === 'string') {
    const n = lookupName(TABLE_NAMES, t);
    if (n === undefined) invalidArgument(field, `unknown table '${t}' (use a number or main, local, default)`);
    return n;
  }
  return u32(t, field, 1);
}

/** @internal protocol name or number -> number. */
export function parseProtocol(p: unknown, field: string): number {
  if (typeof p === 'string') {
    const n = lookupName(PROTOCOL_NAMES, p);
    if (n === undefined) invalidArgument(field, `unknown route protocol '${p}' (use a number 0-255 or a name like static, kernel, bpfkit)`);
    return n;
  }
  return u8(p, field);
}

/** @internal `tos` / dsfield: 0-255 with the two ECN bits clear (the kernel refuses those). */
export function parseTos(t: unknown, field: string): number {
  const v = u8(t, field);
  if (v & 3) invalidArgument(field, `0x${v.toString(16)} has ECN bits (0x03) set; only the DSCP/TOS bits can be matched`);
  return v;
}

/** @internal rule action name -> FR_ACT_* number. */
export function parseRuleAction(a: unknown, field: string): number {
  const n = lookupName(RULE_ACTIONS, a);
  if (n === undefined) invalidArgument(field, `unknown action '${String(a)}' (table, blackhole, unreachable, prohibit)`);
  return n;
}

function ipProto(v: unknown, field: string): number {
  if (typeof v === 'string') {
    const n = lookupName(IP_PROTO_NAMES, v);
    if (n === undefined) invalidArgument(field, `unknown IP protocol '${v}' (use a number or ${Object.keys(IP_PROTO_NAMES).join(', ')})`);
    return n;
  }
  return u8(v, field, 1);
}

function portRange(v: unknown, field: string): [number, number] {
  const one = (p: unknown, f: string): number => {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65534) {
      invalidArgument(f, `expected a port from 1 to 65534 (the kernel's limit for rule port ranges), got ${String(p)}`);
    }
    return p;
  };
  if (Array.isArray(v)) {
    if (v.length !== 2) invalidArgument(field, 'expected a port or a [from, to] range');
    const lo = one(v[0], `${field}[0]`);
    const hi = one(v[1], `${field}[1]`);
    if (lo > hi) invalidArgument(field, `range ${lo}-${hi} is reversed`);
    return [lo, hi];
  }
  const p = one(v, field);
  return [p, p];
}

function ifname(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 15 || /[\s/:]/.test(v)) {
    invalidArgument(field, `'${String(v)}' is not a valid interface name`);
  }
  return v;
}

function device(v: unknown, field: string): string | number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v <= 0) invalidArgument(field, `interface index must be a positive integer, got ${v}`);
    return v;
  }
  return ifname(v, field);
}

// ---- addresses ---------------------------------------------------------------------

/** @internal a CIDR of a given family (or any when family is undefined). */
export function parsePrefix(s: unknown, field: string, family?: 4 | 6): Cidr {
  const c = parseCidr(s as string, field);
  if (family !== undefined && c.family !== family) invalidArgument(field, `${String(s)} is IPv${c.family}, expected IPv${family}`);
  return c;
}

const V4 = new Int32Array(2);

/**
 * @internal fast path for the common case of a valid IPv4 address or prefix in canonical
 * form (canonicalIPv4): [address, prefixLen], or undefined to take the general parser
 * (which also produces the error). Large batches spend most of their JS time parsing
 * addresses.
 */
export function fastV4(s: unknown, prefix: boolean): [string, number] | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = canonicalIPv4(s, V4);
  if (slash < 0 || (!prefix && slash < s.length)) return undefined;
  return [slash < s.length ? s.slice(0, slash) : s, V4[1]!];
}

/** @internal */
export function addrText(c: Cidr): string {
  return c.family === 4 ? formatIPv4(c.addr) : formatIPv6(c.addr);
}

function gateway(v: unknown, field: string, family: 4 | 6): string {
  if (family === 4) {
    const fast = fastV4(v, false);
    if (fast) return fast[0];
  }
  const bin = typeof v === 'string' ? (family === 4 ? parseIPv4(v) : parseIPv6(v)) : null;
  if (!bin) invalidArgument(field, `expected an IPv${family} address (the route is IPv${family}), got ${String(v)}`);
  return addrText({ family, addr: bin, prefixLen: family === 4 ? 32 : 128 });
}

// ---- rules -------------------------------------------------------------------------

/** @internal the fields of {@link IpRuleSelector}: what selects packets, in a rule and in a PolicyRoute. */
export const SELECTOR_KEYS = ['fwmark', 'fwmask', 'iif', 'oif', 'src', 'dst', 'tos', 'ipProto', 'sport', 'dport', 'invert'] as const;

const RULE_KEYS = new Set<string>([...SELECTOR_KEYS, 'family', 'priority', 'action', 'table', 'protocol']);

/** @internal check the selector fields of a rule-like spec into `out`. */
export function normalizeSelector(spec: IpRuleSelector, field: string, family: 4 | 6, out: NativeRule): void {
  const f = (k: string) => (field ? `${field}.${k}` : k);
  if (spec.fwmark !== undefined || spec.fwmask !== undefined) {
    const mark = spec.fwmark === undefined ? 0 : u32(spec.fwmark, f('fwmark'));
    const mask = spec.fwmask === undefined ? 0xffffffff : u32(spec.fwmask, f('fwmask'));
    if (mask === 0) invalidArgument(f('fwmask'), 'a zero mask matches every packet; leave fwmark/fwmask out instead');
    if (spec.fwmask === undefined && mark === 0) {
      invalidArgument(f('fwmark'), 'fwmark 0 without fwmask matches every packet; to match unmarked packets give fwmask too (e.g. fwmask: 0xffffffff)');
    }
    if ((mark & ~mask) >>> 0) invalidArgument(f('fwmark'), `0x${mark.toString(16)} has bits outside fwmask 0x${mask.toString(16)}; it can never match`);
    out.fwmark = mark;
    out.fwmask = mask;
  }
  if (spec.iif !== undefined) out.iif = ifname(spec.iif, f('iif'));
  if (spec.oif !== undefined) out.oif = ifname(spec.oif, f('oif'));
  for (const k of ['src', 'dst'] as const) {
    if (spec[k] === undefined) continue;
    const c = parsePrefix(spec[k], f(k), family);
    if (c.prefixLen === 0) continue; // /0 matches everything: the kernel drops it too
    out[k] = addrText(c);
    out[k === 'src' ? 'srcLen' : 'dstLen'] = c.prefixLen;
  }
  if (spec.tos !== undefined) {
    const t = parseTos(spec.tos, f('tos'));
    if (t) out.tos = t;
  }
  if (spec.ipProto !== undefined) out.ipProto = ipProto(spec.ipProto, f('ipProto'));
  if (spec.sport !== undefined) out.sport = portRange(spec.sport, f('sport'));
  if (spec.dport !== undefined) out.dport = portRange(spec.dport, f('dport'));
  if (spec.invert !== undefined && typeof spec.invert !== 'boolean') invalidArgument(f('invert'), 'expected a boolean');
  if (spec.invert) out.flags = FIB_RULE_INVERT;
}

/** @internal family of a rule spec: explicit, else from src/dst, else undefined. */
export function selectorFamily(spec: IpRuleSelector & { family?: 4 | 6 }, field: string): 4 | 6 | undefined {
  const f = (k: string) => (field ? `${field}.${k}` : k);
  let fam: 4 | 6 | undefined;
  if (spec.family !== undefined) {
    if (spec.family !== 4 && spec.family !== 6) invalidArgument(f('family'), `expected 4 or 6, got ${String(spec.family)}`);
    fam = spec.family;
  }
  for (const k of ['src', 'dst'] as const) {
    if (spec[k] === undefined) continue;
    const c = parsePrefix(spec[k], f(k));
    if (fam !== undefined && c.family !== fam) invalidArgument(f(k), `${spec[k]} is IPv${c.family} but the rule is IPv${fam}`);
    fam = c.family;
  }
  return fam;
}

/** @internal validate a rule spec and turn it into the addon's form. */
export function normalizeRule(spec: IpRuleSpec, field = '', defaultProtocol = BPFKIT_ROUTE_PROTOCOL): NativeRule {
  const f = (k: string) => (field ? `${field}.${k}` : k);
  if (spec === null || typeof spec !== 'object') invalidArgument(field || 'rule', 'expected an object');
  for (const k of Object.keys(spec)) if (!RULE_KEYS.has(k)) invalidArgument(f(k), 'unknown rule field');
  if (spec.priority === undefined) {
    invalidArgument(f('priority'), 'is required: rules have no identity other than their fields, so bpfkit never lets the kernel pick one');
  }
  const family = selectorFamily(spec, field) ?? 4;
  const actionName = spec.action ?? 'table';
  const action = parseRuleAction(actionName, f('action'));
  const out: NativeRule = { family, priority: u32(spec.priority, f('priority')), action };
  if (actionName === 'table') {
    if (spec.table === undefined) invalidArgument(f('table'), "is required for action 'table'");
    out.table = parseTable(spec.table, f('table'));
  } else if (spec.table !== undefined) {
    invalidArgument(f('table'), `not allowed with action '${actionName}'`);
  }
  normalizeSelector(spec, field, family, out);
  out.protocol = spec.protocol === undefined ? defaultProtocol : parseProtocol(spec.protocol, f('protocol'));
  return out;
}

// ---- routes ------------------------------------------------------------------------

const ROUTE_KEYS = new Set(['dst', 'family', 'table', 'type', 'via', 'dev', 'onlink', 'nexthops', 'src', 'metric', 'tos', 'scope', 'protocol']);
const HOP_KEYS = new Set(['via', 'dev', 'weight', 'onlink']);

function hop(h: NextHop, field: string, family: 4 | 6, multipath: boolean): NativeNextHop {
  const f = (k: string) => (field ? `${field}.${k}` : k);
  if (h === null || typeof h !== 'object') invalidArgument(field || 'nexthop', 'expected an object');
  for (const k of Object.keys(h)) if (!HOP_KEYS.has(k)) invalidArgument(f(k), 'unknown next-hop field');
  const out: NativeNextHop = { weight: 1, flags: 0 };
  if (h.via !== undefined) out.via = gateway(h.via, f('via'), family);
  if (h.dev !== undefined) out.dev = device(h.dev, f('dev'));
  if (out.via === undefined && out.dev === undefined) invalidArgument(field || 'route', 'a next hop needs via, dev or both');
  if (h.weight !== undefined) {
    if (!multipath) invalidArgument(f('weight'), 'weights only apply to multipath routes (nexthops)');
    if (typeof h.weight !== 'number' || !Number.isInteger(h.weight) || h.weight < 1 || h.weight > 256) {
      invalidArgument(f('weight'), `expected 1 to 256, got ${String(h.weight)}`);
    }
    out.weight = h.weight;
  }
  if (h.onlink !== undefined && typeof h.onlink !== 'boolean') invalidArgument(f('onlink'), 'expected a boolean');
  if (h.onlink) {
    if (out.via === undefined || out.dev === undefined) invalidArgument(f('onlink'), 'onlink needs both via and dev');
    out.flags = RTNH_F_ONLINK;
  }
  return out;
}

/**
 * @internal validate a route spec and turn it into the addon's form. `forced` fixes
 * fields a caller owns (PolicyRoute: table and protocol); `partial` lets a delete name
 * a route by its identity alone.
 */
export function normalizeRoute(
  spec: IpRouteSpec,
  field = '',
  forced: { table?: number; protocol?: number; family?: 4 | 6; partial?: boolean } = {},
): NativeRoute {
  const f = (k: string) => (field ? `${field}.${k}` : k);
  if (spec === null || typeof spec !== 'object') invalidArgument(field || 'route', 'expected an object');
  for (const k of Object.keys(spec)) if (!ROUTE_KEYS.has(k)) invalidArgument(f(k), 'unknown route field');
  if (spec.family !== undefined && spec.family !== 4 && spec.family !== 6) invalidArgument(f('family'), 'expected 4 or 6');
  let family: 4 | 6;
  let dst: string;
  let dstLen: number;
  if (spec.dst === 'default') {
    family = spec.family ?? forced.family ?? (typeof spec.via === 'string' && spec.via.includes(':') ? 6 : 4);
    [dst, dstLen] = [family === 4 ? '0.0.0.0' : '::', 0];
  } else {
    const fast = fastV4(spec.dst, true);
    const c = fast ? { family: 4 as const, text: fast[0], prefixLen: fast[1] } : parsePrefix(spec.dst, f('dst'));
    if (spec.family !== undefined && c.family !== spec.family) invalidArgument(f('dst'), `${spec.dst} is IPv${c.family}, not IPv${spec.family}`);
    [family, dst, dstLen] = [c.family, 'text' in c ? c.text : addrText(c), c.prefixLen];
  }
  if (forced.family !== undefined && family !== forced.family) invalidArgument(f('dst'), `${spec.dst} is IPv${family}, but this rule is IPv${forced.family}`);
  const typeName = spec.type ?? 'unicast';
  const type = lookupName(ROUTE_TYPES, typeName);
  if (type === undefined) invalidArgument(f('type'), `unknown route type '${String(typeName)}' (${Object.keys(ROUTE_TYPES).join(', ')})`);
  let table: number;
  if (forced.table !== undefined) {
    if (spec.table !== undefined) invalidArgument(f('table'), "a PolicyRoute's routes always live in its own table; leave table out");
    table = forced.table;
  } else table = parseTable(spec.table ?? 'main', f('table'));
  let protocol: number;
  if (forced.protocol !== undefined) {
    if (spec.protocol !== undefined) invalidArgument(f('protocol'), "a PolicyRoute's routes always carry bpfkit's protocol; leave protocol out");
    protocol = forced.protocol;
  } else protocol = spec.protocol === undefined ? BPFKIT_ROUTE_PROTOCOL : parseProtocol(spec.protocol, f('protocol'));

  let hops: NativeNextHop[] = [];
  const single = spec.via !== undefined || spec.dev !== undefined || spec.onlink !== undefined;
  if (spec.nexthops !== undefined) {
    if (single) invalidArgument(f('nexthops'), 'give either via/dev/onlink or nexthops, not both');
    if (!Array.isArray(spec.nexthops) || spec.nexthops.length === 0) invalidArgument(f('nexthops'), 'expected a non-empty array');
    if (spec.nexthops.length > 256) invalidArgument(f('nexthops'), 'at most 256 next hops');
    const multi = spec.nexthops.length > 1;
    hops = spec.nexthops.map((h, i) => hop(h, `${f('nexthops')}[${i}]`, family, multi));
  } else if (single) {
    const one: NextHop = {};
    if (spec.via !== undefined) one.via = spec.via;
    if (spec.dev !== undefined) one.dev = spec.dev;
    if (spec.onlink !== undefined) one.onlink = spec.onlink;
    hops = [hop(one, field, family, false)];
  }
  if (forced.partial && hops.length === 0) {
    // a delete may name the route by its identity alone
  } else if (typeName === 'unicast' && hops.length === 0) {
    invalidArgument(field || 'route', 'a unicast route needs via, dev or nexthops');
  } else if (typeName === 'local') {
    if (hops.length !== 1 || hops[0].dev === undefined || hops[0].via !== undefined) invalidArgument(f('dev'), 'a local route needs dev (and no via)');
  } else if (typeName !== 'unicast' && hops.length > 0) {
    invalidArgument(f('type'), `a ${typeName} route has no next hop; leave via/dev/nexthops out`);
  }

  let scope: number;
  if (spec.scope !== undefined) {
    scope = typeof spec.scope === 'string' ? (lookupName(SCOPES, spec.scope) ?? -1) : spec.scope;
    if (!Number.isInteger(scope) || scope < 0 || scope > 254)
      invalidArgument(f('scope'), `expected global, site, link, host or 0-254, got ${String(spec.scope)}`);
    if (family === 6 && scope !== 0) invalidArgument(f('scope'), 'IPv6 routes have no scope (the kernel ignores it)');
  } else if (family === 6) scope = 0;
  else if (typeName === 'local') scope = SCOPES.host;
  else if (typeName === 'unicast' && hops.every((h) => h.via === undefined)) scope = SCOPES.link;
  else scope = 0;

  let metric = family === 6 ? 1024 : 0;
  if (spec.metric !== undefined) {
    u32(spec.metric, f('metric'));
    if (spec.metric !== 0 || family === 4) metric = spec.metric; // IPv6: 0 means the default 1024
  }
  let tos = 0;
  if (spec.tos !== undefined) {
    if (family === 6) invalidArgument(f('tos'), 'IPv6 routes cannot select on TOS');
    tos = parseTos(spec.tos, f('tos'));
  }
  const out: NativeRoute = { family, table, dst, dstLen, tos, metric, type, scope, protocol, nexthops: hops };
  if (spec.src !== undefined) out.prefsrc = gateway(spec.src, f('src'), family);
  return out;
}
