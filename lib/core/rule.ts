/**
 * Linux policy-routing rules (`ip rule`) through the addon's libnl binding, plus what
 * the rule and route APIs share: bpfkit's route protocol number, table and protocol
 * names, namespace handling, netlink error mapping and the batch runner.
 *
 * Every call takes `{ netns }` (a name under /run/netns, a path, or an open namespace
 * fd): the addon opens its netlink socket inside that namespace from a worker thread,
 * so nothing else in the process changes namespace. Input is validated here, before
 * the kernel is asked anything; the kernel's errno reaches the error intact.
 */
import { parseCidr, type Cidr, formatIPv4, formatIPv6 } from './codecs.js';
import { BpfkitError, errnoName, invalidArgument, type BpfkitErrorCode } from './errors.js';
import { native } from './native.js';
import { netnsPath, type NetnsRef } from './netns.js';

/**
 * The route protocol number bpfkit marks its routes and rules with (`proto 165` in
 * `ip route` / `ip rule`). Unused by the kernel, iproute2's rt_protos and the routing
 * daemons we know of (FRR uses 186-198, BIRD 12, Calico 80); override it per call with
 * `{ protocol }` where it collides. `PolicyRoute.list()` / `cleanup()` find bpfkit's
 * objects by it.
 */
export const BPFKIT_ROUTE_PROTOCOL = 165;

/** A routing table: a number (1 to 2^32-1) or one of the kernel's named tables. */
export type RouteTable = number | 'main' | 'local' | 'default';
/** A route/rule protocol: a number (0-255) or a name from iproute2's rt_protos, or 'bpfkit'. */
export type RouteProtocol = number | keyof typeof PROTOCOL_NAMES;
/** A network namespace: a name under /run/netns, a path (/proc/PID/ns/net) or an open fd. */
export type NetnsTarget = NetnsRef | number;

export interface NetlinkOptions {
  /** Namespace to operate in (default: the caller's). */
  netns?: NetnsTarget;
}

const TABLE_NAMES = { default: 253, main: 254, local: 255 } as const;
const PROTOCOL_NAMES = {
  unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4, gated: 8, ra: 9, mrt: 10, zebra: 11, bird: 12,
  dnrouted: 13, xorp: 14, ntk: 15, dhcp: 16, mrouted: 17, keepalived: 18, babel: 42, openr: 99, bgp: 186,
  isis: 187, ospf: 188, rip: 189, eigrp: 192, bpfkit: BPFKIT_ROUTE_PROTOCOL,
} as const;
const IP_PROTO_NAMES = { icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, sctp: 132 } as const;
/** IP protocol for rule selectors: a number 1-255 or a common name. */
export type IpProto = number | keyof typeof IP_PROTO_NAMES;

// ---- shared helpers ----------------------------------------------------------------

function u32(v: unknown, field: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0xffffffff) {
    invalidArgument(field, `expected an integer from ${min} to 4294967295 (2^32-1), got ${String(v)}`);
  }
  return v;
}

function u8(v: unknown, field: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 255) {
    invalidArgument(field, `expected an integer from ${min} to 255, got ${String(v)}`);
  }
  return v;
}

/** @internal table name or number -> number (1..2^32-1). */
export function parseTable(t: unknown, field: string): number {
  if (typeof t === 'string') {
    const n = (TABLE_NAMES as Record<string, number>)[t];
    if (n === undefined) invalidArgument(field, `unknown table '${t}' (use a number or main, local, default)`);
    return n;
  }
  return u32(t, field, 1);
}

/** @internal protocol name or number -> number. */
export function parseProtocol(p: unknown, field: string): number {
  if (typeof p === 'string') {
    const n = (PROTOCOL_NAMES as Record<string, number>)[p];
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

/** @internal namespace argument -> path handed to the addon ('' for the caller's). */
export function nsArg(ns: NetnsTarget | undefined): string {
  if (typeof ns === 'number') {
    if (!Number.isInteger(ns) || ns < 0) invalidArgument('netns', `expected a file descriptor, got ${ns}`);
    return `/proc/self/fd/${ns}`;
  }
  return netnsPath(ns) ?? '';
}

/** @internal a CIDR of a given family (or any when family is undefined). */
export function parsePrefix(s: unknown, field: string, family?: 4 | 6): Cidr {
  const c = parseCidr(s as string, field);
  if (family !== undefined && c.family !== family) invalidArgument(field, `${String(s)} is IPv${c.family}, expected IPv${family}`);
  return c;
}

const V4_RE = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})(?:\/(0|[1-9]\d?))?$/;

