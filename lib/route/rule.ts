/**
 * Policy-routing rules (`ip rule`): {@link IpRule}, and what PolicyRoute reuses to plan
 * rule changes exactly (the kernel deletes the first rule whose fields include the
 * request's, so a delete is simulated against the current list before it is sent).
 */
import { BpfkitError, invalidArgument } from '../core/errors.js';
import type { NativeRule } from '../core/native.js';
import { netnsPath } from '../core/net/netns.js';
import { FIB_RULE_IIF_DETACHED, FIB_RULE_INVERT, FIB_RULE_OIF_DETACHED, RULE_ACTION_NAMES } from './names.js';
import { nl, runAtomic, type PlannedOp } from './netlink.js';
import type { IpRuleInfo, IpRuleListOptions, IpRuleSpec, NetlinkOptions } from './types.js';
import { normalizeRule, parseProtocol } from './validate.js';

/** @internal identity of a normalised rule (every field the kernel keeps). */
export function ruleKey(r: NativeRule): string {
  return [
    r.family,
    r.priority,
    r.action,
    r.table ?? 0,
    (r.flags ?? 0) & FIB_RULE_INVERT,
    r.fwmark ?? '',
    r.fwmask ?? '',
    r.iif ?? '',
    r.oif ?? '',
    r.src ? `${r.src}/${r.srcLen}` : '',
    r.dst ? `${r.dst}/${r.dstLen}` : '',
    r.tos ?? 0,
    r.ipProto ?? 0,
    r.sport?.join('-') ?? '',
    r.dport?.join('-') ?? '',
    r.protocol ?? 0,
  ].join('|');
}

/**
 * @internal would the kernel's RTM_DELRULE lookup (rule_find: every field given in the
 * request must match, fields not given are wildcards) pick `cand` for request `req`?
 */
function kernelMatches(cand: NativeRule, req: NativeRule): boolean {
  if (cand.family !== req.family || cand.priority !== req.priority) return false;
  if (req.action && cand.action !== req.action) return false;
  if (req.table && cand.table !== req.table) return false;
  if (req.iif && cand.iif !== req.iif) return false;
  if (req.oif && cand.oif !== req.oif) return false;
  if (req.fwmark && cand.fwmark !== req.fwmark) return false;
  if (req.fwmask && cand.fwmask !== req.fwmask) return false;
  if (req.src && (cand.src !== req.src || cand.srcLen !== req.srcLen)) return false;
  if (req.dst && (cand.dst !== req.dst || cand.dstLen !== req.dstLen)) return false;
  if (req.tos && cand.tos !== req.tos) return false;
  if (req.ipProto && cand.ipProto !== req.ipProto) return false;
  if (req.sport && cand.sport?.join('-') !== req.sport.join('-')) return false;
  if (req.dport && cand.dport?.join('-') !== req.dport.join('-')) return false;
  if (req.protocol && cand.protocol !== req.protocol) return false;
  return true;
}

/** @internal one-line description in `ip rule` words. */
export function describeRule(r: NativeRule): string {
  const p: string[] = [`rule ${r.priority}:`];
  if ((r.flags ?? 0) & FIB_RULE_INVERT) p.push('not');
  p.push(r.src ? `from ${r.src}/${r.srcLen}` : 'from all');
  if (r.dst) p.push(`to ${r.dst}/${r.dstLen}`);
  if (r.tos) p.push(`tos 0x${r.tos.toString(16)}`);
  if (r.fwmark !== undefined) p.push(`fwmark 0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? 0xffffffff).toString(16)}`);
  if (r.iif) p.push(`iif ${r.iif}`);
  if (r.oif) p.push(`oif ${r.oif}`);
  if (r.ipProto) p.push(`ipproto ${r.ipProto}`);
  if (r.sport) p.push(`sport ${r.sport[0]}-${r.sport[1]}`);
  if (r.dport) p.push(`dport ${r.dport[0]}-${r.dport[1]}`);
  p.push(r.action === 1 ? `lookup ${r.table}` : (RULE_ACTION_NAMES[r.action] ?? `action ${r.action}`));
  if (r.family === 6) p.push('(IPv6)');
  return p.join(' ');
}

