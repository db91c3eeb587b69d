/**
 * Routes (`ip route`) through the addon's libnl binding, and {@link PolicyRoute}: one
 * policy rule plus the routes of its table, applied idempotently and marked with
 * bpfkit's route protocol so they can be found again after a crash.
 */
import { BpfkitError, invalidArgument } from './errors.js';
import {
  BPFKIT_ROUTE_PROTOCOL,
  addrText,
  describeRule,
  fastV4,
  normalizeSelector,
  nl,
  nsArg,
  parsePrefix,
  parseProtocol,
  parseTable,
  parseTos,
  planRuleDeletes,
  ruleInfo,
  ruleKey,
  runAtomic,
  runBatch,
  safeRuleUndo,
  selectorFamily,
  setRouteDescriber,
  withAddedRules,
  type IpRuleInfo,
  type IpRuleSelector,
  type NativeNextHop,
  type NativeRoute,
  type NativeRule,
  type NetlinkOptions,
  type PlannedOp,
  type RouteProtocol,
  type RouteTable,
  type RuleAction,
} from './rule.js';
import { parseIPv4, parseIPv6 } from './codecs.js';

// ---- routes ------------------------------------------------------------------------

/** Route types (`ip route add <type> ...`). */
export type RouteType = 'unicast' | 'local' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
const TYPES: Record<RouteType, number> = { unicast: 1, local: 2, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9 };
const TYPE_NAMES: Record<number, string> = {
  1: 'unicast', 2: 'local', 3: 'broadcast', 4: 'anycast', 5: 'multicast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit', 9: 'throw',
};
/** Route scopes; 'global' is the kernel's RT_SCOPE_UNIVERSE. IPv6 routes are always global. */
export type RouteScope = 'global' | 'site' | 'link' | 'host' | number;
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254 };
const SCOPE_NAMES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
const RTNH_F_ONLINK = 4;

/** One next hop of a route. */
export interface NextHop {
  /** Gateway address (same family as the route). */
  via?: string;
  /** Output interface (name or index). */
  dev?: string | number;
  /** Multipath weight, 1-256 (default 1). */
  weight?: number;
  /** Treat the gateway as directly reachable on `dev` even without a matching prefix. */
  onlink?: boolean;
}

