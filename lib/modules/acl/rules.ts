/**
 * ACL rules: the validation of the user's rules (rule.ts) into a rule set in columns
 * (table.ts), which expand.ts makes into the per-family records the classifier compiles.
 *
 * Every error is a BpfkitError with code ERR_INVALID_RULE, the rule's `ruleId`, the
 * `field` at fault and `details.index` (position in the list), thrown before anything in
 * the kernel changes.
 */
import { BpfkitError, type BpfkitErrorCode } from '../../core/errors.js';
import { IP_PROTOCOLS, PORT_PROTOCOLS, ipProtocolNumber, ipProtocolShown } from '../../core/net/protocols.js';
import { formatIPv6, parseCidr } from '../../core/codecs.js';
import { canonicalIPv4, formatIPv6Words, readIPv6 } from '../../core/codecs/ip-text.js';
import { ACT_ALLOW, ACT_DENY, ACT_LOG } from './layout.js';
import { APPEND_ROOM, RuleTable, SIDE_ANY, SIDE_LIST, SIDE_V4, SIDE_V6, actionName, type Net, type NormalizedRule } from './table.js';

export { actionName, RuleTable, type Net, type NormalizedRule } from './table.js';

import type { AclAction } from './rule.js';

export type { AclAction, AclPorts, AclProtocol, AclRule } from './rule.js';

const RULE_FIELDS = new Set(['id', 'action', 'src', 'dst', 'proto', 'srcPort', 'dstPort', 'icmpType', 'icmpCode', 'iface']);
export const ACL_ACTIONS: readonly AclAction[] = ['allow', 'deny', 'log'];
/** Protocol numbers by name: the shared table (lib/core/net/protocols.ts), under its old name. */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = IP_PROTOCOLS;
export { PORT_PROTOCOLS };
const MAX_ID_LENGTH = 256;
/** Most addresses in one src or dst list. */
export const MAX_LIST = 4096;
/** Most records (src x dst combinations) one rule may expand to. */
export const MAX_RECORDS_PER_RULE = 65536;

export function ruleError(rule: unknown, index: number, field: string, message: string, code: BpfkitErrorCode = 'ERR_INVALID_RULE'): BpfkitError {
  const raw = typeof rule === 'object' && rule !== null ? (rule as { id?: unknown }).id : undefined;
  const id = typeof raw === 'string' && raw.length > 0 ? raw : undefined;
  const who = id !== undefined ? `rule '${id}' (#${index})` : `rule #${index}`;
  const opts: ConstructorParameters<typeof BpfkitError>[2] = { field, details: { index } };
  if (id !== undefined) opts.ruleId = id;
  return new BpfkitError(code, `${who}: ${field}: ${message}`, opts);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return String(v);
}

/** Throws a rule's ERR_INVALID_RULE (a function, not a closure per rule: validation is hot). */
function fail(raw: unknown, index: number, field: string, message: string): never {
  throw ruleError(raw, index, field, message);
}

/**
 * [p, p] for a single port, shared by every rule that selects it (read only): a set of
 * 10,000 rules uses a few hundred distinct ports, and fewer objects means less to collect.
 */
const PORT_PAIRS: ([number, number] | undefined)[] = [];

function portPair(p: number): [number, number] {
  return (PORT_PAIRS[p] ??= [p, p]);
}

function parsePorts(v: unknown, raw: unknown, index: number, field: string): [number, number] {
  if (typeof v === 'number') {
    if (!isPort(v)) fail(raw, index, field, `${show(v)} is not a port (0..65535)`);
    return portPair(v);
  }
  let lo: unknown;
  let hi: unknown;
  if (Array.isArray(v) && v.length === 2) {
    lo = v[0];
    hi = v[1];
  } else if (typeof v === 'string') {
    const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(v);
    if (!m) fail(raw, index, field, `${show(v)} is not a port or a range like '1024-65535'`);
    lo = Number(m[1]);
    hi = m[2] === undefined ? lo : Number(m[2]);
  } else {
    fail(raw, index, field, `expected a port, [from, to] or 'from-to', got ${show(v)}`);
  }
  if (!isPort(lo)) fail(raw, index, field, `${show(lo)} is not a port (0..65535)`);
  if (!isPort(hi)) fail(raw, index, field, `${show(hi)} is not a port (0..65535)`);
  if (lo > hi) fail(raw, index, field, `range ${lo}-${hi} is reversed (from > to)`);
  return lo === hi ? portPair(lo) : [lo, hi];
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 0 && p <= 65535;
}

