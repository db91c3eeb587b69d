/**
 * ACL rules: the user's model, its validation, and its expansion into the per-family
 * records the classifier compiles (one record per source x destination combination).
 *
 * Every error is a BpfkitError with code ERR_INVALID_RULE, the rule's `ruleId`, the
 * `field` at fault and `details.index` (position in the list), thrown before anything in
 * the kernel changes.
 */
import { BpfkitError, type BpfkitErrorCode } from '../../core/errors.js';
import { IP_PROTOCOLS, PORT_PROTOCOLS, ipProtocolNumber, ipProtocolShown, type IpProtocolName } from '../../core/protocols.js';
import { formatIPv6, parseCidr } from '../../core/codecs.js';
import { canonicalIPv4, formatIPv6Words, readIPv6 } from '../../core/codecs/ip-text.js';
import { ACT_ALLOW, ACT_DENY, ACT_LOG } from './layout.js';

/** What a rule does with a packet it matches: 'allow', 'deny' (drop at XDP), or 'log' (allow and report an event). */
export type AclAction = 'allow' | 'deny' | 'log';
/** A protocol name (lib/core/protocols.ts), 'any', or a number 0..255. */
export type AclProtocol = IpProtocolName | 'any' | number;
/** A port, an inclusive range `[from, to]`, or the same as text: `'443'`, `'1024-65535'`. */
export type AclPorts = number | readonly [number, number] | string;

/**
 * One rule. Fields combine with AND; a list inside `src` / `dst` is an OR. Rules are
 * checked in order and the first that matches decides.
 */
export interface AclRule {
  /** Your name for the rule: reported in events and stats. Unique in a rule set. */
  id: string;
  /** `allow`, `deny`, or `log` (allow and report an event). */
  action: AclAction;
  /** Source CIDR(s), IPv4 or IPv6. Absent: any source. */
  src?: string | readonly string[];
  /** Destination CIDR(s). Absent: any destination. */
  dst?: string | readonly string[];
  /** IP protocol: a name or a number 0..255. Absent or 'any': every protocol. */
  proto?: AclProtocol;
  /** Source port(s); needs proto tcp, udp, sctp, udplite or dccp. */
  srcPort?: AclPorts;
  /** Destination port(s); needs proto tcp, udp, sctp, udplite or dccp. */
  dstPort?: AclPorts;
  /** ICMP / ICMPv6 type (0..255); needs proto icmp or icmpv6. */
  icmpType?: number;
  /** ICMP / ICMPv6 code (0..255); needs icmpType. */
  icmpCode?: number;
  /** Ingress interface (name or index, in the firewall's namespace). Absent: any. */
  iface?: string | number;
}

const RULE_FIELDS = new Set(['id', 'action', 'src', 'dst', 'proto', 'srcPort', 'dstPort', 'icmpType', 'icmpCode', 'iface']);
export const ACL_ACTIONS: readonly AclAction[] = ['allow', 'deny', 'log'];
/** Protocol numbers by name: the shared table (lib/core/protocols.ts), under its old name. */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = IP_PROTOCOLS;
export { PORT_PROTOCOLS };
const MAX_ID_LENGTH = 256;
/** Most addresses in one src or dst list. */
export const MAX_LIST = 4096;
/** Most records (src x dst combinations) one rule may expand to. */
export const MAX_RECORDS_PER_RULE = 65536;

/** A parsed CIDR: IPv4 as a number (fast path, no Buffer), IPv6 as 16 bytes. */
export interface Net {
  family: 4 | 6;
  /** IPv4 network address as a signed 32-bit number (`>>> 0` for the unsigned value): a small integer, not a boxed double, in every Net. */
  v4: number;
  /** IPv6 network address (null for IPv4). */
  v6: Buffer | null;
  prefixLen: number;
  /** Canonical text. */
  text: string;
}

/** A validated rule, ready to compile. */
export interface NormalizedRule {
  /** The rule in canonical form (what rules() returns and the pin stores): made from the fields below when first asked for. */
  readonly rule: AclRule;
  id: string;
  action: number;
  /** One address (the rule's `src` was a string) or a list; null: any. */
  src: Net | readonly Net[] | null;
  dst: Net | readonly Net[] | null;
  proto: number | null;
  sport: [number, number] | null;
  dport: [number, number] | null;
  ifindex: number | null;
  /** The rule's `iface` as given (a name or an index); null: any interface. */
  iface: string | number | null;
  /** ports or ICMP type/code are selected: only packets with an L4 header match */
  needsL4: boolean;
}