/** A route to add, replace or delete. */
export interface IpRouteSpec {
  /** Destination prefix ('198.18.0.0/24', '2001:db8::/32', '0.0.0.0/0'), or 'default' (with `family`, default 4). */
  dst: string;
  /** 4 or 6; inferred from `dst`. */
  family?: 4 | 6;
  /** Default 'main'. */
  table?: RouteTable;
  /** Default 'unicast'. */
  type?: RouteType;
  /** Gateway (single next hop). */
  via?: string;
  /** Output interface (single next hop). */
  dev?: string | number;
  onlink?: boolean;
  /** Several next hops (ECMP); excludes via/dev/onlink. */
  nexthops?: readonly NextHop[];
  /** Preferred source address for locally generated packets (`src`). */
  src?: string;
  /** Metric / priority (default 0 for IPv4, 1024 for IPv6, as the kernel does). */
  metric?: number;
  /** TOS (IPv4 only). */
  tos?: number;
  /** Default: 'host' for local routes, 'link' for unicast without a gateway, else 'global'. */
  scope?: RouteScope;
  /** Default bpfkit's ({@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** A next hop as the kernel reports it. */
export interface NextHopInfo {
  via?: string;
  dev?: string;
  ifindex?: number;
  weight: number;
  onlink: boolean;
}

/** A route as the kernel reports it. */
export interface IpRouteInfo {
  family: 4 | 6;
  table: number;
  dst: string;
  type: RouteType | 'broadcast' | 'anycast' | 'multicast' | `type ${number}`;
  protocol: number;
  scope: 'global' | 'site' | 'link' | 'host' | 'nowhere' | `scope ${number}`;
  metric: number;
  tos?: number;
  src?: string;
  /** Single-path routes: the gateway, interface and onlink flag. */
  via?: string;
  dev?: string;
  ifindex?: number;
  onlink?: boolean;
  /** Multipath routes: every next hop. */
  nexthops?: NextHopInfo[];
}

export interface IpRouteListOptions extends NetlinkOptions {
  /** 4 or 6 (default both). */
  family?: 4 | 6;
  /** A table, or 'all' (default 'main', like `ip route`). */
  table?: RouteTable | 'all';
  /** Only routes with this protocol, e.g. 'bpfkit'. */
  protocol?: RouteProtocol;
}

const ROUTE_KEYS = new Set(['dst', 'family', 'table', 'type', 'via', 'dev', 'onlink', 'nexthops', 'src', 'metric', 'tos', 'scope', 'protocol']);
const HOP_KEYS = new Set(['via', 'dev', 'weight', 'onlink']);

function gateway(v: unknown, field: string, family: 4 | 6): string {
  if (family === 4) {
    const fast = fastV4(v, false);
    if (fast) return fast[0];
  }
  const bin = typeof v === 'string' ? (family === 4 ? parseIPv4(v) : parseIPv6(v)) : null;
  if (!bin) invalidArgument(field, `expected an IPv${family} address (the route is IPv${family}), got ${String(v)}`);
  return addrText({ family, addr: bin, prefixLen: family === 4 ? 32 : 128 });
}

function device(v: unknown, field: string): string | number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v <= 0) invalidArgument(field, `interface index must be a positive integer, got ${v}`);
    return v;
  }
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 15 || /[\s/:]/.test(v)) {
    invalidArgument(field, `'${String(v)}' is not a valid interface name`);
  }
  return v;
}

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
 * fields a caller owns (PolicyRoute: table and protocol).
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
  const type = TYPES[typeName];
  if (type === undefined) invalidArgument(f('type'), `unknown route type '${String(typeName)}' (${Object.keys(TYPES).join(', ')})`);
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
    scope = typeof spec.scope === 'string' ? (SCOPES[spec.scope] ?? -1) : spec.scope;
    if (!Number.isInteger(scope) || scope < 0 || scope > 254) invalidArgument(f('scope'), `expected global, site, link, host or 0-254, got ${String(spec.scope)}`);
    if (family === 6 && scope !== 0) invalidArgument(f('scope'), 'IPv6 routes have no scope (the kernel ignores it)');
  } else if (family === 6) scope = 0;
  else if (typeName === 'local') scope = SCOPES.host;
  else if (typeName === 'unicast' && hops.every((h) => h.via === undefined)) scope = SCOPES.link;
  else scope = 0;

  let metric = family === 6 ? 1024 : 0;
  if (spec.metric !== undefined) {
    if (typeof spec.metric !== 'number' || !Number.isInteger(spec.metric) || spec.metric < 0 || spec.metric > 0xffffffff) {
      invalidArgument(f('metric'), `expected an integer from 0 to 4294967295, got ${String(spec.metric)}`);
    }
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

/** @internal the identity of a route: what the kernel looks routes up by. */
export function routeKey(r: Pick<NativeRoute, 'family' | 'table' | 'dst' | 'dstLen' | 'tos' | 'metric'>): string {
  return `${r.family}|${r.table}|${r.dst}/${r.dstLen}|${r.tos}|${r.metric}`;
}

function hopMatches(want: NativeNextHop, have: NativeNextHop, multipath: boolean): boolean {
  if ((want.via ?? '') !== (have.via ?? '')) return false;
  if (typeof want.dev === 'string' && have.dev !== want.dev) return false;
  if (typeof want.dev === 'number' && have.ifindex !== want.dev) return false;
  if (((want.flags ?? 0) & RTNH_F_ONLINK) !== ((have.flags ?? 0) & RTNH_F_ONLINK)) return false;
  return !multipath || (want.weight ?? 1) === (have.weight ?? 1);
}

/** @internal does the kernel's route `have` already say what `want` says? */
export function routeMatches(want: NativeRoute, have: NativeRoute): boolean {
  if (routeKey(want) !== routeKey(have) || want.type !== have.type || want.protocol !== have.protocol) return false;
  if (want.family === 4 && want.scope !== have.scope) return false;
  if ((want.prefsrc ?? '') !== (have.prefsrc ?? '')) return false;
  if (want.type !== TYPES.unicast && want.type !== TYPES.local) return true; // no next hop to compare
  return hopsMatch(want.nexthops, have.nexthops);
}

/** Same next hops, in any order (dev only compared where `want` names one). */
function hopsMatch(want: NativeNextHop[], have: NativeNextHop[]): boolean {
  if (want.length !== have.length) return false;
  const multipath = want.length > 1;
  if (!multipath) return hopMatches(want[0], have[0], false);
  const left = [...have];
  for (const w of want) {
    const i = left.findIndex((h) => hopMatches(w, h, multipath));
    if (i === -1) return false;
    left.splice(i, 1);
  }
  return true;
}

/** @internal a kernel route as a request that recreates it. */
function routeFromKernel(r: NativeRoute): NativeRoute {
  const multipath = r.nexthops.length > 1;
  const hops =
    r.type === TYPES.unicast || r.type === TYPES.local
      ? r.nexthops.map((h) => {
          const o: NativeNextHop = { weight: multipath ? (h.weight ?? 1) : 1, flags: (h.flags ?? 0) & RTNH_F_ONLINK };
          if (h.via) o.via = h.via;
          if (h.ifindex) o.dev = h.ifindex;
          return o;
        })
      : [];
  const o: NativeRoute = { ...r, nexthops: hops };
  delete o.flags;
  return o;
}

/**
 * @internal a delete request for the route with `r`'s key, type and protocol: the addon
 * sends only those (any scope, next hops not compared), so `r` itself serves.
 */
function routeDelete(r: NativeRoute): NativeRoute {
  return r;
}

/** @internal one-line description in `ip route` words. */
export function describeRoute(r: NativeRoute): string {
  const p: string[] = [];
  if (r.type !== TYPES.unicast) p.push(TYPE_NAMES[r.type] ?? `type ${r.type}`);
  p.push(r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`);
  if (r.nexthops.length === 1) {
    const h = r.nexthops[0];
    if (h.via) p.push(`via ${h.via}`);
    if (h.dev !== undefined) p.push(`dev ${h.dev}`);
  } else if (r.nexthops.length > 1) {
    p.push(`nexthops ${r.nexthops.map((h) => h.via ?? h.dev).join(',')}`);
  }
  p.push(`table ${r.table}`);
  if (r.metric) p.push(`metric ${r.metric}`);
  if (r.family === 6 && r.dstLen === 0) p.push('(IPv6)');
  return p.join(' ');
}

setRouteDescriber(describeRoute);

function routeInfo(r: NativeRoute): IpRouteInfo {
  const o: IpRouteInfo = {
    family: r.family,
    table: r.table,
    dst: `${r.dst}/${r.dstLen}`,
    type: (TYPE_NAMES[r.type] ?? `type ${r.type}`) as IpRouteInfo['type'],
    protocol: r.protocol,
    scope: (SCOPE_NAMES[r.scope] ?? `scope ${r.scope}`) as IpRouteInfo['scope'],
    metric: r.metric,
  };
  if (r.tos) o.tos = r.tos;
  if (r.prefsrc) o.src = r.prefsrc;
  const hopInfo = (h: NativeNextHop): NextHopInfo => {
    const x: NextHopInfo = { weight: h.weight ?? 1, onlink: ((h.flags ?? 0) & RTNH_F_ONLINK) !== 0 };
    if (h.via) x.via = h.via;
    if (typeof h.dev === 'string') x.dev = h.dev;
    if (h.ifindex) x.ifindex = h.ifindex;
    return x;
  };
  if (r.nexthops.length > 1) o.nexthops = r.nexthops.map(hopInfo);
  else if (r.nexthops.length === 1) {
    const h = hopInfo(r.nexthops[0]);
    if (h.via) o.via = h.via;
    if (h.dev) o.dev = h.dev;
    if (h.ifindex) o.ifindex = h.ifindex;
    o.onlink = h.onlink;
  }
  return o;
}

/** @internal routes of one family, one table (0 = all), one protocol (-1 = all). */
async function dumpRoutes(ns: string, family: 4 | 6, table: number, protocol = -1): Promise<NativeRoute[]> {
  return nl().nlRoutes(family, table, protocol, ns);
}

type TableRef = { family: 4 | 6; table: number };
/** Routes grouped by `family|table`, and which tables / whole families the dump covered. */
interface TableDump {
  byTable: Map<string, NativeRoute[]>;
  covered: Set<string>;
  full: Set<4 | 6>;
}

/**
 * @internal current routes of a set of (family, table) pairs. A few tables: one
 * kernel-filtered dump each; many (or `fullFamilies`): one dump of the whole family.
 */
async function dumpTables(ns: string, tables: TableRef[], fullFamilies: (4 | 6)[] = []): Promise<TableDump> {
  const out: TableDump = { byTable: new Map(), covered: new Set(), full: new Set(fullFamilies) };
  const perFamily = new Map<4 | 6, Set<number>>();
  for (const t of tables) {
    let s = perFamily.get(t.family);
    if (!s) perFamily.set(t.family, (s = new Set()));
    s.add(t.table);
  }
  for (const [fam, tbls] of perFamily) if (tbls.size > 8) out.full.add(fam);
  const jobs: Promise<NativeRoute[]>[] = [];
  for (const fam of out.full) jobs.push(dumpRoutes(ns, fam, 0));
  for (const [fam, tbls] of perFamily) {
    if (out.full.has(fam)) continue;
    for (const t of tbls) {
      out.covered.add(`${fam}|${t}`);
      jobs.push(dumpRoutes(ns, fam, t));
    }
  }
  for (const list of await Promise.all(jobs)) {
    for (const r of list) {
      const k = `${r.family}|${r.table}`;
      const arr = out.byTable.get(k);
      if (arr) arr.push(r);
      else out.byTable.set(k, [r]);
    }
  }
  return out;
}

/**
 * @internal a dump started early (in parallel with validation; it only reads), topped
 * up with the tables it turned out not to cover. Callers attach `.catch` to the early
 * promise so a validation error thrown meanwhile leaves no unhandled rejection.
 */
async function ensureTables(ns: string, early: Promise<TableDump>, tables: TableRef[]): Promise<Map<string, NativeRoute[]>> {
  const d = await early;
  const missing = tables.filter((t) => !d.full.has(t.family) && !d.covered.has(`${t.family}|${t.table}`));
  if (missing.length) {
    const more = await dumpTables(ns, missing);
    for (const [k, v] of more.byTable) if (!d.covered.has(k) && !d.full.has(v[0].family)) d.byTable.set(k, v);
    for (const k of more.covered) d.covered.add(k);
    for (const f of more.full) d.full.add(f);
  }
  return d.byTable;
}

/** @internal start dumping what a batch of route specs probably needs (guessed cheaply). */
function prefetch(ns: string, specs: readonly IpRouteSpec[]): Promise<TableDump> {
  const guess: TableRef[] = [];
  for (const s of specs) {
    if (s === null || typeof s !== 'object') continue;
    const table = s.table === undefined ? 254 : typeof s.table === 'number' ? s.table : (({ main: 254, local: 255, default: 253 }) as Record<string, number>)[s.table];
    if (table !== undefined) guess.push({ family: routeFamily(s), table });
  }
  const p = dumpTables(ns, guess);
  p.catch(() => undefined);
  return p;
}

function batchList<T>(specs: T | readonly T[]): { list: T[]; field: (i: number) => string } {
  const many = Array.isArray(specs);
  return { list: many ? [...(specs as readonly T[])] : [specs as T], field: (i) => (many ? `routes[${i}]` : '') };
}

/**
 * Routes in any table (`ip route`), IPv4 and IPv6. Batches are all-or-nothing.
 *
 * ```ts
 * await IpRoute.add({ dst: '198.18.10.0/24', via: '198.18.2.2', table: 100 }, { netns: 'blue' });
 * await IpRoute.replace({ dst: '198.18.10.0/24', via: '198.18.3.2', table: 100 }, { netns: 'blue' });
 * await IpRoute.delete({ dst: '198.18.10.0/24', table: 100 }, { netns: 'blue' });
 * ```
 *
 * A route is identified by family, table, destination, TOS and metric (what the kernel
 * looks it up by); `replace` and `delete` act on the route with that identity.
 */
export class IpRoute {
  private constructor() {}

  /** Routes of a table (default 'main'; 'all' for every table), both families unless `family`. */
  static async list(opts: IpRouteListOptions = {}): Promise<IpRouteInfo[]> {
    const ns = nsArg(opts.netns);
    if (opts.family !== undefined && opts.family !== 4 && opts.family !== 6) invalidArgument('family', 'expected 4 or 6');
    const table = opts.table === 'all' ? 0 : parseTable(opts.table ?? 'main', 'table');
    const proto = opts.protocol === undefined ? -1 : parseProtocol(opts.protocol, 'protocol');
    const fams: (4 | 6)[] = opts.family ? [opts.family] : [4, 6];
    const lists = await Promise.all(fams.map((fam) => dumpRoutes(ns, fam, table, proto)));
    return lists.flat().map(routeInfo);
  }

  /** Add routes (exclusive: a route with the same identity is ERR_EXISTS). All-or-nothing. */
  static async add(specs: IpRouteSpec | readonly IpRouteSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = nsArg(opts.netns);
    const { list, field } = batchList(specs);
    const seen = new Map<string, number>();
    const plan = list.map((s, i): PlannedOp => {
      const r = normalizeRoute(s, field(i));
      const k = routeKey(r);
      if (seen.has(k)) invalidArgument(field(i), `same destination, table, tos and metric as routes[${seen.get(k)}]`);
      seen.set(k, i);
      return planned({ kind: 'route', cmd: 'add', spec: r }, field(i), () => ({ kind: 'route', cmd: 'delete', spec: routeDelete(r) }));
    });
    await runAtomic(ns, plan);
  }

  /**
   * Create or overwrite the routes with these identities. All-or-nothing: on failure
   * the routes that were replaced get their previous contents back.
   */
  static async replace(specs: IpRouteSpec | readonly IpRouteSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = nsArg(opts.netns);
    const { list, field } = batchList(specs);
    const early = prefetch(ns, list);
    const wanted = list.map((s, i) => normalizeRoute(s, field(i)));
    const seen = new Map<string, number>();
    wanted.forEach((r, i) => {
      const k = routeKey(r);
      if (seen.has(k)) invalidArgument(field(i), `same destination, table, tos and metric as routes[${seen.get(k)}]`);
      seen.set(k, i);
    });
    const current = await ensureTables(ns, early, wanted.map((r) => ({ family: r.family, table: r.table })));
    const byKey = new Map<string, NativeRoute>();
    for (const arr of current.values()) for (const r of arr) byKey.set(routeKey(r), r);
    const plan = wanted.map((r, i) => {
      const old = byKey.get(routeKey(r));
      const undo = (): PlannedOp['op'] => (old ? { kind: 'route', cmd: 'replace', spec: routeFromKernel(old) } : { kind: 'route', cmd: 'delete', spec: routeDelete(r) });
      return planned({ kind: 'route', cmd: 'replace', spec: r }, field(i), undo);
    });
    await runAtomic(ns, plan);
  }

  /**
   * Delete the routes with these identities (family, table, dst, tos, metric). Other
   * fields given (via, dev, type, protocol...) must match the kernel's route, else
   * ERR_NOT_FOUND; a missing route is ERR_NOT_FOUND before anything changes.
   * `protocol` left out matches any protocol here. All-or-nothing.
   */
  static async delete(specs: IpRouteSpec | readonly IpRouteSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = nsArg(opts.netns);
    const { list, field } = batchList(specs);
    const early = prefetch(ns, list);
    const wanted = list.map((s, i) => {
      const anyHop = s.via === undefined && s.dev === undefined && s.nexthops === undefined && s.onlink === undefined;
      const r = normalizeRoute(s, field(i), { partial: true });
      return { r, field: field(i), anyHop, anyType: s.type === undefined, anyProto: s.protocol === undefined, anyScope: s.scope === undefined };
    });
    const current = await ensureTables(ns, early, wanted.map((w) => ({ family: w.r.family, table: w.r.table })));
    const byKey = new Map<string, NativeRoute>();
    for (const arr of current.values()) for (const r of arr) byKey.set(routeKey(r), r);
    const plan = wanted.map((w) => {
      const have = byKey.get(routeKey(w.r));
      // every field the caller gave must match the kernel's route
      const same =
        have !== undefined &&
        (w.anyType || w.r.type === have.type) &&
        (w.anyProto || w.r.protocol === have.protocol) &&
        (w.anyScope || w.r.family === 6 || w.r.scope === have.scope) &&
        (w.r.prefsrc === undefined || w.r.prefsrc === have.prefsrc) &&
        (w.anyHop || have.type !== TYPES.unicast || hopsMatch(w.r.nexthops, have.nexthops));
      if (!have || !same) {
        const what = describeRoute(w.r);
        const msg = have ? `the route to ${w.r.dst}/${w.r.dstLen} in table ${w.r.table} differs from ${what}` : `no such route: ${what}`;
        throw new BpfkitError('ERR_NOT_FOUND', `${w.field ? `${w.field}: ` : ''}${msg}`, w.field ? { field: w.field } : {});
      }
      return planned({ kind: 'route', cmd: 'delete', spec: routeDelete(have) }, w.field, () => ({ kind: 'route', cmd: 'add', spec: routeFromKernel(have) }));
    });
    await runAtomic(ns, plan);
  }
}

function planned(op: PlannedOp['op'], field: string, undo?: () => PlannedOp['op']): PlannedOp {
  const p: PlannedOp = { op };
  if (field) p.field = field;
  if (undo) p.undo = undo;
  return p;
}

// ---- PolicyRoute -------------------------------------------------------------------

/** A route of a PolicyRoute: an {@link IpRouteSpec} without table and protocol (both fixed). */
export type PolicyRouteEntry = Omit<IpRouteSpec, 'table' | 'protocol'>;

/**
 * One policy rule plus the routes of its table: "packets matching these selectors are
 * routed by these routes".
 */
export interface PolicyRouteSpec extends IpRuleSelector {
  /** Rule priority (required; 1-32765 keeps it before the main table's rule). */
  priority: number;
  /** Table the rule looks up and the routes live in (required for action 'table'). */
  table?: number;
  /** Default 'table'; 'blackhole' / 'unreachable' / 'prohibit' rules have no routes. */
  action?: RuleAction;
  /**
   * 4 or 6. Default: from src/dst, else from the routes (a rule per family when the
   * routes have both), else 4.
   */
  family?: 4 | 6;
  /** Routes of the table. */
  routes?: readonly PolicyRouteEntry[];
}

export interface PolicyRouteOptions extends NetlinkOptions {
  /** Protocol number marking bpfkit's rules and routes (default {@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** What an apply/remove/cleanup changed in the kernel. */
export interface PolicyRouteChanges {
  rulesAdded: number;
  rulesDeleted: number;
  rulesUnchanged: number;
  routesAdded: number;
  routesReplaced: number;
  routesDeleted: number;
  routesUnchanged: number;
}

/** bpfkit's rule (or an orphaned table) with the bpfkit routes of its table. */
export interface PolicyRouteState {
  family: 4 | 6;
  /** null: bpfkit routes in a table no bpfkit rule points to (e.g. after a crash). */
  rule: IpRuleInfo | null;
  table: number | null;
  routes: IpRouteInfo[];
}

interface Unit {
  field: string;
  family: 4 | 6;
  rule: NativeRule;
  table: number | null;
  routes: NativeRoute[];
  routeFields: string[];
}

const POLICY_KEYS = new Set(['priority', 'table', 'action', 'family', 'routes', 'fwmark', 'fwmask', 'iif', 'oif', 'src', 'dst', 'tos', 'ipProto', 'sport', 'dport', 'invert']);
const RESERVED_TABLES = new Set([0, 253, 254, 255]);

function noChanges(): PolicyRouteChanges {
  return { rulesAdded: 0, rulesDeleted: 0, rulesUnchanged: 0, routesAdded: 0, routesReplaced: 0, routesDeleted: 0, routesUnchanged: 0 };
}

/**
 * The family a PolicyRoute entry belongs to (cheap: normalizeRoute validates it fully
 * afterwards): 'default' follows `family`/`via`, anything with ':' is IPv6.
 */
function routeFamily(r: PolicyRouteEntry | IpRouteSpec): 4 | 6 {
  if (r === null || typeof r !== 'object') return 4;
  if (r.family === 4 || r.family === 6) return r.family;
  if (r.dst === 'default') return typeof r.via === 'string' && r.via.includes(':') ? 6 : 4;
  return typeof r.dst === 'string' && r.dst.includes(':') ? 6 : 4;
}

/** Validate PolicyRoute specs into per-family units (rule + routes), before any syscall. */
function expand(specs: readonly PolicyRouteSpec[], many: boolean, protocol: number, withRoutes = true): Unit[] {
  const units: Unit[] = [];
  specs.forEach((spec, si) => {
    const field = many ? `policies[${si}]` : '';
    const f = (k: string) => (field ? `${field}.${k}` : k);
    if (spec === null || typeof spec !== 'object') invalidArgument(field || 'policy', 'expected an object');
    for (const k of Object.keys(spec)) if (!POLICY_KEYS.has(k)) invalidArgument(f(k), 'unknown PolicyRoute field');
    if (spec.priority === undefined) invalidArgument(f('priority'), 'is required: rules have no identity other than their fields');
    const actionName = spec.action ?? 'table';
    const action = { table: 1, blackhole: 6, unreachable: 7, prohibit: 8 }[actionName];
    if (action === undefined) invalidArgument(f('action'), `unknown action '${String(actionName)}' (table, blackhole, unreachable, prohibit)`);
    let table: number | null = null;
    if (actionName === 'table') {
      if (spec.table === undefined) invalidArgument(f('table'), "is required for action 'table'");
      table = parseTable(spec.table, f('table'));
    } else if (spec.table !== undefined) invalidArgument(f('table'), `not allowed with action '${actionName}'`);
    const routes = spec.routes ?? [];
    if (!Array.isArray(routes)) invalidArgument(f('routes'), 'expected an array');
    if (routes.length && table === null) invalidArgument(f('routes'), `a '${actionName}' rule looks nothing up, so it has no routes`);
    if (routes.length && table !== null && RESERVED_TABLES.has(table)) {
      invalidArgument(f('table'), `table ${table} is the kernel's ${table === 254 ? 'main' : table === 255 ? 'local' : 'default'} table; a PolicyRoute with routes needs a table of its own`);
    }
    let families: (4 | 6)[];
    const fromSel = selectorFamily(spec, field);
    if (fromSel !== undefined) families = [fromSel];
    else {
      const fams = new Set<4 | 6>(routes.map(routeFamily));
      families = fams.size ? [...fams].sort() : [4];
    }
    for (const family of families) {
      const rule: NativeRule = { family, priority: 0, action, protocol };
      if (typeof spec.priority !== 'number' || !Number.isInteger(spec.priority) || spec.priority < 0 || spec.priority > 0xffffffff) {
        invalidArgument(f('priority'), `expected an integer from 0 to 4294967295, got ${String(spec.priority)}`);
      }
      rule.priority = spec.priority;
      if (table !== null) rule.table = table;
      normalizeSelector(spec, field, family, rule);
      const unitRoutes: NativeRoute[] = [];
      const routeFields: string[] = [];
      const seen = new Map<string, string>();
      routes.forEach((r, i) => {
        if (!withRoutes) return; // remove() only needs the rule, the table and the families
        const rf = `${f('routes')}[${i}]`;
        const fam = routeFamily(r);
        if (fam !== family) {
          if (fromSel !== undefined || spec.family !== undefined) invalidArgument(`${rf}.dst`, `is IPv${fam}, but the rule is IPv${family}`);
          return; // belongs to the other family's unit
        }
        const nr = normalizeRoute(r as IpRouteSpec, rf, { table: table as number, protocol, family });
        const k = routeKey(nr);
        if (seen.has(k)) invalidArgument(rf, `same destination, tos and metric as ${seen.get(k)}`);
        seen.set(k, rf);
        unitRoutes.push(nr);
        routeFields.push(rf);
      });
      units.push({ field, family, rule, table, routes: unitRoutes, routeFields });
    }
  });
  // Units sharing a table must agree on its routes; two units with the same rule
  // identity (family, priority, table/action) would undo each other.
  const tables = new Map<string, Unit>();
  const idents = new Map<string, Unit>();
  for (const u of units) {
    const id = `${u.family}|${u.rule.priority}|${u.rule.action}|${u.rule.table ?? 0}`;
    const prev = idents.get(id);
    if (prev) invalidArgument(u.field || 'policies', `same priority, family and table as ${prev.field || 'another policy'}`);
    idents.set(id, u);
    if (u.table === null || !withRoutes) continue;
    const tk = `${u.family}|${u.table}`;
    const other = tables.get(tk);
    if (!other) {
      tables.set(tk, u);
      continue;
    }
    const a = other.routes.map(routeKey).sort().join(',');
    const b = u.routes.map(routeKey).sort().join(',');
    if (a !== b || !u.routes.every((r) => other.routes.some((o) => routeMatches(r, o)))) {
      invalidArgument(u.field || 'policies', `shares table ${u.table} with ${other.field} but declares different routes`);
    }
  }
  return units;
}