const V4 = new Int32Array(2);

/** The canonical text of a CIDR canonicalIPv4 read into V4 (`slash`: where its prefix begins): the input, less a "/32". */
function v4Text(s: string, slash: number): string {
  return V4[1] === 32 && slash < s.length ? s.slice(0, slash) : s;
}

/** A canonical IPv4 CIDR as a Net with no allocation but the result (canonicalIPv4). */
function fastV4(s: string): Net | null {
  const slash = canonicalIPv4(s, V4);
  if (slash < 0) return null;
  return { family: 4, v4: V4[0]!, v6: null, prefixLen: V4[1]!, text: v4Text(s, slash) };
}

const V6 = new Int32Array(6);

/**
 * The canonical text of an IPv6 CIDR readIPv6 read into V6 (`slash`: where its prefix
 * begins): the input itself when it is canonical (less a "/128"), else formatted.
 */
function v6Text(s: string, slash: number): string {
  const len = V6[4]!;
  if (V6[5] === 1) return len === 128 && slash < s.length ? s.slice(0, slash) : s;
  return len === 128 ? formatIPv6Words(V6) : `${formatIPv6Words(V6)}/${len}`;
}

/**
 * An IPv6 CIDR of hex groups as a Net (readIPv6): no regex, no arrays, and the input kept
 * as the text when it is already canonical.
 */
function fastV6(s: string): Net | null {
  const slash = readIPv6(s, V6);
  if (slash < 0) return null;
  const v6 = Buffer.allocUnsafe(16); // (from the pool: 16 bytes, not an ArrayBuffer each)
  v6.writeInt32BE(V6[0]!, 0);
  v6.writeInt32BE(V6[1]!, 4);
  v6.writeInt32BE(V6[2]!, 8);
  v6.writeInt32BE(V6[3]!, 12);
  return { family: 6, v4: 0, v6, prefixLen: V6[4]!, text: v6Text(s, slash) };
}