/** @internal kernel form -> public form. */
export function ruleInfo(r: NativeRule): IpRuleInfo {
  const o: IpRuleInfo = {
    family: r.family,
    priority: r.priority,
    action: (RULE_ACTION_NAMES[r.action] ?? `action ${r.action}`) as IpRuleInfo['action'],
    invert: ((r.flags ?? 0) & FIB_RULE_INVERT) !== 0,
    protocol: r.protocol ?? 0,
  };
  if (r.table) o.table = r.table;
  if (r.fwmark !== undefined) [o.fwmark, o.fwmask] = [r.fwmark, r.fwmask ?? 0xffffffff];
  if (r.iif) o.iif = r.iif;
  if (r.oif) o.oif = r.oif;
  if (r.src) o.src = `${r.src}/${r.srcLen}`;
  if (r.dst) o.dst = `${r.dst}/${r.dstLen}`;
  if (r.tos) o.tos = r.tos;
  if (r.ipProto) o.ipProto = r.ipProto;
  if (r.sport) o.sport = r.sport;
  if (r.dport) o.dport = r.dport;
  if ((r.flags ?? 0) & (FIB_RULE_IIF_DETACHED | FIB_RULE_OIF_DETACHED)) o.detached = true;
  return o;
}

/** @internal a planned rule request, described in `ip rule` words; its undo is the inverse request. */
export function ruleOp(cmd: 'add' | 'delete', rule: NativeRule, field?: string): PlannedOp {
  const p: PlannedOp = {
    op: { kind: 'rule', cmd, spec: rule },
    describe: () => describeRule(rule),
    undo: () => ruleOp(cmd === 'add' ? 'delete' : 'add', rule),
  };
  if (field) p.field = field;
  return p;
}

/**
 * @internal the rule requests that delete exactly `targets`, checked against `current`.
 * Throws (ERR_NOT_FOUND, or ERR_BUSY when the kernel would delete another rule) unless
 * `skip` is given, which then receives the problem and the target is left out.
 */
export function planRuleDeletes(current: NativeRule[], targets: { rule: NativeRule; field?: string }[], skip?: (err: BpfkitError) => void): PlannedOp[] {
  // Simulate the kernel's list: each delete removes the first rule its fields match.
  // Requests always carry family and priority, so only that group's order matters.
  const groups = new Map<string, NativeRule[]>();
  for (const r of current) {
    const g = groups.get(`${r.family}|${r.priority}`);
    if (g) g.push(r);
    else groups.set(`${r.family}|${r.priority}`, [r]);
  }
  const plan: PlannedOp[] = [];
  for (const t of targets) {
    const want = ruleKey(t.rule);
    const list = groups.get(`${t.rule.family}|${t.rule.priority}`) ?? [];
    const pick = list.findIndex((c) => kernelMatches(c, t.rule));
    if (pick === -1 || ruleKey(list[pick]) !== want) {
      const exact = list.findIndex((c) => ruleKey(c) === want);
      const prefix = t.field ? `${t.field}: ` : '';
      const opts: ConstructorParameters<typeof BpfkitError>[2] = t.field ? { field: t.field } : {};
      // Not there; or an earlier rule at the same priority has every field of this one
      // (plus more), so the kernel's delete would take that one instead.
      const err =
        exact === -1
          ? new BpfkitError('ERR_NOT_FOUND', `${prefix}no such rule: ${describeRule(t.rule)}`, opts)
          : new BpfkitError(
              'ERR_BUSY',
              `${prefix}cannot delete ${describeRule(t.rule)} exactly: the kernel would delete ` +
                `${describeRule(list[pick])} instead (same priority, a superset of its selectors, listed first)`,
              opts,
            );
      if (!skip) throw err;
      skip(err);
      continue;
    }
    list.splice(pick, 1);
    plan.push(ruleOp('delete', t.rule, t.field));
  }
  return plan;
}

/**
 * @internal the rules as they will be after `added` are inserted: the kernel puts a new
 * rule after every rule of its family with a priority <= its own, which is what a
 * stable sort by priority of [current..., added...] gives within each family.
 */
export function withAddedRules(current: NativeRule[], added: NativeRule[]): NativeRule[] {
  return [...current, ...added].sort((x, y) => x.priority - y.priority);
}

