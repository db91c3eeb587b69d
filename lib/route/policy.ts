/**
 * {@link PolicyRoute}: one policy rule plus the routes of its table, applied
 * idempotently and marked with bpfkit's route protocol so they can be found again
 * after a crash. Plans rule and route changes with rule.ts and route.ts, and sends them
 * through netlink.ts in two phases (routes before the rule; leftovers last).
 */
import { BpfkitError, invalidArgument } from '../core/errors.js';
import type { NativeRoute, NativeRule } from '../core/native.js';
import { netnsPath } from '../core/net/netns.js';
import { BPFKIT_ROUTE_PROTOCOL, type RouteProtocol, type RuleAction } from './names.js';
import { nl, runAtomic, runBatch, type PlannedOp } from './netlink.js';
import {
  dumpRoutes,
  dumpTables,
  ensureTables,
  routeDelete,
  routeFamily,
  routeFromKernel,
  routeInfo,
  routeKey,
  routeMatches,
  routeOp,
  type TableDump,
} from './route.js';
import { planRuleDeletes, ruleInfo, ruleKey, ruleOp, safeRuleUndo, withAddedRules } from './rule.js';
import type { IpRouteInfo, IpRouteSpec, IpRuleInfo, IpRuleSelector, NetlinkOptions } from './types.js';
import { normalizeRoute, normalizeSelector, parseProtocol, parseRuleAction, parseTable, SELECTOR_KEYS, selectorFamily } from './validate.js';

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