/** A CIDR: the canonical forms read without allocation, anything else by parseCidr (which explains errors). */
function parseNet(s: string): Net {
  const fast = fastV4(s) ?? fastV6(s);
  if (fast) return fast;
  const c = parseCidr(s, 'cidr');
  if (c.family === 4) {
    const v4 = c.addr.readInt32BE(0);
    const a = c.addr;
    const text = `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
    return { family: 4, v4, v6: null, prefixLen: c.prefixLen, text: c.prefixLen === 32 ? text : `${text}/${c.prefixLen}` };
  }
  const text = formatIPv6(c.addr);
  return { family: 6, v4: 0, v6: c.addr, prefixLen: c.prefixLen, text: c.prefixLen === 128 ? text : `${text}/${c.prefixLen}` };
}

/** A rule's src or dst: one Net for a string (no list allocated), a list for a list. */
function parseAddrList(v: unknown, raw: unknown, index: number, field: 'src' | 'dst'): Net | Net[] {
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : fail(raw, index, field, `expected a CIDR or a list of CIDRs, got ${show(v)}`);
  if (list.length === 0) fail(raw, index, field, 'empty list (leave the field out to match any address)');
  if (list.length > MAX_LIST) fail(raw, index, field, `${list.length} entries, at most ${MAX_LIST}`);
  const sub = (i: number) => (typeof v === 'string' ? field : `${field}[${i}]`);
  const out: Net[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const s = list[i];
    if (typeof s !== 'string') fail(raw, index, sub(i), `expected a CIDR string, got ${show(s)}`);
    try {
      out[i] = parseNet(s as string);
    } catch (e) {
      const msg = e instanceof BpfkitError ? e.message.replace(/^cidr: /, '') : String(e);
      fail(raw, index, sub(i), msg);
    }
  }
  return typeof v === 'string' ? out[0]! : out;
}

/**
 * A rule's src or dst into side s of row i: one network straight into the columns (a
 * canonical IPv4 or IPv6 CIDR read without allocation, the input kept as its text), a
 * list, or anything else, by parseAddrList (which explains errors).
 */
function parseSide(t: RuleTable, i: number, s: number, v: unknown, raw: unknown, index: number, field: 'src' | 'dst'): void {
  if (typeof v === 'string') {
    const k = 2 * i + s;
    const a = 8 * i + 4 * s;
    let slash = canonicalIPv4(v, V4);
    if (slash >= 0) {
      t.side[k] = SIDE_V4;
      t.plen[k] = V4[1]!;
      t.addr[a] = V4[0]!;
      t.texts[k] = v4Text(v, slash);
      return;
    }
    slash = readIPv6(v, V6);
    if (slash >= 0) {
      t.side[k] = SIDE_V6;
      t.plen[k] = V6[4]!;
      for (let w = 0; w < 4; w++) t.addr[a + w] = V6[w]!;
      t.texts[k] = v6Text(v, slash);
      return;
    }
  }
  t.setNet(i, s, parseAddrList(v, raw, index, field));
}

/** Is `k` a rule field? (a switch: this runs for every key of every rule) */
function isRuleField(k: string): boolean {
  switch (k) {
    case 'id':
    case 'action':
    case 'src':
    case 'dst':
    case 'proto':
    case 'srcPort':
    case 'dstPort':
    case 'icmpType':
    case 'icmpCode':
    case 'iface':
      return true;
    default:
      return false;
  }
}

/** Address families of side k of a row (bit 1: IPv4, bit 2: IPv6; absent: both). */
function familiesOf(t: RuleTable, k: number): number {
  const side = t.side[k]!;
  if (side === SIDE_ANY) return 3;
  if (side !== SIDE_LIST) return side === SIDE_V4 ? 1 : 2;
  const l = t.lists![k]!;
  let m = 0;
  for (let i = 0; i < l.length; i++) m |= l[i]!.family === 4 ? 1 : 2;
  return m;
}

/** Addresses side k of a row has (absent: 1). */
function sizeOf(t: RuleTable, k: number): number {
  return t.side[k] === SIDE_LIST ? t.lists![k]!.length : 1;
}

/**
 * Validates one rule and returns it as an object. `resolveIface` turns an interface
 * name into an index (and checks an index exists); it throws on unknown interfaces.
 */
export function normalizeRule(raw: unknown, index: number, resolveIface?: (iface: string | number) => number): NormalizedRule {
  const t = new RuleTable(1);
  validateRow(t, 0, raw, index, resolveIface);
  return t.row(0);
}

/**
 * Validates one rule into row `i` of `t` (every column of the row written).
 *
 * Hot: a 10,000-rule set runs this 10,000 times per change, so it allocates no closures,
 * temporary arrays or objects for one address; the checks and their order are those of
 * the error contract (first the shape and unknown fields, then id, action, proto, src,
 * dst, ports, ICMP, iface, address families).
 */
function validateRow(t: RuleTable, i: number, raw: unknown, index: number, resolveIface?: (iface: string | number) => number): void {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(raw, index, 'rule', `expected an object, got ${show(raw)}`);
  const r = raw as Record<string, unknown>;
  for (const k in r) {
    if (!isRuleField(k) && Object.prototype.hasOwnProperty.call(r, k)) fail(raw, index, k, `unknown field (rule fields: ${[...RULE_FIELDS].join(', ')})`);
  }
  const id = r.id;
  if (typeof id !== 'string' || id.length === 0) fail(raw, index, 'id', `expected a non-empty string, got ${show(id)}`);
  if (id.length > MAX_ID_LENGTH) fail(raw, index, 'id', `${id.length} characters, at most ${MAX_ID_LENGTH}`);
  const action = r.action;
  const actionCode = action === 'allow' ? ACT_ALLOW : action === 'deny' ? ACT_DENY : action === 'log' ? ACT_LOG : -1;
  if (actionCode < 0) fail(raw, index, 'action', `expected 'allow', 'deny' or 'log', got ${show(action)}`);

  let proto: number | null = null;
  const rp = r.proto;
  if (rp !== undefined && rp !== 'any') {
    if (typeof rp === 'number' && Number.isInteger(rp) && rp >= 0 && rp <= 255) {
      proto = rp;
    } else if (typeof rp === 'string') {
      const n = ipProtocolNumber(rp);
      if (n === undefined)
        fail(raw, index, 'proto', `unknown protocol ${show(rp)} (names: ${Object.keys(IP_PROTOCOLS).join(', ')}, 'any', or a number 0..255)`);
      proto = n;
    } else {
      fail(raw, index, 'proto', `expected a protocol name or a number 0..255, got ${show(rp)}`);
    }
  }

  const ks = 2 * i;
  const kd = ks + 1;
  if (r.src === undefined) t.setNet(i, 0, null);
  else parseSide(t, i, 0, r.src, raw, index, 'src');
  if (r.dst === undefined) t.setNet(i, 1, null);
  else parseSide(t, i, 1, r.dst, raw, index, 'dst');

  let sport: [number, number] | null = null;
  let dport: [number, number] | null = null;
  if (r.srcPort !== undefined) {
    sport = parsePorts(r.srcPort, raw, index, 'srcPort');
    if (proto === null || !PORT_PROTOCOLS.has(proto)) portsNeedProto(raw, index, 'srcPort', proto);
  }
  if (r.dstPort !== undefined) {
    dport = parsePorts(r.dstPort, raw, index, 'dstPort');
    if (proto === null || !PORT_PROTOCOLS.has(proto)) portsNeedProto(raw, index, 'dstPort', proto);
  }
  const icmpType = r.icmpType;
  const icmpCode = r.icmpCode;
  if (icmpType !== undefined || icmpCode !== undefined) {
    if (icmpType !== undefined && !isByte(icmpType)) fail(raw, index, 'icmpType', `expected an integer 0..255, got ${show(icmpType)}`);
    if (icmpCode !== undefined && !isByte(icmpCode)) fail(raw, index, 'icmpCode', `expected an integer 0..255, got ${show(icmpCode)}`);
    if (icmpType === undefined) fail(raw, index, 'icmpCode', 'needs icmpType');
    if (proto !== 1 && proto !== 58) fail(raw, index, 'icmpType', `needs proto icmp or icmpv6 (proto is ${proto === null ? 'any' : protoText(proto)})`);
    sport = portPair(icmpType as number);
    if (icmpCode !== undefined) {
      dport = portPair(icmpCode as number);
    }
  }

  let ifindex: number | null = null;
  if (r.iface !== undefined) {
    const v = r.iface;
    if (typeof v === 'string' ? !/^[A-Za-z0-9_.:@-]{1,15}$/.test(v) : !(typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 0xffffffff)) {
      fail(raw, index, 'iface', `expected an interface name or index, got ${show(v)}`);
    }
    if (resolveIface) {
      try {
        ifindex = resolveIface(v as string | number);
      } catch (e) {
        fail(raw, index, 'iface', `no interface ${show(v)} in the firewall's network namespace${e instanceof Error ? ` (${e.message})` : ''}`);
      }
    } else if (typeof v === 'number') {
      ifindex = v;
    } else {
      fail(raw, index, 'iface', 'interface names need a firewall to resolve them');
    }
  }

  // families (bit 1: IPv4, bit 2: IPv6): each src x dst pair must be of one family
  const sf = familiesOf(t, ks);
  const df = familiesOf(t, kd);
  const fams = sf & df;
  if (fams === 0)
    fail(raw, index, 'dst', `no destination of the same address family as the sources (src is IPv${sf & 1 ? 4 : 6}, dst is IPv${df & 1 ? 4 : 6})`);
  if (proto === 1 && !(fams & 1)) fail(raw, index, 'proto', "'icmp' is IPv4's; use 'icmpv6' with IPv6 addresses");
  if (proto === 58 && !(fams & 2)) fail(raw, index, 'proto', "'icmpv6' is IPv6's; use 'icmp' with IPv4 addresses");
  const combos = sizeOf(t, ks) * sizeOf(t, kd);
  if (combos > MAX_RECORDS_PER_RULE) fail(raw, index, 'dst', `src x dst makes ${combos} combinations, at most ${MAX_RECORDS_PER_RULE}`);

  t.ids[i] = id;
  t.action[i] = actionCode;
  t.proto[i] = proto ?? -1;
  const p = t.ports;
  p[4 * i] = sport ? sport[0] : -1;
  p[4 * i + 1] = sport ? sport[1] : -1;
  p[4 * i + 2] = dport ? dport[0] : -1;
  p[4 * i + 3] = dport ? dport[1] : -1;
  t.ifindex[i] = ifindex ?? -1;
  if (r.iface !== undefined) (t.iface ??= new Array<string | number | undefined>(t.length))[i] = r.iface as string | number;
}