/** bpfkit rule identity for apply(): a changed selector at the same place replaces the old rule. */
function ruleSlot(r: NativeRule): string {
  return `${r.family}|${r.priority}|${r.action}|${r.table ?? 0}|${r.protocol ?? 0}`;
}

/**
 * Linux policy routing as one unit: a rule ("packets with fwmark 0x10 ...") plus the
 * routes of the table it looks up ("... go via 198.18.2.2").
 *
 * ```ts
 * await PolicyRoute.apply({ priority: 1000, fwmark: 0x10, table: 100, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] });
 * ```
 *
 * - `apply()` is idempotent: it adds what is missing, replaces what differs, leaves what
 *   matches, so applying twice changes nothing. Routes go in before the rule, so the
 *   rule never points at a half-filled table; if anything fails, what this call changed
 *   is undone.
 * - Everything bpfkit creates carries protocol {@link BPFKIT_ROUTE_PROTOCOL}; objects
 *   with another protocol are never modified or deleted (a conflicting route is
 *   ERR_EXISTS).
 * - The table belongs to the PolicyRoute: bpfkit routes in it that are not in `routes`
 *   are deleted by apply() (so removing a route from the spec removes it from the
 *   kernel). A bpfkit rule at the same family, priority and table with different
 *   selectors is the previous version of this PolicyRoute and is replaced.
 */