const ACTION_NAMES: Record<number, AclAction> = { [ACT_ALLOW]: 'allow', [ACT_DENY]: 'deny', [ACT_LOG]: 'log' };

/** The name of a normalized rule's action code (without making its canonical form). */
export function actionName(code: number): AclAction {
  return ACTION_NAMES[code]!;
}

/**
 * A normalized rule: numbers and the parsed addresses, one object of one shape. Its
 * canonical form (`rule`) is a function of them, made only when something asks for it
 * (rules(), the stats, a one-rule change): a replace of 100k rules allocates, and the
 * garbage collector then moves, one object a rule fewer (and no list of texts a list).
 */
class NormRule implements NormalizedRule {
  #canon: AclRule | undefined = undefined;
  constructor(
    public id: string,
    public action: number,
    public src: Net | readonly Net[] | null,
    public dst: Net | readonly Net[] | null,
    public proto: number | null,
    public sport: [number, number] | null,
    public dport: [number, number] | null,
    public ifindex: number | null,
    public iface: string | number | null,
    public needsL4: boolean,
  ) {}

  get rule(): AclRule {
    return (this.#canon ??= canonOf(this));
  }

  /** The canonical form if it was made (sameRule's shortcut for a set built from ownRules()). */
  get made(): AclRule | undefined {
    return this.#canon;
  }
}

/** The canonical form of a normalized rule: fields in the order of AclRule, absent ones left out. */
function canonOf(n: NormalizedRule): AclRule {
  const canon: AclRule = new CanonRule(n.id, ACTION_NAMES[n.action]!);
  const proto = n.proto;
  if (proto !== null) canon.proto = ipProtocolShown(proto);
  if (n.src) canon.src = isList(n.src) ? n.src.map((c) => c.text) : n.src.text;
  if (n.dst) canon.dst = isList(n.dst) ? n.dst.map((c) => c.text) : n.dst.text;
  const sp = n.sport;
  const dp = n.dport;
  if (proto === 1 || proto === 58) {
    // (ports need a port protocol: with ICMP, sport / dport hold the type and code)
    if (sp) canon.icmpType = sp[0];
    if (dp) canon.icmpCode = dp[0];
  } else {
    if (sp) canon.srcPort = sp[0] === sp[1] ? sp[0] : sp;
    if (dp) canon.dstPort = dp[0] === dp[1] ? dp[0] : dp;
  }
  if (n.iface !== null) canon.iface = n.iface;
  return canon;
}

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

/** A canonical IPv4 CIDR as a Net with no allocation but the result (canonicalIPv4). */
function fastV4(s: string): Net | null {
  const slash = canonicalIPv4(s, V4);
  if (slash < 0) return null;
  const len = V4[1]!;
  return { family: 4, v4: V4[0]!, v6: null, prefixLen: len, text: len === 32 && slash < s.length ? s.slice(0, slash) : s };
}

const V6 = new Int32Array(6);

/**
 * An IPv6 CIDR of hex groups as a Net (readIPv6): no regex, no arrays, and the input kept
 * as the text when it is already canonical.
 */
function fastV6(s: string): Net | null {
  const slash = readIPv6(s, V6);
  if (slash < 0) return null;
  const len = V6[4]!;
  const v6 = Buffer.allocUnsafe(16); // (from the pool: 16 bytes, not an ArrayBuffer each)
  v6.writeInt32BE(V6[0]!, 0);
  v6.writeInt32BE(V6[1]!, 4);
  v6.writeInt32BE(V6[2]!, 8);
  v6.writeInt32BE(V6[3]!, 12);
  let text: string;
  if (V6[5] === 1) text = len === 128 && slash < s.length ? s.slice(0, slash) : s;
  else text = len === 128 ? formatIPv6Words(V6) : `${formatIPv6Words(V6)}/${len}`;
  return { family: 6, v4: 0, v6, prefixLen: len, text };
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
  if (typeof v === 'string') {
    const fast = fastV4(v) ?? fastV6(v);
    if (fast) return fast;
  }
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
 * A canonical rule under construction: a class (rather than a literal) so that V8 keeps
 * room in the object for the fields added after id and action, instead of allocating a
 * separate property store for them. Only ever seen as an AclRule: rules() and the pin
 * hand out plain copies (structuredClone, JSON).
 */
class CanonRule {
  constructor(
    public id: string,
    public action: AclAction,
  ) {}
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

/** Address families of a src or dst list (bit 1: IPv4, bit 2: IPv6; absent: both). */
function familiesOf(l: Net | readonly Net[] | null): number {
  if (!l) return 3;
  if (!isList(l)) return l.family === 4 ? 1 : 2;
  let m = 0;
  for (let i = 0; i < l.length; i++) m |= l[i]!.family === 4 ? 1 : 2;
  return m;
}

/**
 * Validates one rule and returns its canonical form. `resolveIface` turns an interface
 * name into an index (and checks an index exists); it throws on unknown interfaces.
 *
 * Hot: a 10,000-rule set runs this 10,000 times per change, so it allocates no closures
 * or temporary arrays; the checks and their order are those of the error contract
 * (first the shape and unknown fields, then id, action, proto, src, dst, ports, ICMP,
 * iface, address families).
 */
export function normalizeRule(raw: unknown, index: number, resolveIface?: (iface: string | number) => number): NormalizedRule {
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

  const rs = r.src;
  const rd = r.dst;
  const src = rs === undefined ? null : parseAddrList(rs, raw, index, 'src');
  const dst = rd === undefined ? null : parseAddrList(rd, raw, index, 'dst');

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
  const sf = familiesOf(src);
  const df = familiesOf(dst);
  const fams = sf & df;
  if (fams === 0)
    fail(raw, index, 'dst', `no destination of the same address family as the sources (src is IPv${sf & 1 ? 4 : 6}, dst is IPv${df & 1 ? 4 : 6})`);
  if (proto === 1 && !(fams & 1)) fail(raw, index, 'proto', "'icmp' is IPv4's; use 'icmpv6' with IPv6 addresses");
  if (proto === 58 && !(fams & 2)) fail(raw, index, 'proto', "'icmpv6' is IPv6's; use 'icmp' with IPv4 addresses");
  const combos = (src && isList(src) ? src.length : 1) * (dst && isList(dst) ? dst.length : 1);
  if (combos > MAX_RECORDS_PER_RULE) fail(raw, index, 'dst', `src x dst makes ${combos} combinations, at most ${MAX_RECORDS_PER_RULE}`);

  const iface = r.iface === undefined ? null : (r.iface as string | number);
  return new NormRule(id, actionCode, src, dst, proto, sport, dport, ifindex, iface, sport !== null || dport !== null);
}

function isList(l: Net | readonly Net[]): l is readonly Net[] {
  return Array.isArray(l);
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
function samePorts(v: unknown, p: readonly [number, number]): boolean {
  if (p[0] === p[1]) return v === p[0];
  return Array.isArray(v) && v.length === 2 && v[0] === p[0] && v[1] === p[1];
}

/** Is `v` the canonical form of a src / dst (a string for one address, a list of texts for a list)? */
function sameNets(v: unknown, l: Net | readonly Net[] | null): boolean {
  if (l === null) return false;
  if (!isList(l)) return v === l.text;
  if (!Array.isArray(v) || v.length !== l.length) return false;
  for (let i = 0; i < l.length; i++) if (v[i] !== l[i]!.text) return false;
  return true;
}

/**
 * Is `raw` exactly the canonical form of `n` (same fields, same values, as `n.rule` would
 * be), without making that form: compared field by field against the numbers.
 */
function sameRule(raw: unknown, n: NormalizedRule): boolean {
  if (n instanceof NormRule && raw === n.made) return true;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const r = raw as Record<string, unknown>;
  const proto = n.proto;
  const icmp = proto === 1 || proto === 58;
  let keys = 0;
  for (const k in r) {
    if (!Object.prototype.hasOwnProperty.call(r, k)) continue;
    keys++;
    const v = r[k];
    let same: boolean;
    switch (k) {
      case 'id':
        same = v === n.id;
        break;
      case 'action':
        same = v === ACTION_NAMES[n.action];
        break;
      case 'proto':
        same = proto !== null && v === ipProtocolShown(proto);
        break;
      case 'src':
        same = sameNets(v, n.src);
        break;
      case 'dst':
        same = sameNets(v, n.dst);
        break;
      case 'srcPort':
        same = !icmp && n.sport !== null && samePorts(v, n.sport);
        break;
      case 'dstPort':
        same = !icmp && n.dport !== null && samePorts(v, n.dport);
        break;
      case 'icmpType':
        same = icmp && n.sport !== null && v === n.sport[0];
        break;
      case 'icmpCode':
        same = icmp && n.dport !== null && v === n.dport[0];
        break;
      case 'iface':
        same = n.iface !== null && v === n.iface;
        break;
      default:
        same = false;
    }
    if (!same) return false;
  }
  // every key of raw is one of the canonical form's: the same set if as many
  const want = 2 + (proto !== null ? 1 : 0) + (n.src ? 1 : 0) + (n.dst ? 1 : 0) + (n.sport ? 1 : 0) + (n.dport ? 1 : 0) + (n.iface !== null ? 1 : 0);
  return keys === want;
}

/**
 * Validates a whole rule set (ids unique, at most `capacity` rules). Throws on the first
 * problem; returns the normalized rules in order and each rule's position by id. A rule
 * whose id is in `previous` and which is exactly that rule's canonical form (what rules()
 * returns) is taken from there without validating it again; rules with an interface are
 * always resolved again. `at`, when given, is filled with the position in `previous` of
 * the rule with the same id (-1: none).
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
    previous?: { ids: Map<string, number>; rules: readonly NormalizedRule[] };
    at?: Int32Array;
  },
): { norm: NormalizedRule[]; ids: Map<string, number> } {
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
  const out: NormalizedRule[] = new Array(rules.length);
  const previous = opts.previous;
  const prev = previous ? previous.rules : [];
  const at = opts.at;
  // rules [0, aligned) have the ids of prev [0, aligned); ids holds the rest (null: none yet)
  let aligned = 0;
  let ids: Map<string, number> | null = null;
  for (let i = 0; i < rules.length; i++) {
    const raw = rules[i] as { id?: unknown } | null;
    const rid = typeof raw === 'object' && raw !== null ? raw.id : undefined;
    let p: number | undefined;
    if (typeof rid === 'string') p = aligned === i && i < prev.length && prev[i]!.id === rid ? i : previous?.ids.get(rid);
    const had = p === undefined ? undefined : prev[p];
    const n = had && had.ifindex === null && sameRule(raw, had) ? had : normalizeRule(raw, i, opts.resolveIface);
    if (at) at[i] = p ?? -1; // (a valid rule's id is a string: looked up above)
    out[i] = n;
    if (p === i && aligned === i) {
      aligned++; // the id of prev[i]: distinct from those before it
      continue;
    }
    if (ids === null) {
      ids = new Map<string, number>();
      for (let k = 0; k < aligned; k++) ids.set(out[k]!.id, k);
    }
    // one lookup per rule: a set that does not grow the map found a duplicate id
    const size = ids.size;
    ids.set(n.id, i);
    if (ids.size === size) {
      let first = 0;
      while (out[first]!.id !== n.id) first++;
      throw ruleError(raw, i, 'id', `duplicate id (also rule #${first})`);
    }
  }
  if (ids === null) {
    if (previous && aligned === prev.length) return { norm: out, ids: previous.ids };
    ids = new Map<string, number>();
    for (let k = 0; k < aligned; k++) ids.set(out[k]!.id, k);
  }
  return { norm: out, ids };
}

/** The normalized rules of a rule set (normalizeRuleSet); `ids`, when given (empty), gets each rule's position by id. */
export function normalizeRules(
  rules: unknown,
  opts: {
    capacity: number;
    resolveIface?: (iface: string | number) => number;
    previous?: { ids: Map<string, number>; rules: readonly NormalizedRule[] };
    ids?: Map<string, number>;
    at?: Int32Array;
  },
): NormalizedRule[] {
  const r = normalizeRuleSet(rules, opts);
  if (opts.ids) for (const [id, i] of r.ids) opts.ids.set(id, i);
  return r.norm;
}

// the expansion into records lives beside (expand.ts); its users import it from here
export { expandRules, recordCounts } from './expand.js';