function isByte(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
}

/** A protocol as an error message shows it: its canonical value (a name or a number), quoted as given. */
function protoText(proto: number): string {
  return show(ipProtocolShown(proto));
}

function portsNeedProto(raw: unknown, index: number, field: string, proto: number | null): never {
  return fail(raw, index, field, `ports need proto tcp, udp, sctp, udplite or dccp (proto is ${proto === null ? 'any' : protoText(proto)})`);
}

/** Is `v` a canonical port selector for [lo, hi] (a number for one port, else [from, to])? */
function samePorts(v: unknown, lo: number, hi: number): boolean {
  if (lo === hi) return v === lo;
  return Array.isArray(v) && v.length === 2 && v[0] === lo && v[1] === hi;
}

/** Is `v` the canonical form of side k of a row (a string for one address, a list of texts for a list)? */
function sameSide(v: unknown, t: RuleTable, k: number): boolean {
  const side = t.side[k]!;
  if (side === SIDE_ANY) return false;
  if (side !== SIDE_LIST) return v === t.texts[k];
  const l = t.lists![k]!;
  if (!Array.isArray(v) || v.length !== l.length) return false;
  for (let i = 0; i < l.length; i++) if (v[i] !== l[i]!.text) return false;
  return true;
}

/**
 * Is `raw` exactly the canonical form of row j of `t` (same fields, same values, as
 * `t.rule(j)` would be), without making that form: compared field by field against the
 * columns.
 */