export class PolicyRoute {
  /** The spec as given. */
  readonly spec: PolicyRouteSpec;
  /** What the apply() that returned this object changed. */
  readonly changes: PolicyRouteChanges;
  readonly #opts: PolicyRouteOptions;

  private constructor(spec: PolicyRouteSpec, opts: PolicyRouteOptions, changes: PolicyRouteChanges) {
    this.spec = spec;
    this.#opts = { ...opts };
    this.changes = changes;
  }

  /** Make the kernel match `spec` (idempotent). Returns a handle whose remove() undoes it. */
  static async apply(spec: PolicyRouteSpec, opts: PolicyRouteOptions = {}): Promise<PolicyRoute> {
    const ns = nsArg(opts.netns);
    const proto = policyProtocol(opts);
    const units = expand([spec], false, proto);
    const changes = await applyUnits(units, ns, proto, await snapshot(ns, units));
    return new PolicyRoute(spec, opts, changes);
  }

  /** apply() for several PolicyRoutes in one go (one dump, one batch; all-or-nothing). */
  static async applyAll(specs: readonly PolicyRouteSpec[], opts: PolicyRouteOptions = {}): Promise<PolicyRouteChanges> {
    if (!Array.isArray(specs)) invalidArgument('policies', 'expected an array');
    const proto = policyProtocol(opts);
    const ns = nsArg(opts.netns);
    const early = earlySnapshot(ns, specs);
    const units = expand(specs, true, proto);
    return applyUnits(units, ns, proto, await snapshot(ns, units, early));
  }