/**
 * @internal fast path for the common case of a valid IPv4 address or prefix in canonical
 * form: [address, prefixLen], or undefined to take the general parser (which also
 * produces the error). Large batches spend most of their JS time parsing addresses.
 */
export function fastV4(s: unknown, prefix: boolean): [string, number] | undefined {
  if (typeof s !== 'string') return undefined;
  const m = V4_RE.exec(s);
  if (!m || (!prefix && m[5] !== undefined)) return undefined;
  const a = +m[1], b = +m[2], c = +m[3], d = +m[4];
  if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
  const len = m[5] === undefined ? 32 : +m[5];
  if (len > 32) return undefined;
  const v = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  if ((v & ~mask) >>> 0) return undefined; // host bits set: let parseCidr explain
  return [m[5] === undefined ? s : s.slice(0, s.indexOf('/')), len];
}

/** @internal */
export function addrText(c: Cidr): string {
  return c.family === 4 ? formatIPv4(c.addr) : formatIPv6(c.addr);
}

// ---- native surface ----------------------------------------------------------------

/** @internal a rule as the addon takes and returns it (normalised). */
export interface NativeRule {
  family: 4 | 6;
  priority: number;
  table?: number;
  action: number;
  flags?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  src?: string;
  srcLen?: number;
  dst?: string;
  dstLen?: number;
  tos?: number;
  ipProto?: number;
  sport?: [number, number];
  dport?: [number, number];
  protocol?: number;
}

/** @internal a route as the addon takes and returns it (normalised). */
export interface NativeNextHop {
  via?: string;
  dev?: string | number;
  ifindex?: number;
  weight?: number;
  flags?: number;
}
/** @internal */
export interface NativeRoute {
  family: 4 | 6;
  table: number;
  dst: string;
  dstLen: number;
  tos: number;
  metric: number;
  type: number;
  scope: number;
  protocol: number;
  flags?: number;
  prefsrc?: string;
  nexthops: NativeNextHop[];
}

/** @internal */
export type NlOp =
  | { kind: 'rule'; cmd: 'add' | 'delete'; spec: NativeRule }
  | { kind: 'route'; cmd: 'add' | 'replace' | 'delete'; spec: NativeRoute };

interface NlFailure {
  index: number;
  errno: number;
  message: string;
  uncertain?: boolean;
}

interface NetlinkAddon {
  nlBatch(ops: NlOp[], netns: string): Promise<NlFailure[]>;
  /** Dumps come back as JSON text: one JSON.parse is much cheaper than an N-API call per field. */
  nlRulesJson(family: 0 | 4 | 6, netns: string): Promise<string>;
  nlRoutesJson(family: 4 | 6, table: number, protocol: number, netns: string): Promise<string>;
}

/** @internal the addon's netlink functions, with dumps parsed (ERR_UNSUPPORTED when built without libnl). */
export function nl(): {
  nlBatch: NetlinkAddon['nlBatch'];
  nlRules(family: 0 | 4 | 6, netns: string): Promise<NativeRule[]>;
  nlRoutes(family: 4 | 6, table: number, protocol: number, netns: string): Promise<NativeRoute[]>;
} {
  const a = native() as unknown as Partial<NetlinkAddon>;
  if (typeof a.nlBatch !== 'function' || typeof a.nlRulesJson !== 'function' || typeof a.nlRoutesJson !== 'function') {
    throw new BpfkitError(
      'ERR_UNSUPPORTED',
      "bpfkit's addon was built without libnl: install libnl-3-dev and libnl-route-3-dev and rebuild ('npm run build')",
    );
  }
  const addon = a as NetlinkAddon;
  return {
    nlBatch: (ops, netns) => addon.nlBatch(ops, netns),
    nlRules: async (family, netns) => JSON.parse(await addon.nlRulesJson(family, netns)) as NativeRule[],
    nlRoutes: async (family, table, protocol, netns) => JSON.parse(await addon.nlRoutesJson(family, table, protocol, netns)) as NativeRoute[],
  };
}