function sameRule(raw: unknown, t: RuleTable, j: number): boolean {
  if (t.canon !== null && raw === t.canon[j] && raw !== undefined) return true;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const r = raw as Record<string, unknown>;
  const pr = t.proto[j]!;
  const icmp = pr === 1 || pr === 58;
  const p = t.ports;
  const sp = p[4 * j]!;
  const dp = p[4 * j + 2]!;
  const iface = t.iface === null ? undefined : t.iface[j];
  let keys = 0;
  for (const k in r) {
    if (!Object.prototype.hasOwnProperty.call(r, k)) continue;
    keys++;
    const v = r[k];
    let same: boolean;
    switch (k) {
      case 'id':
        same = v === t.ids[j];
        break;
      case 'action':
        same = v === actionName(t.action[j]!);
        break;
      case 'proto':
        same = pr >= 0 && v === ipProtocolShown(pr);
        break;
      case 'src':
        same = sameSide(v, t, 2 * j);
        break;
      case 'dst':
        same = sameSide(v, t, 2 * j + 1);
        break;
      case 'srcPort':
        same = !icmp && sp >= 0 && samePorts(v, sp, p[4 * j + 1]!);
        break;
      case 'dstPort':
        same = !icmp && dp >= 0 && samePorts(v, dp, p[4 * j + 3]!);
        break;
      case 'icmpType':
        same = icmp && sp >= 0 && v === sp;
        break;
      case 'icmpCode':
        same = icmp && dp >= 0 && v === dp;
        break;
      case 'iface':
        same = iface !== undefined && v === iface;
        break;
      default:
        same = false;
    }
    if (!same) return false;
  }
  // every key of raw is one of the canonical form's: the same set if as many
  const want =
    2 +
    (pr >= 0 ? 1 : 0) +
    (t.side[2 * j] !== SIDE_ANY ? 1 : 0) +
    (t.side[2 * j + 1] !== SIDE_ANY ? 1 : 0) +
    (sp >= 0 ? 1 : 0) +
    (dp >= 0 ? 1 : 0) +
    (iface !== undefined ? 1 : 0);
  return keys === want;
}