  /**
   * Remove what apply(spec) created: the rule, and the bpfkit routes of its table
   * (kept while another bpfkit rule still looks that table up). Only the rule part,
   * the table and the families of `routes` are used. Missing pieces are fine: removing
   * twice changes nothing the second time.
   */
  static async remove(specs: PolicyRouteSpec | readonly PolicyRouteSpec[], opts: PolicyRouteOptions = {}): Promise<PolicyRouteChanges> {
    const many = Array.isArray(specs);
    const proto = policyProtocol(opts);
    const list = many ? (specs as PolicyRouteSpec[]) : [specs as PolicyRouteSpec];
    const ns = nsArg(opts.netns);
    const early = earlySnapshot(ns, list);
    const units = expand(list, many, proto, false);
    return removeUnits(units, ns, proto, await snapshot(ns, units, early));
  }

  /** bpfkit's rules with the bpfkit routes of their tables, plus orphaned bpfkit tables. */
  static async list(opts: PolicyRouteOptions = {}): Promise<PolicyRouteState[]> {
    const ns = nsArg(opts.netns);
    const proto = policyProtocol(opts);
    const [rules, routes4, routes6] = await Promise.all([nl().nlRules(0, ns), dumpRoutes(ns, 4, 0, proto), dumpRoutes(ns, 6, 0, proto)]);
    const routes = [...routes4, ...routes6];
    const out: PolicyRouteState[] = [];
    const claimed = new Set<string>();
    for (const r of rules) {
      if (r.protocol !== proto) continue;
      const table = r.action === 1 && r.table ? r.table : null;
      const mine = table === null ? [] : routes.filter((x) => x.family === r.family && x.table === table);
      if (table !== null) claimed.add(`${r.family}|${table}`);
      out.push({ family: r.family, rule: ruleInfo(r), table, routes: mine.map(routeInfo) });
    }
    const orphans = new Map<string, NativeRoute[]>();
    for (const x of routes) {
      const k = `${x.family}|${x.table}`;
      if (claimed.has(k)) continue;
      let arr = orphans.get(k);
      if (!arr) orphans.set(k, (arr = []));
      arr.push(x);
    }
    for (const arr of orphans.values()) out.push({ family: arr[0].family, rule: null, table: arr[0].table, routes: arr.map(routeInfo) });
    return out;
  }