/**
 * @internal re-plan undo requests against the current rules: rule deletes are only
 * exact when no earlier rule would match first (see {@link planRuleDeletes}); rules
 * already gone are skipped, ambiguous ones reported instead of risking another rule.
 */
export async function safeRuleUndo(ns: string | undefined, undo: PlannedOp[]): Promise<{ plan: PlannedOp[]; stuck: string[] }> {
  const ruleDeletes = undo.filter((u) => u.op.kind === 'rule' && u.op.cmd === 'delete');
  if (ruleDeletes.length === 0) return { plan: undo, stuck: [] };
  const current = await nl().nlRules(0, ns);
  const stuck: string[] = [];
  const present = new Set(current.map(ruleKey));
  const targets = ruleDeletes
    .filter((u) => present.has(ruleKey(u.op.spec as NativeRule)))
    .map((u) => ({ rule: u.op.spec as NativeRule, ...(u.field ? { field: u.field } : {}) }));
  const deletes = planRuleDeletes(current, targets, (e) => stuck.push(e.message));
  return { plan: [...deletes, ...undo.filter((u) => !ruleDeletes.includes(u))], stuck };
}

function batchField(specs: unknown, i: number): string {
  return Array.isArray(specs) ? `rules[${i}]` : '';
}

/**
 * Policy-routing rules (`ip rule`), IPv4 and IPv6. Adds are exclusive (an identical
 * rule is ERR_EXISTS, never a silent duplicate) and batches are all-or-nothing.
 *
 * ```ts
 * await IpRule.add({ priority: 1000, fwmark: 0x10, table: 100 }, { netns: 'blue' });
 * const rules = await IpRule.list({ netns: 'blue', protocol: 'bpfkit' });
 * await IpRule.delete({ priority: 1000, fwmark: 0x10, table: 100 }, { netns: 'blue' });
 * ```
 */
export class IpRule {
  private constructor() {}

  /** Rules in the order the kernel evaluates them. */
  static async list(opts: IpRuleListOptions = {}): Promise<IpRuleInfo[]> {
    const ns = netnsPath(opts.netns);
    if (opts.family !== undefined && opts.family !== 4 && opts.family !== 6) invalidArgument('family', 'expected 4 or 6');
    const proto = opts.protocol === undefined ? undefined : parseProtocol(opts.protocol, 'protocol');
    const rules = await nl().nlRules(opts.family ?? 0, ns);
    return rules.filter((r) => proto === undefined || r.protocol === proto).map(ruleInfo);
  }

  /**
   * Add one rule or several (all-or-nothing: on any failure the ones already added are
   * removed again). An identical rule (same fields and protocol) is ERR_EXISTS; an iif
   * or oif that does not exist is ERR_NO_SUCH_INTERFACE.
   */
  static async add(specs: IpRuleSpec | readonly IpRuleSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = netnsPath(opts.netns);
    const list = Array.isArray(specs) ? (specs as IpRuleSpec[]) : [specs as IpRuleSpec];
    const seen = new Map<string, number>();
    const plan = list.map((s, i): PlannedOp => {
      const field = batchField(specs, i);
      const rule = normalizeRule(s, field);
      const key = ruleKey(rule);
      const dup = seen.get(key);
      if (dup !== undefined) invalidArgument(field, `same rule as rules[${dup}]`);
      seen.set(key, i);
      return ruleOp('add', rule, field);
    });
    await runAtomic(ns, plan, (undo) => safeRuleUndo(ns, undo));
  }

  /**
   * Delete exactly the given rules (all fields must match, protocol included; the
   * default protocol is bpfkit's). ERR_NOT_FOUND before anything changes if one is
   * missing; all-or-nothing.
   */
  static async delete(specs: IpRuleSpec | readonly IpRuleSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = netnsPath(opts.netns);
    const list = Array.isArray(specs) ? (specs as IpRuleSpec[]) : [specs as IpRuleSpec];
    const targets = list.map((s, i) => {
      const field = batchField(specs, i);
      return { rule: normalizeRule(s, field), ...(field ? { field } : {}) };
    });
    const current = await nl().nlRules(0, ns);
    await runAtomic(ns, planRuleDeletes(current, targets));
  }
}