const ERRNO_CODE: Record<number, BpfkitErrorCode> = {
  1: 'ERR_PERMISSION', 13: 'ERR_PERMISSION', 2: 'ERR_NOT_FOUND', 3: 'ERR_NOT_FOUND', 17: 'ERR_EXISTS',
  19: 'ERR_NO_SUCH_INTERFACE', 22: 'ERR_INVALID_ARGUMENT', 34: 'ERR_INVALID_ARGUMENT', 101: 'ERR_INVALID_ARGUMENT',
  95: 'ERR_UNSUPPORTED', 97: 'ERR_UNSUPPORTED', 16: 'ERR_BUSY', 11: 'ERR_BUSY',
};

// errno names netlink routing errors use that errors.ts does not name
const NL_ERRNO_NAMES: Record<number, string> = { 3: 'ESRCH', 90: 'EMSGSIZE', 101: 'ENETUNREACH', 113: 'EHOSTUNREACH', 125: 'ECANCELED' };
function nlErrnoName(e: number): string {
  const n = errnoName(e);
  return n === 'errno' ? (NL_ERRNO_NAMES[e] ?? n) : n;
}

const MSG_TYPES = {
  rule: { add: 'RTM_NEWRULE', delete: 'RTM_DELRULE' },
  route: { add: 'RTM_NEWROUTE', replace: 'RTM_NEWROUTE', delete: 'RTM_DELROUTE' },
} as const;

/** @internal one failed request of a batch -> BpfkitError (errno kept, field named). */
export function opError(op: NlOp, f: NlFailure, field: string | undefined): BpfkitError {
  const what = describeOp(op);
  const type = (MSG_TYPES[op.kind] as Record<string, string>)[op.cmd];
  const code = ERRNO_CODE[f.errno] ?? 'ERR_SYSTEM';
  const verb = op.cmd === 'delete' ? 'delete' : op.cmd === 'replace' ? 'replace' : 'add';
  const reason = f.message || (f.errno === 17 ? 'it already exists' : f.errno === 2 || f.errno === 3 ? 'it does not exist' : '');
  const msg = `${field ? `${field}: ` : ''}cannot ${verb} ${what}${reason ? `: ${reason}` : ''} (netlink ${type}: ${nlErrnoName(f.errno)} ${f.errno})`;
  const opts: ConstructorParameters<typeof BpfkitError>[2] = { errno: f.errno, syscall: `netlink(${type})` };
  if (field) opts.field = field;
  opts.details = { index: f.index, ...(f.uncertain ? { uncertain: true } : {}) };
  return new BpfkitError(code, msg, opts);
}

/** @internal a batch request plus what the caller needs to report or undo it. */
export interface PlannedOp {
  op: NlOp;
  /** Field to name in errors, e.g. 'routes[2]'. */
  field?: string;
  /** How to take this request back if the batch fails (undefined: nothing to undo). Built only when needed. */
  undo?: () => NlOp;
}

let routeDescriber: (r: NativeRoute) => string = (r) => `route ${r.dst}/${r.dstLen} table ${r.table}`;
/** @internal route.ts registers its `ip route`-style describer here (rule.ts cannot import it). */
export function setRouteDescriber(fn: (r: NativeRoute) => string): void {
  routeDescriber = fn;
}

/** @internal human description of a request, e.g. 'rule 1000: from all fwmark 0x10/0xffffffff lookup 100'. */
export function describeOp(op: NlOp): string {
  return op.kind === 'rule' ? describeRule(op.spec) : `route ${routeDescriber(op.spec)}`;
}

/** @internal outcome of {@link runBatch}: which requests the kernel applied. */
export interface BatchOutcome {
  failures: { planned: PlannedOp; error: BpfkitError; uncertain: boolean }[];
  applied: PlannedOp[];
}

/** @internal send one batch; per-request kernel errors become BpfkitErrors. */
export async function runBatch(netns: string, plan: PlannedOp[]): Promise<BatchOutcome> {
  if (plan.length === 0) return { failures: [], applied: [] };
  const failed = await nl().nlBatch(plan.map((p) => p.op), netns);
  const byIndex = new Map(failed.map((f) => [f.index, f]));
  const out: BatchOutcome = { failures: [], applied: [] };
  plan.forEach((p, i) => {
    const f = byIndex.get(i);
    if (!f) out.applied.push(p);
    else {
      out.failures.push({ planned: p, error: opError(p.op, f, p.field), uncertain: !!f.uncertain });
      if (f.uncertain) out.applied.push(p); // may have been applied: undo it too (errors ignored)
    }
  });
  return out;
}