/**
 * Validates a whole rule set (ids unique, at most `capacity` rules). Throws on the first
 * problem; returns the rules in a table (table.ts), in order, and each rule's position by
 * id. A rule whose id is in `previous` and which is exactly that rule's canonical form
 * (what rules() returns) is copied from there without validating it again (counted in
 * the table's `reused`); rules with an interface are always resolved again. `at`, when
 * given, is filled with the position in `previous` of the rule with the same id (-1:
 * none).
 *
 * While the ids are those of `previous` position by position (a set replaced or edited
 * under the same ids, the common case), no map is looked up or built: ids equal to a
 * previous set's distinct ids, in its order, are distinct, and when the whole set is so,
 * `ids` is `previous.ids` itself (the same map, not a copy; a new map from the first id
 * that differs).
 */
export function normalizeRuleSet(
  rules: unknown,
  opts: {
    capacity: number;
    resolveIface?: (iface: string | number) => number;
    previous?: { ids: Map<string, number>; rules: RuleTable };
    at?: Int32Array;
  },
): { norm: RuleTable; ids: Map<string, number> } {
  if (!Array.isArray(rules)) throw new BpfkitError('ERR_INVALID_RULE', `rules: expected an array of rules, got ${show(rules)}`, { field: 'rules' });
  if (rules.length > opts.capacity) {
    throw ruleError(
      rules[opts.capacity],
      opts.capacity,
      'rules',
      `${rules.length} rules, the firewall's capacity is ${opts.capacity} (maxRules)`,
      'ERR_MAP_FULL',
    );
  }
  const out = new RuleTable(rules.length, APPEND_ROOM);
  const previous = opts.previous;
  const prev = previous ? previous.rules : EMPTY;
  const at = opts.at;
  // rules [0, aligned) have the ids of prev [0, aligned); ids holds the rest (null: none yet)
  let aligned = 0;
  let ids: Map<string, number> | null = null;
  for (let i = 0; i < rules.length; i++) {
    const raw = rules[i] as { id?: unknown } | null;
    const rid = typeof raw === 'object' && raw !== null ? raw.id : undefined;
    let p: number | undefined;
    if (typeof rid === 'string') p = aligned === i && i < prev.length && prev.ids[i] === rid ? i : previous?.ids.get(rid);
    if (p !== undefined && prev.ifindex[p]! < 0 && sameRule(raw, prev, p)) {
      out.copyRow(i, prev, p);
      out.reused++;
    } else {
      validateRow(out, i, raw, i, opts.resolveIface);
    }
    if (at) at[i] = p ?? -1; // (a valid rule's id is a string: looked up above)
    const id = out.ids[i]!;
    if (p === i && aligned === i) {
      aligned++; // the id of prev[i]: distinct from those before it
      continue;
    }
    if (ids === null) {
      ids = new Map<string, number>();
      for (let k = 0; k < aligned; k++) ids.set(out.ids[k]!, k);
    }
    // one lookup per rule: a set that does not grow the map found a duplicate id
    const size = ids.size;
    ids.set(id, i);
    if (ids.size === size) {
      let first = 0;
      while (out.ids[first] !== id) first++;
      throw ruleError(raw, i, 'id', `duplicate id (also rule #${first})`);
    }
  }
  if (ids === null) {
    if (previous && aligned === prev.length) return { norm: out, ids: previous.ids };
    ids = new Map<string, number>();
    for (let k = 0; k < aligned; k++) ids.set(out.ids[k]!, k);
  }
  return { norm: out, ids };
}

const EMPTY = new RuleTable(0);

/** The rules of a rule set as objects (normalizeRuleSet, then RuleTable.rows()); `ids`, when given (empty), gets each rule's position by id. */
export function normalizeRules(
  rules: unknown,
  opts: {
    capacity: number;
    resolveIface?: (iface: string | number) => number;
    previous?: { ids: Map<string, number>; rules: RuleTable };
    ids?: Map<string, number>;
    at?: Int32Array;
  },
): NormalizedRule[] {
  const r = normalizeRuleSet(rules, opts);
  if (opts.ids) for (const [id, i] of r.ids) opts.ids.set(id, i);
  return r.norm.rows();
}

// the expansion into records lives beside (expand.ts); its users import it from here
export { expandRules, recordCounts } from './expand.js';