/** Options of every PolicyRoute call: the namespace, and the protocol that marks bpfkit's objects. */
export interface PolicyRouteOptions extends NetlinkOptions {
  /** Protocol number marking bpfkit's rules and routes (default {@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** What an apply/remove/cleanup changed in the kernel. */
export interface PolicyRouteChanges {
  /** Rules created. */
  rulesAdded: number;
  /** Rules deleted. */
  rulesDeleted: number;
  /** Rules already as asked. */
  rulesUnchanged: number;
  /** Routes created. */
  routesAdded: number;
  /** Routes overwritten (same identity, other next hops or attributes). */
  routesReplaced: number;
  /** Routes deleted. */
  routesDeleted: number;
  /** Routes already as asked. */
  routesUnchanged: number;
}

/** bpfkit's rule (or an orphaned table) with the bpfkit routes of its table. */
export interface PolicyRouteState {
  /** Address family. */
  family: 4 | 6;
  /** null: bpfkit routes in a table no bpfkit rule points to (e.g. after a crash). */
  rule: IpRuleInfo | null;
  /** The table (null: a rule that looks up no table, e.g. a blackhole rule). */
  table: number | null;
  /** bpfkit's routes in that table. */
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

const POLICY_KEYS = new Set<string>([...SELECTOR_KEYS, 'priority', 'table', 'action', 'family', 'routes']);
const RESERVED_TABLES = new Set([0, 253, 254, 255]);

function noChanges(): PolicyRouteChanges {
  return { rulesAdded: 0, rulesDeleted: 0, rulesUnchanged: 0, routesAdded: 0, routesReplaced: 0, routesDeleted: 0, routesUnchanged: 0 };
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
    const action = parseRuleAction(actionName, f('action'));
    let table: number | null = null;
    if (actionName === 'table') {
      if (spec.table === undefined) invalidArgument(f('table'), "is required for action 'table'");
      table = parseTable(spec.table, f('table'));
    } else if (spec.table !== undefined) invalidArgument(f('table'), `not allowed with action '${actionName}'`);
    const routes = spec.routes ?? [];
    if (!Array.isArray(routes)) invalidArgument(f('routes'), 'expected an array');
    if (routes.length && table === null) invalidArgument(f('routes'), `a '${actionName}' rule looks nothing up, so it has no routes`);
    if (routes.length && table !== null && RESERVED_TABLES.has(table)) {
      invalidArgument(
        f('table'),
        `table ${table} is the kernel's ${table === 254 ? 'main' : table === 255 ? 'local' : 'default'} table; a PolicyRoute with routes needs a table of its own`,
      );
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
    const ns = netnsPath(opts.netns);
    const proto = policyProtocol(opts);
    const units = expand([spec], false, proto);
    const changes = await applyUnits(units, ns, proto, await snapshot(ns, units));
    return new PolicyRoute(spec, opts, changes);
  }

  /** apply() for several PolicyRoutes in one go (one dump, one batch; all-or-nothing). */
  static async applyAll(specs: readonly PolicyRouteSpec[], opts: PolicyRouteOptions = {}): Promise<PolicyRouteChanges> {
    if (!Array.isArray(specs)) invalidArgument('policies', 'expected an array');
    const proto = policyProtocol(opts);
    const ns = netnsPath(opts.netns);
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
    const ns = netnsPath(opts.netns);
    const early = earlySnapshot(ns, list);
    const units = expand(list, many, proto, false);
    return removeUnits(units, ns, proto, await snapshot(ns, units, early));
  }

  /** bpfkit's rules with the bpfkit routes of their tables, plus orphaned bpfkit tables. */
  static async list(opts: PolicyRouteOptions = {}): Promise<PolicyRouteState[]> {
    const ns = netnsPath(opts.netns);
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
    const ns = netnsPath(opts.netns);
    const proto = policyProtocol(opts);
    const [rules, routes4, routes6] = await Promise.all([nl().nlRules(0, ns), dumpRoutes(ns, 4, 0, proto), dumpRoutes(ns, 6, 0, proto)]);
    const mine = rules.filter((r) => r.protocol === proto);
    const plan = planRuleDeletes(
      rules,
      mine.map((rule) => ({ rule })),
    );
    for (const r of [...routes4, ...routes6]) plan.push(routeOp('delete', routeDelete(r)));
    const res = await runBatch(ns, plan);
    const failures = res.failures.filter((x) => x.error.code !== 'ERR_NOT_FOUND');
    if (failures.length) throw failures[0].error;
    const changes = noChanges();
    for (const p of res.applied) {
      if (p.op.kind === 'rule') changes.rulesDeleted++;
      else changes.routesDeleted++;
    }
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
function earlySnapshot(ns: string | undefined, specs: readonly PolicyRouteSpec[]): EarlySnapshot {
  if (specs.length <= 8) return null;
  const e = { rules: nl().nlRules(0, ns), routes: dumpTables(ns, [], [4, 6]) };
  e.rules.catch(() => undefined);
  e.routes.catch(() => undefined);
  return e;
}

async function snapshot(ns: string | undefined, units: Unit[], early: EarlySnapshot = null): Promise<Snapshot> {
  const tables = units.filter((u) => u.table !== null).map((u) => ({ family: u.family, table: u.table as number }));
  const [rules, byTable] = await Promise.all([
    early ? early.rules : nl().nlRules(0, ns),
    ensureTables(ns, early ? early.routes : dumpTables(ns, tables), tables),
  ]);
  return { rules, tables: byTable };
}

async function applyUnits(units: Unit[], ns: string | undefined, proto: number, snap: Snapshot): Promise<PolicyRouteChanges> {
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
        phaseA.push(routeOp('add', r, field, () => routeOp('delete', routeDelete(r))));
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
        phaseA.push(routeOp('replace', r, field, () => routeOp('replace', routeFromKernel(have))));
      }
    });
    for (const have of existing) {
      if (have.protocol !== proto || wanted.has(routeKey(have))) continue;
      changes.routesDeleted++;
      phaseB.push(routeOp('delete', routeDelete(have), u.field, () => routeOp('add', routeFromKernel(have))));
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
      phaseA.push(ruleOp('add', u.rule, u.field));
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

async function removeUnits(units: Unit[], ns: string | undefined, proto: number, snap: Snapshot): Promise<PolicyRouteChanges> {
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
  const stillUsed = new Set(rules.filter((r) => r.protocol === proto && r.action === 1 && !removing.has(ruleKey(r))).map((r) => `${r.family}|${r.table}`));
  const doneTables = new Set<string>();
  for (const u of units) {
    if (u.table === null) continue;
    const tk = `${u.family}|${u.table}`;
    if (doneTables.has(tk) || stillUsed.has(tk)) continue;
    doneTables.add(tk);
    for (const have of tables.get(tk) ?? []) {
      if (have.protocol !== proto) continue;
      changes.routesDeleted++;
      plan.push(routeOp('delete', routeDelete(have), u.field, () => routeOp('add', routeFromKernel(have))));
    }
  }
  await runAtomic(ns, plan, (undo) => Promise.resolve({ plan: undo, stuck: [] }));
  return changes;
}
