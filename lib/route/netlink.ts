/**
 * The netlink transport of policy routing: the addon's calls (a batch of requests, rule
 * and route dumps), the planned-operation type, and the batch runners that turn
 * per-request kernel errors into BpfkitErrors and undo a failed batch.
 *
 * The addon opens its netlink socket inside the target namespace from a worker thread,
 * so nothing else in the process changes namespace. Input is validated before anything
 * gets here; the kernel's errno reaches the error intact.
 */
import { BpfkitError, errnoCode, errnoName } from '../core/errors.js';
import { native, type NativeNlFailure, type NativeNlOp, type NativeRoute, type NativeRule } from '../core/native.js';

/** @internal one request as the addon takes it. */
export type NlOp = NativeNlOp;

/** @internal a batch request plus what the caller needs to report or undo it. */
export interface PlannedOp {
  op: NlOp;
  /**
   * What the request does in `ip rule` / `ip route` words, e.g. 'rule 1000: from all
   * fwmark 0x10/0xffffffff lookup 100' or 'route 198.18.10.0/24 via 198.18.2.2 table 100'.
   * Set when the request is planned, built only when an error needs it.
   */
  describe: () => string;
  /** Field to name in errors, e.g. 'routes[2]'. */
  field?: string;
  /** How to take this request back if the batch fails (undefined: nothing to undo). Built only when needed. */
  undo?: () => PlannedOp;
}

/** @internal the addon's netlink functions, with dumps parsed (ERR_UNSUPPORTED when built without libnl). */
export function nl(): {
  nlBatch(ops: NlOp[], netns: string | undefined): Promise<NativeNlFailure[]>;
  nlRules(family: 0 | 4 | 6, netns: string | undefined): Promise<NativeRule[]>;
  nlRoutes(family: 4 | 6, table: number, protocol: number, netns: string | undefined): Promise<NativeRoute[]>;
} {
  const addon = native();
  const { nlBatch, nlRulesJson, nlRoutesJson } = addon;
  if (!nlBatch || !nlRulesJson || !nlRoutesJson) {
    throw new BpfkitError('ERR_UNSUPPORTED', "bpfkit's addon was built without libnl: install libnl-3-dev and libnl-route-3-dev and rebuild ('npm run build')");
  }
  return {
    nlBatch: (ops, netns) => nlBatch.call(addon, ops, netns),
    nlRules: async (family, netns) => JSON.parse(await nlRulesJson.call(addon, family, netns)) as NativeRule[],
    nlRoutes: async (family, table, protocol, netns) => JSON.parse(await nlRoutesJson.call(addon, family, table, protocol, netns)) as NativeRoute[],
  };
}

const MSG_TYPES = {
  rule: { add: 'RTM_NEWRULE', delete: 'RTM_DELRULE' },
  route: { add: 'RTM_NEWROUTE', replace: 'RTM_NEWROUTE', delete: 'RTM_DELROUTE' },
} as const;

/** @internal one failed request of a batch -> BpfkitError (errno kept, field named). */
export function opError(p: PlannedOp, f: NativeNlFailure): BpfkitError {
  const { op, field } = p;
  const type = (MSG_TYPES[op.kind] as Record<string, string>)[op.cmd];
  const code = errnoCode(f.errno);
  const reason = f.message || (f.errno === 17 ? 'it already exists' : f.errno === 2 || f.errno === 3 ? 'it does not exist' : '');
  const msg = `${field ? `${field}: ` : ''}cannot ${op.cmd} ${p.describe()}${reason ? `: ${reason}` : ''} (netlink ${type}: ${errnoName(f.errno)} ${f.errno})`;
  const opts: ConstructorParameters<typeof BpfkitError>[2] = { errno: f.errno, syscall: `netlink(${type})` };
  if (field) opts.field = field;
  opts.details = { index: f.index, ...(f.uncertain ? { uncertain: true } : {}) };
  return new BpfkitError(code, msg, opts);
}

/** @internal outcome of {@link runBatch}: which requests the kernel applied. */
export interface BatchOutcome {
  failures: { planned: PlannedOp; error: BpfkitError; uncertain: boolean }[];
  applied: PlannedOp[];
}

/** @internal send one batch; per-request kernel errors become BpfkitErrors. */
export async function runBatch(netns: string | undefined, plan: PlannedOp[]): Promise<BatchOutcome> {
  if (plan.length === 0) return { failures: [], applied: [] };
  const failed = await nl().nlBatch(
    plan.map((p) => p.op),
    netns,
  );
  const byIndex = new Map(failed.map((f) => [f.index, f]));
  const out: BatchOutcome = { failures: [], applied: [] };
  plan.forEach((p, i) => {
    const f = byIndex.get(i);
    if (!f) out.applied.push(p);
    else {
      out.failures.push({ planned: p, error: opError(p, f), uncertain: !!f.uncertain });
      if (f.uncertain) out.applied.push(p); // may have been applied: undo it too (errors ignored)
    }
  });
  return out;
}

/** @internal re-plans undo requests just before they are sent (rule deletes must stay exact). */
export type PrepareUndo = (undo: PlannedOp[]) => Promise<{ plan: PlannedOp[]; stuck: string[] }>;

/**
 * @internal run a plan all-or-nothing: if any request fails, undo the applied ones (in
 * reverse order) and throw the first failure, with what could not be undone attached.
 */
export async function runAtomic(netns: string | undefined, plan: PlannedOp[], prepareUndo?: PrepareUndo): Promise<void> {
  const res = await runBatch(netns, plan);
  if (res.failures.length === 0) return;
  let undo: PlannedOp[] = [];
  for (let i = res.applied.length - 1; i >= 0; i--) {
    const p = res.applied[i];
    if (!p.undo) continue;
    const u = p.undo();
    if (p.field) u.field = p.field;
    undo.push(u);
  }
  const stuck: string[] = [];
  if (prepareUndo) {
    const prepared = await prepareUndo(undo);
    undo = prepared.plan;
    stuck.push(...prepared.stuck);
  }
  const back = await runBatch(netns, undo);
  stuck.push(...back.failures.filter((f) => f.error.code !== 'ERR_NOT_FOUND').map((f) => f.error.message));
  const first = res.failures[0].error;
  if (stuck.length || res.failures.length > 1) {
    const details = { ...(first.details ?? {}), failed: res.failures.length, undone: back.applied.length };
    if (stuck.length) Object.assign(details, { undoFailed: stuck });
    (first as { details?: Record<string, unknown> }).details = details;
  }
  throw first;
}
