/**
 * Routes (`ip route`): {@link IpRoute}, and what PolicyRoute reuses: route identity and
 * comparison, `ip route`-style descriptions, and table dumps.
 */
import { BpfkitError, invalidArgument } from '../core/errors.js';
import type { NativeNextHop, NativeRoute } from '../core/native.js';
import { netnsPath } from '../core/net/netns.js';
import { ROUTE_TYPE_NAMES, ROUTE_TYPES, RTNH_F_ONLINK, SCOPE_NAMES, TABLE_NAMES, lookupName } from './names.js';
import { nl, runAtomic, type PlannedOp } from './netlink.js';
import type { IpRouteInfo, IpRouteListOptions, IpRouteSpec, NetlinkOptions, NextHopInfo } from './types.js';
import { normalizeRoute, parseProtocol, parseTable } from './validate.js';

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
  if (want.type !== ROUTE_TYPES.unicast && want.type !== ROUTE_TYPES.local) return true; // no next hop to compare
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
export function routeFromKernel(r: NativeRoute): NativeRoute {
  const multipath = r.nexthops.length > 1;
  const hops =
    r.type === ROUTE_TYPES.unicast || r.type === ROUTE_TYPES.local
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
export function routeDelete(r: NativeRoute): NativeRoute {
  return r;
}

/** @internal one-line description in `ip route` words. */
export function describeRoute(r: NativeRoute): string {
  const p: string[] = [];
  if (r.type !== ROUTE_TYPES.unicast) p.push(ROUTE_TYPE_NAMES[r.type] ?? `type ${r.type}`);
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

/** @internal kernel form -> public form. */
export function routeInfo(r: NativeRoute): IpRouteInfo {
  const o: IpRouteInfo = {
    family: r.family,
    table: r.table,
    dst: `${r.dst}/${r.dstLen}`,
    type: (ROUTE_TYPE_NAMES[r.type] ?? `type ${r.type}`) as IpRouteInfo['type'],
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
export async function dumpRoutes(ns: string | undefined, family: 4 | 6, table: number, protocol = -1): Promise<NativeRoute[]> {
  return nl().nlRoutes(family, table, protocol, ns);
}

/** @internal */
export type TableRef = { family: 4 | 6; table: number };
/** @internal routes grouped by `family|table`, and which tables / whole families the dump covered. */
export interface TableDump {
  byTable: Map<string, NativeRoute[]>;
  covered: Set<string>;
  full: Set<4 | 6>;
}

/**
 * @internal current routes of a set of (family, table) pairs. A few tables: one
 * kernel-filtered dump each; many (or `fullFamilies`): one dump of the whole family.
 */
export async function dumpTables(ns: string | undefined, tables: TableRef[], fullFamilies: (4 | 6)[] = []): Promise<TableDump> {
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
export async function ensureTables(ns: string | undefined, early: Promise<TableDump>, tables: TableRef[]): Promise<Map<string, NativeRoute[]>> {
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
function prefetch(ns: string | undefined, specs: readonly IpRouteSpec[]): Promise<TableDump> {
  const guess: TableRef[] = [];
  for (const s of specs) {
    if (s === null || typeof s !== 'object') continue;
    const table = s.table === undefined ? TABLE_NAMES.main : typeof s.table === 'number' ? s.table : lookupName(TABLE_NAMES, s.table);
    if (table !== undefined) guess.push({ family: routeFamily(s), table });
  }
  const p = dumpTables(ns, guess);
  p.catch(() => undefined);
  return p;
}

/**
 * @internal the family a route spec belongs to, guessed cheaply (normalizeRoute
 * validates it fully afterwards): 'default' follows `family`/`via`, anything with ':' is IPv6.
 */
export function routeFamily(r: Pick<IpRouteSpec, 'dst' | 'family' | 'via'>): 4 | 6 {
  if (r === null || typeof r !== 'object') return 4;
  if (r.family === 4 || r.family === 6) return r.family;
  if (r.dst === 'default') return typeof r.via === 'string' && r.via.includes(':') ? 6 : 4;
  return typeof r.dst === 'string' && r.dst.includes(':') ? 6 : 4;
}

/** @internal a planned route request, described in `ip route` words. */
export function routeOp(cmd: 'add' | 'replace' | 'delete', spec: NativeRoute, field?: string, undo?: () => PlannedOp): PlannedOp {
  const p: PlannedOp = { op: { kind: 'route', cmd, spec }, describe: () => `route ${describeRoute(spec)}` };
  if (field) p.field = field;
  if (undo) p.undo = undo;
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
    const ns = netnsPath(opts.netns);
    if (opts.family !== undefined && opts.family !== 4 && opts.family !== 6) invalidArgument('family', 'expected 4 or 6');
    const table = opts.table === 'all' ? 0 : parseTable(opts.table ?? 'main', 'table');
    const proto = opts.protocol === undefined ? -1 : parseProtocol(opts.protocol, 'protocol');
    const fams: (4 | 6)[] = opts.family ? [opts.family] : [4, 6];
    const lists = await Promise.all(fams.map((fam) => dumpRoutes(ns, fam, table, proto)));
    return lists.flat().map(routeInfo);
  }

  /** Add routes (exclusive: a route with the same identity is ERR_EXISTS). All-or-nothing. */
  static async add(specs: IpRouteSpec | readonly IpRouteSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = netnsPath(opts.netns);
    const { list, field } = batchList(specs);
    const seen = new Map<string, number>();
    const plan = list.map((s, i): PlannedOp => {
      const r = normalizeRoute(s, field(i));
      const k = routeKey(r);
      if (seen.has(k)) invalidArgument(field(i), `same destination, table, tos and metric as routes[${seen.get(k)}]`);
      seen.set(k, i);
      return routeOp('add', r, field(i), () => routeOp('delete', routeDelete(r)));
    });
    await runAtomic(ns, plan);
  }

  /**
   * Create or overwrite the routes with these identities. All-or-nothing: on failure
   * the routes that were replaced get their previous contents back.
   */
  static async replace(specs: IpRouteSpec | readonly IpRouteSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = netnsPath(opts.netns);
    const { list, field } = batchList(specs);
    const early = prefetch(ns, list);
    const wanted = list.map((s, i) => normalizeRoute(s, field(i)));
    const seen = new Map<string, number>();
    wanted.forEach((r, i) => {
      const k = routeKey(r);
      if (seen.has(k)) invalidArgument(field(i), `same destination, table, tos and metric as routes[${seen.get(k)}]`);
      seen.set(k, i);
    });
    const current = await ensureTables(
      ns,
      early,
      wanted.map((r) => ({ family: r.family, table: r.table })),
    );
    const byKey = new Map<string, NativeRoute>();
    for (const arr of current.values()) for (const r of arr) byKey.set(routeKey(r), r);
    const plan = wanted.map((r, i) => {
      const old = byKey.get(routeKey(r));
      const undo = (): PlannedOp => (old ? routeOp('replace', routeFromKernel(old)) : routeOp('delete', routeDelete(r)));
      return routeOp('replace', r, field(i), undo);
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
    const ns = netnsPath(opts.netns);
    const { list, field } = batchList(specs);
    const early = prefetch(ns, list);
    const wanted = list.map((s, i) => {
      const anyHop = s.via === undefined && s.dev === undefined && s.nexthops === undefined && s.onlink === undefined;
      const r = normalizeRoute(s, field(i), { partial: true });
      return { r, field: field(i), anyHop, anyType: s.type === undefined, anyProto: s.protocol === undefined, anyScope: s.scope === undefined };
    });
    const current = await ensureTables(
      ns,
      early,
      wanted.map((w) => ({ family: w.r.family, table: w.r.table })),
    );
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
        (w.anyHop || have.type !== ROUTE_TYPES.unicast || hopsMatch(w.r.nexthops, have.nexthops));
      if (!have || !same) {
        const what = describeRoute(w.r);
        const msg = have ? `the route to ${w.r.dst}/${w.r.dstLen} in table ${w.r.table} differs from ${what}` : `no such route: ${what}`;
        throw new BpfkitError('ERR_NOT_FOUND', `${w.field ? `${w.field}: ` : ''}${msg}`, w.field ? { field: w.field } : {});
      }
      return routeOp('delete', routeDelete(have), w.field, () => routeOp('add', routeFromKernel(have)));
    });
    await runAtomic(ns, plan);
  }
}