/**
 * @internal run a plan all-or-nothing: if any request fails, undo the applied ones (in
 * reverse order) and throw the first failure, with what could not be undone attached.
 */
export async function runAtomic(
  netns: string,
  plan: PlannedOp[],
  prepareUndo?: (undo: PlannedOp[]) => Promise<{ plan: PlannedOp[]; stuck: string[] }>,
): Promise<void> {
  const res = await runBatch(netns, plan);
  if (res.failures.length === 0) return;
  let undo: PlannedOp[] = res.applied
    .filter((p) => p.undo)
    .reverse()
    .map((p) => ({ op: (p.undo as () => NlOp)(), ...(p.field ? { field: p.field } : {}) }));
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

// ---- rules -------------------------------------------------------------------------

/** What a rule does with a packet it matches. */
export type RuleAction = 'table' | 'blackhole' | 'unreachable' | 'prohibit';
const ACTIONS: Record<RuleAction, number> = { table: 1, blackhole: 6, unreachable: 7, prohibit: 8 };
const ACTION_NAMES: Record<number, string> = { 1: 'table', 2: 'goto', 3: 'nop', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };
const FIB_RULE_INVERT = 2;
const FIB_RULE_IIF_DETACHED = 8;
const FIB_RULE_OIF_DETACHED = 16;

/** A port or an inclusive port range. The kernel accepts 1-65534 in rules. */
export type PortRange = number | readonly [number, number];

/** Packet selectors of a rule (all optional; a rule without any matches every packet). */
export interface IpRuleSelector {
  /** Firewall mark to match (`fwmark`); with `fwmask`, matches `(mark & fwmask) == fwmark`. */
  fwmark?: number;
  /** Mask for `fwmark` (default 0xffffffff). `{ fwmark: 0, fwmask: 0xff }` matches unmarked low bytes. */
  fwmask?: number;
  /** Input interface name (`lo` means locally generated traffic). */
  iif?: string;
  /** Output interface name (for sockets bound to a device / VRF). */
  oif?: string;
  /** Source prefix, e.g. '198.18.0.0/24' or '2001:db8::/32'. */
  src?: string;
  /** Destination prefix. */
  dst?: string;
  /** TOS / traffic class byte (DSCP bits only). */
  tos?: number;
  /** IP protocol (`ipproto`), e.g. 'tcp' or 17. */
  ipProto?: IpProto;
  /** Source port or range (needs kernel >= 4.17). */
  sport?: PortRange;
  /** Destination port or range. */
  dport?: PortRange;
  /** Match packets that do NOT match the selectors (`ip rule add not ...`). */
  invert?: boolean;
}

/** A rule to add or delete. `priority` is required: rules have no other identity. */
export interface IpRuleSpec extends IpRuleSelector {
  /** 4 or 6; inferred from `src`/`dst`, else 4. */
  family?: 4 | 6;
  /** Position in the rule list (0 = first; main is 32766). */
  priority: number;
  /** Default 'table' (look the packet up in `table`). */
  action?: RuleAction;
  /** Table for action 'table'. */
  table?: RouteTable;
  /** Rule protocol (FRA_PROTOCOL); default bpfkit's ({@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** A rule as the kernel reports it. */
export interface IpRuleInfo {
  family: 4 | 6;
  priority: number;
  action: RuleAction | 'goto' | 'nop' | `action ${number}`;
  table?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  src?: string;
  dst?: string;
  tos?: number;
  ipProto?: number;
  sport?: [number, number];
  dport?: [number, number];
  invert: boolean;
  /** The iif/oif named by the rule does not exist (the rule is inactive). */
  detached?: boolean;
  protocol: number;
}

export interface IpRuleListOptions extends NetlinkOptions {
  /** 4 or 6 (default both). */
  family?: 4 | 6;
  /** Only rules with this protocol, e.g. 'bpfkit'. */
  protocol?: RouteProtocol;
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

function ipProto(v: unknown, field: string): number {
  if (typeof v === 'string') {
    const n = (IP_PROTO_NAMES as Record<string, number>)[v];
    if (n === undefined) invalidArgument(field, `unknown IP protocol '${v}' (use a number or ${Object.keys(IP_PROTO_NAMES).join(', ')})`);
    return n;
  }
  return u8(v, field, 1);
}

function ifname(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 15 || /[\s/:]/.test(v)) {
    invalidArgument(field, `'${String(v)}' is not a valid interface name`);
  }
  return v;
}

const RULE_KEYS = new Set([
  'family', 'priority', 'action', 'table', 'protocol', 'fwmark', 'fwmask', 'iif', 'oif', 'src', 'dst', 'tos', 'ipProto',
  'sport', 'dport', 'invert',
]);

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

/** @internal family of a rule spec: explicit, else from src/dst, else `fallback`. */
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
  const action = ACTIONS[actionName];
  if (action === undefined) invalidArgument(f('action'), `unknown action '${String(actionName)}' (table, blackhole, unreachable, prohibit)`);
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

/** @internal identity of a normalised rule (every field the kernel keeps). */
export function ruleKey(r: NativeRule): string {
  return [
    r.family, r.priority, r.action, r.table ?? 0, (r.flags ?? 0) & FIB_RULE_INVERT, r.fwmark ?? '', r.fwmask ?? '',
    r.iif ?? '', r.oif ?? '', r.src ? `${r.src}/${r.srcLen}` : '', r.dst ? `${r.dst}/${r.dstLen}` : '', r.tos ?? 0,
    r.ipProto ?? 0, r.sport?.join('-') ?? '', r.dport?.join('-') ?? '', r.protocol ?? 0,
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
  p.push(r.action === 1 ? `lookup ${r.table}` : (ACTION_NAMES[r.action] ?? `action ${r.action}`));
  if (r.family === 6) p.push('(IPv6)');
  return p.join(' ');
}

/** @internal kernel form -> public form. */
export function ruleInfo(r: NativeRule): IpRuleInfo {
  const o: IpRuleInfo = {
    family: r.family,
    priority: r.priority,
    action: (ACTION_NAMES[r.action] ?? `action ${r.action}`) as IpRuleInfo['action'],
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

/**
 * @internal the rule requests that delete exactly `targets`, checked against `current`.
 * Throws (ERR_NOT_FOUND, or ERR_BUSY when the kernel would delete another rule) unless
 * `skip` is given, which then receives the problem and the target is left out.
 */
export function planRuleDeletes(
  current: NativeRule[],
  targets: { rule: NativeRule; field?: string }[],
  skip?: (err: BpfkitError) => void,
): PlannedOp[] {
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
    const planned: PlannedOp = { op: { kind: 'rule', cmd: 'delete', spec: t.rule }, undo: () => ({ kind: 'rule', cmd: 'add', spec: t.rule }) };
    if (t.field) planned.field = t.field;
    plan.push(planned);
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
export async function safeRuleUndo(ns: string, undo: PlannedOp[]): Promise<{ plan: PlannedOp[]; stuck: string[] }> {
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
    const ns = nsArg(opts.netns);
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
    const ns = nsArg(opts.netns);
    const list = Array.isArray(specs) ? (specs as IpRuleSpec[]) : [specs as IpRuleSpec];
    const seen = new Map<string, number>();
    const plan = list.map((s, i): PlannedOp => {
      const field = batchField(specs, i);
      const rule = normalizeRule(s, field);
      const key = ruleKey(rule);
      const dup = seen.get(key);
      if (dup !== undefined) invalidArgument(field, `same rule as rules[${dup}]`);
      seen.set(key, i);
      const p: PlannedOp = { op: { kind: 'rule', cmd: 'add', spec: rule }, undo: () => ({ kind: 'rule', cmd: 'delete', spec: rule }) };
      if (field) p.field = field;
      return p;
    });
    await runAtomic(ns, plan, (undo) => safeRuleUndo(ns, undo));
  }

  /**
   * Delete exactly the given rules (all fields must match, protocol included; the
   * default protocol is bpfkit's). ERR_NOT_FOUND before anything changes if one is
   * missing; all-or-nothing.
   */
  static async delete(specs: IpRuleSpec | readonly IpRuleSpec[], opts: NetlinkOptions = {}): Promise<void> {
    const ns = nsArg(opts.netns);
    const list = Array.isArray(specs) ? (specs as IpRuleSpec[]) : [specs as IpRuleSpec];
    const targets = list.map((s, i) => {
      const field = batchField(specs, i);
      return { rule: normalizeRule(s, field), ...(field ? { field } : {}) };
    });
    const current = await nl().nlRules(0, ns);
    await runAtomic(ns, planRuleDeletes(current, targets));
  }
}