  /**
   * Delete every rule and route carrying bpfkit's protocol in the namespace (both
   * families, all tables): recovery after a crash. Nothing else is touched.
   */
  static async cleanup(opts: PolicyRouteOptions = {}): Promise<PolicyRouteChanges> {
    const ns = nsArg(opts.netns);
    const proto = policyProtocol(opts);
    const [rules, routes4, routes6] = await Promise.all([nl().nlRules(0, ns), dumpRoutes(ns, 4, 0, proto), dumpRoutes(ns, 6, 0, proto)]);
    const mine = rules.filter((r) => r.protocol === proto);
    const plan = planRuleDeletes(rules, mine.map((rule) => ({ rule })));
    for (const r of [...routes4, ...routes6]) plan.push(planned({ kind: 'route', cmd: 'delete', spec: routeDelete(r) }, ''));
    const res = await runBatch(ns, plan);
    const failures = res.failures.filter((x) => x.error.code !== 'ERR_NOT_FOUND');
    if (failures.length) throw failures[0].error;
    const changes = noChanges();
    for (const p of res.applied) p.op.kind === 'rule' ? changes.rulesDeleted++ : changes.routesDeleted++;
    return changes;
  }

  /** Remove what this PolicyRoute's apply() created (see {@link PolicyRoute.remove}). */
  async remove(): Promise<PolicyRouteChanges> {
    return PolicyRoute.remove(this.spec, this.#opts);
  }
}

function policyProtocol(opts: PolicyRouteOptions): number {
  const p = opts.protocol === undefined ? BPFKIT_ROUTE_PROTOCOL : parseProtocol(opts.protocol, 'protocol');
  if (p <= 4) invalidArgument('protocol', `${p} is reserved for the kernel and administrators; pick a number of bpfkit's own`);
  return p;
}

interface Snapshot {
  rules: NativeRule[];
  tables: Map<string, NativeRoute[]>;
}
type EarlySnapshot = { rules: Promise<NativeRule[]>; routes: Promise<TableDump> } | null;

/**
 * @internal for big batches, start the dumps (read-only) while the specs are validated:
 * with more than 8 tables they are whole-family dumps anyway.
 */
function earlySnapshot(ns: string, specs: readonly PolicyRouteSpec[]): EarlySnapshot {
  if (specs.length <= 8) return null;
  const e = { rules: nl().nlRules(0, ns), routes: dumpTables(ns, [], [4, 6]) };
  e.rules.catch(() => undefined);
  e.routes.catch(() => undefined);
  return e;
}

async function snapshot(ns: string, units: Unit[], early: EarlySnapshot = null): Promise<Snapshot> {
  const tables = units.filter((u) => u.table !== null).map((u) => ({ family: u.family, table: u.table as number }));
  const [rules, byTable] = await Promise.all([
    early ? early.rules : nl().nlRules(0, ns),
    ensureTables(ns, early ? early.routes : dumpTables(ns, tables), tables),
  ]);
  return { rules, tables: byTable };
}

async function applyUnits(units: Unit[], ns: string, proto: number, snap: Snapshot): Promise<PolicyRouteChanges> {
  const changes = noChanges();
  const { rules, tables } = snap;
  const phaseA: PlannedOp[] = [];
  const phaseB: PlannedOp[] = [];
  const doneTables = new Set<string>();
  // routes first: the rule must never point into a half-filled table
  for (const u of units) {
    if (u.table === null) continue;
    const tk = `${u.family}|${u.table}`;
    if (doneTables.has(tk)) continue;
    doneTables.add(tk);
    const existing = tables.get(tk) ?? [];
    const byKey = new Map(existing.map((r) => [routeKey(r), r]));
    const wanted = new Set<string>();
    u.routes.forEach((r, i) => {
      const k = routeKey(r);
      wanted.add(k);
      const have = byKey.get(k);
      const field = u.routeFields[i];
      if (!have) {
        changes.routesAdded++;
        phaseA.push(planned({ kind: 'route', cmd: 'add', spec: r }, field, () => ({ kind: 'route', cmd: 'delete', spec: routeDelete(r) })));
      } else if (have.protocol !== proto) {
        throw new BpfkitError(
          'ERR_EXISTS',
          `${field}: table ${u.table} already has a route to ${r.dst}/${r.dstLen} (metric ${r.metric}) that bpfkit did not create ` +
            `(protocol ${have.protocol}); bpfkit leaves it alone: delete it or pick another table`,
          { field, errno: 17, details: { existing: routeInfo(have) } },
        );
      } else if (routeMatches(r, have)) {
        changes.routesUnchanged++;
      } else {
        changes.routesReplaced++;
        phaseA.push(planned({ kind: 'route', cmd: 'replace', spec: r }, field, () => ({ kind: 'route', cmd: 'replace', spec: routeFromKernel(have) })));
      }
    });
    for (const have of existing) {
      if (have.protocol !== proto || wanted.has(routeKey(have))) continue;
      changes.routesDeleted++;
      phaseB.push(planned({ kind: 'route', cmd: 'delete', spec: routeDelete(have) }, u.field, () => ({ kind: 'route', cmd: 'add', spec: routeFromKernel(have) })));
    }
  }
  const present = new Set(rules.map(ruleKey));
  const bySlot = new Map<string, NativeRule[]>();
  for (const r of rules) {
    if (r.protocol !== proto) continue;
    const slot = ruleSlot(r);
    const arr = bySlot.get(slot);
    if (arr) arr.push(r);
    else bySlot.set(slot, [r]);
  }
  const added: NativeRule[] = [];
  const stale: { rule: NativeRule; field?: string }[] = [];
  const staleSeen = new Set<NativeRule>();
  for (const u of units) {
    const k = ruleKey(u.rule);
    if (present.has(k)) changes.rulesUnchanged++;
    else {
      changes.rulesAdded++;
      added.push(u.rule);
      phaseA.push(planned({ kind: 'rule', cmd: 'add', spec: u.rule }, u.field, () => ({ kind: 'rule', cmd: 'delete', spec: u.rule })));
    }
    // the previous version of this PolicyRoute: bpfkit's rule in the same slot
    for (const r of bySlot.get(ruleSlot(u.rule)) ?? []) {
      if (ruleKey(r) === k || staleSeen.has(r)) continue;
      staleSeen.add(r);
      stale.push(u.field ? { rule: r, field: u.field } : { rule: r });
    }
  }
  await runAtomic(ns, phaseA, (undo) => safeRuleUndo(ns, undo));
  // Phase B only removes leftovers: the new state is already complete.
  phaseB.unshift(...planRuleDeletes(withAddedRules(rules, added), stale));
  changes.rulesDeleted += stale.length;
  const res = await runBatch(ns, phaseB);
  const failures = res.failures.filter((x) => x.error.code !== 'ERR_NOT_FOUND');
  if (failures.length) throw failures[0].error;
  return changes;
}

async function removeUnits(units: Unit[], ns: string, proto: number, snap: Snapshot): Promise<PolicyRouteChanges> {
  const changes = noChanges();
  const { rules, tables } = snap;
  const present = new Set(rules.map(ruleKey));
  const removing = new Set<string>();
  const targets: { rule: NativeRule; field?: string }[] = [];
  for (const u of units) {
    const k = ruleKey(u.rule);
    if (!present.has(k) || removing.has(k)) continue;
    removing.add(k);
    targets.push(u.field ? { rule: u.rule, field: u.field } : { rule: u.rule });
  }
  // rules first (stop steering), then the routes of tables no remaining bpfkit rule uses
  const plan = planRuleDeletes(rules, targets);
  changes.rulesDeleted = plan.length;
  const stillUsed = new Set(
    rules.filter((r) => r.protocol === proto && r.action === 1 && !removing.has(ruleKey(r))).map((r) => `${r.family}|${r.table}`),
  );
  const doneTables = new Set<string>();
  for (const u of units) {
    if (u.table === null) continue;
    const tk = `${u.family}|${u.table}`;
    if (doneTables.has(tk) || stillUsed.has(tk)) continue;
    doneTables.add(tk);
    for (const have of tables.get(tk) ?? []) {
      if (have.protocol !== proto) continue;
      changes.routesDeleted++;
      plan.push(planned({ kind: 'route', cmd: 'delete', spec: routeDelete(have) }, u.field, () => ({ kind: 'route', cmd: 'add', spec: routeFromKernel(have) })));
    }
  }
  await runAtomic(ns, plan, (undo) => Promise.resolve({ plan: undo, stuck: [] }));
  return changes;
}

export {
  BPFKIT_ROUTE_PROTOCOL,
  IpRule,
  type IpProto,
  type IpRuleInfo,
  type IpRuleListOptions,
  type IpRuleSelector,
  type IpRuleSpec,
  type NetlinkOptions,
  type NetnsTarget,
  type PortRange,
  type RouteProtocol,
  type RouteTable,
  type RuleAction,
} from './rule.js';
