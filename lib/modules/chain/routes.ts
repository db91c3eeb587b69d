/**
 * The routing half of the ServiceChainer: one PolicyRoute per service and one for
 * upstream ("fwmark M -> table T -> default via the next hops"), created with the
 * chainer, removed with it, in its namespace.
 */
// The coordinator moves PolicyRoute to lib/route/ at merge: this import follows it.
import { BPFKIT_ROUTE_PROTOCOL, IpRule, PolicyRoute, type PolicyRouteEntry, type PolicyRouteSpec } from '../../route/index.js';
import { invalidArgument } from '../../core/errors.js';
import type { Hop, Path } from './config.js';

const DEFAULT_DST = { 4: '0.0.0.0/0', 6: '::/0' } as const;

function route(family: 4 | 6, hops: Hop[]): PolicyRouteEntry {
  const base = { dst: DEFAULT_DST[family], family };
  const plain = (h: Hop) => ({
    ...(h.via !== undefined ? { via: h.via } : {}),
    ...(h.dev !== undefined ? { dev: h.dev } : {}),
    ...(h.onlink ? { onlink: true } : {}),
  });
  if (hops.length === 1) return { ...base, ...plain(hops[0]!) };
  return { ...base, nexthops: hops.map((h) => ({ ...plain(h), ...(h.weight !== undefined ? { weight: h.weight } : {}) })) };
}

/** The PolicyRoute of a path: its fwmark rule at `priority` and its table's default routes. */
export function policyOf(p: Path, priority: number): PolicyRouteSpec {
  const routes: PolicyRouteEntry[] = [];
  for (const family of [4, 6] as const) {
    const hops = p.hops.filter((h) => h.families.includes(family));
    // dev-only hops serve both families, but alone they do not make an IPv6 path of an
    // IPv4 one: a family gets routes when it has a gateway of its own or only dev hops
    const gw = hops.some((h) => h.via !== undefined);
    const onlyDev = p.hops.every((h) => h.via === undefined);
    if (hops.length && (gw || onlyDev)) routes.push(route(family, hops));
  }
  return { priority, fwmark: p.mark, table: p.table, routes };
}

export function policies(paths: { services: readonly Path[]; upstream: Path }, base: number): PolicyRouteSpec[] {
  return [...paths.services.map((s, i) => policyOf(s, base + i)), policyOf(paths.upstream, base + paths.services.length)];
}

/**
 * Refuses tables some other owner's `ip rule` already looks up (protocol other than
 * bpfkit's): routing our marks there would change that owner's traffic. A read only.
 */
export async function checkForeignRules(paths: { services: readonly Path[]; upstream: Path }, ns: string | undefined): Promise<void> {
  const rules = await IpRule.list(ns ? { netns: ns } : {});
  for (const p of [...paths.services, paths.upstream]) {
    const r = rules.find((x) => x.table === p.table && x.protocol !== BPFKIT_ROUTE_PROTOCOL);
    if (r) {
      invalidArgument(
        `${p.field}.table`,
        `table ${p.table} is already used by a foreign ip rule (priority ${r.priority}, protocol ${r.protocol}); pick another table`,
        {
          rule: r,
        },
      );
    }
  }
}

/** Applies the specs (all or nothing). */
export async function applyRoutes(specs: readonly PolicyRouteSpec[], ns: string | undefined): Promise<void> {
  await PolicyRoute.applyAll(specs, ns ? { netns: ns } : {});
}

export async function removeRoutes(specs: readonly PolicyRouteSpec[], ns: string | undefined): Promise<void> {
  if (specs.length) await PolicyRoute.remove(specs, ns ? { netns: ns } : {});
}

/** The `ip rule`s a spec makes: one per family of its routes. */
function ruleUnits(spec: PolicyRouteSpec): PolicyRouteSpec[] {
  const fams = new Set((spec.routes ?? []).map((r) => r.family ?? 4));
  return [...fams].map((family) => ({ priority: spec.priority, fwmark: spec.fwmark!, table: spec.table!, family }));
}

/**
 * The rules of `old` that `next` does not have (by priority, mark, table and family), as
 * specs PolicyRoute.remove() takes. A spec whose next hops changed keeps its rules: the
 * apply of `next` already replaced the routes of its table in place.
 */
export function staleRules(old: readonly PolicyRouteSpec[], next: readonly PolicyRouteSpec[]): PolicyRouteSpec[] {
  const id = (u: PolicyRouteSpec) => `${u.priority}|${u.fwmark}|${u.table}|${u.family}`;
  const keep = new Set(next.flatMap(ruleUnits).map(id));
  return old.flatMap(ruleUnits).filter((u) => !keep.has(id(u)));
}
