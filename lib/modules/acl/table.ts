/**
 * A validated ACL rule set in columns: what rules.ts's validation writes and what the
 * expansion (expand.ts), the source (source.ts) and the overlay (delta.ts) read.
 *
 * Typed arrays and a few arrays of strings rather than an object per rule and per
 * address: a replace of 100k rules used to leave 12-37 MB of small objects (a rule, its
 * two networks, its port ranges), which the garbage collector copies out of the young
 * generation while the trees compile on the other threads. Here a rule is about 60 bytes
 * of typed arrays and three pointers in arrays of their own. Lists of addresses (rare) and
 * interfaces (rarer) stay objects, in sparse arrays made when a rule has one.
 *
 * A rule as an object (NormalizedRule: what normalizeRule() returns, a one-rule change
 * writes, and the tests read) is made from its row on demand (row()).
 */
import { ipProtocolShown } from '../../core/net/protocols.js';
import { ACT_ALLOW, ACT_DENY, ACT_LOG, OVL_MAX } from './layout.js';
import type { AclAction, AclRule } from './rule.js';

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

/** A validated rule as an object (a row of a RuleTable, made on demand). */
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
 * Rows a validated set's arrays hold beyond its rules: the one-rule adds the overlay takes
 * before the next compile (OVL_MAX records a family, so at most as many rules), which then
 * allocate nothing (growing a 10k-rule set's arrays of ids and texts costs ~1 ms here).
 */
export const APPEND_ROOM = OVL_MAX;

/** How a rule's src or dst is held (RuleTable.side); one network's is its family's number. */
export const SIDE_ANY = 0; // absent: any address
export const SIDE_LIST = 1; // a list: RuleTable.lists
export const SIDE_V4 = 4; // one IPv4 network in the columns
export const SIDE_V6 = 6; // one IPv6 network in the columns

function isList(l: Net | readonly Net[]): l is readonly Net[] {
  return Array.isArray(l);
}

/** A network's address words into `into` from `at` on, as the columns hold them (IPv4: one, signed; IPv6: four). */
export function netWords(c: Net, into: Int32Array, at: number): void {
  if (c.family === 4) {
    into[at] = c.v4;
    return;
  }
  for (let w = 0; w < 4; w++) into[at + w] = c.v6!.readInt32BE(4 * w);
}

/**
 * A rule set in columns, one row per rule. Sides: index 2i is rule i's src, 2i + 1 its
 * dst. Absent values: proto -1, a port range's low end -1, ifindex -1.
 */
export class RuleTable {
  readonly ids: string[];
  action: Uint8Array;
  proto: Int16Array;
  /** [4i, 4i+1]: source port range (or ICMP type twice); [4i+2, 4i+3]: destination port range (or ICMP code). */
  ports: Int32Array;
  ifindex: Float64Array;
  /** Each side's SIDE_*. */
  side: Uint8Array;
  /** A one-network side's prefix length. */
  plen: Uint8Array;
  /** A one-network side's address: words [4s, 4s+3] of side s (IPv4: the first, as a signed 32-bit number). */
  addr: Int32Array;
  /** A one-network side's canonical text ('' for the others). */
  readonly texts: string[];
  /** The rule's `iface` as given; null while no rule has one. */
  iface: (string | number | undefined)[] | null = null;
  /** A SIDE_LIST side's networks; null while no rule has a list. */
  lists: (readonly Net[] | undefined)[] | null = null;
  /** Canonical forms made (rule()); null while none was asked for. */
  canon: (AclRule | undefined)[] | null = null;
  /** Rows the validation took from the previous set without validating them again. */
  reused = 0;

  /** Rules in the set (the arrays may have room for more: one-rule adds). */
  length: number;

  /** `room`: rows more the arrays hold, for appends without growing them. */
  constructor(length: number, room = 0) {
    this.length = length;
    const cap = length + room;
    // (a JS array shortened by a little keeps its backing store: pushes within it allocate nothing)
    this.ids = new Array<string>(cap);
    this.ids.length = length;
    this.texts = new Array<string>(2 * cap);
    this.texts.length = 2 * length;
    this.action = new Uint8Array(cap);
    this.proto = new Int16Array(cap);
    this.ports = new Int32Array(4 * cap);
    this.ifindex = new Float64Array(cap);
    this.side = new Uint8Array(2 * cap);
    this.plen = new Uint8Array(2 * cap);
    this.addr = new Int32Array(8 * cap);
  }

  /** The rows of these rules (a one-rule change's rule, a test's set). */
  static of(rules: readonly NormalizedRule[]): RuleTable {
    const t = new RuleTable(rules.length);
    for (let i = 0; i < rules.length; i++) t.setRow(i, rules[i]!);
    return t;
  }

  /** Does rule i select ports or ICMP type / code (only packets with an L4 header match)? */
  needsL4(i: number): boolean {
    return this.ports[4 * i]! >= 0 || this.ports[4 * i + 2]! >= 0;
  }

  /** Side s (0 src, 1 dst) of rule i as a Net, a list, or null (any). */
  net(i: number, s: number): Net | readonly Net[] | null {
    const k = 2 * i + s;
    const side = this.side[k]!;
    if (side === SIDE_ANY) return null;
    if (side === SIDE_LIST) return this.lists![k]!;
    const a = 8 * i + 4 * s;
    if (side === SIDE_V4) return { family: 4, v4: this.addr[a]!, v6: null, prefixLen: this.plen[k]!, text: this.texts[k]! };
    const v6 = Buffer.alloc(16);
    for (let w = 0; w < 4; w++) v6.writeInt32BE(this.addr[a + w]!, 4 * w);
    return { family: 6, v4: 0, v6, prefixLen: this.plen[k]!, text: this.texts[k]! };
  }

  /** Rule i as an object. */
  row(i: number): NormalizedRule {
    const p = this.ports;
    const proto = this.proto[i]!;
    const ifx = this.ifindex[i]!;
    const n = new NormRule(
      this.ids[i]!,
      this.action[i]!,
      this.net(i, 0),
      this.net(i, 1),
      proto < 0 ? null : proto,
      p[4 * i]! < 0 ? null : [p[4 * i]!, p[4 * i + 1]!],
      p[4 * i + 2]! < 0 ? null : [p[4 * i + 2]!, p[4 * i + 3]!],
      ifx < 0 ? null : ifx,
      this.iface?.[i] ?? null,
      this.needsL4(i),
    );
    const c = this.canon?.[i];
    if (c) n.adopt(c);
    return n;
  }

  /** Every rule as an object. */
  rows(): NormalizedRule[] {
    const out = new Array<NormalizedRule>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.row(i);
    return out;
  }

  /** Rule i's canonical form (made once, then kept: not to be changed). */
  rule(i: number): AclRule {
    const c = (this.canon ??= new Array<AclRule | undefined>(this.length));
    return (c[i] ??= canonOf(this.row(i)));
  }

  /** Every rule's canonical form (kept: not to be changed; rules() of the firewall copies them). */
  rules(): AclRule[] {
    const out = new Array<AclRule>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.rule(i);
    return out;
  }

  /** Writes rule i from an object. */
  setRow(i: number, n: NormalizedRule): void {
    this.ids[i] = n.id;
    this.action[i] = n.action;
    this.proto[i] = n.proto ?? -1;
    const p = this.ports;
    p[4 * i] = n.sport ? n.sport[0] : -1;
    p[4 * i + 1] = n.sport ? n.sport[1] : -1;
    p[4 * i + 2] = n.dport ? n.dport[0] : -1;
    p[4 * i + 3] = n.dport ? n.dport[1] : -1;
    this.ifindex[i] = n.ifindex ?? -1;
    if (n.iface !== null) (this.iface ??= new Array<string | number | undefined>(this.length))[i] = n.iface;
    else if (this.iface) this.iface[i] = undefined;
    this.setNet(i, 0, n.src);
    this.setNet(i, 1, n.dst);
    if (this.canon) this.canon[i] = undefined;
  }

  /** Writes side s of rule i from a Net, a list or null. */
  setNet(i: number, s: number, l: Net | readonly Net[] | null): void {
    const k = 2 * i + s;
    if (this.lists) this.lists[k] = undefined;
    this.texts[k] = '';
    if (!l) {
      this.side[k] = SIDE_ANY;
      return;
    }
    if (isList(l)) {
      this.side[k] = SIDE_LIST;
      (this.lists ??= new Array<readonly Net[] | undefined>(2 * this.length))[k] = l;
      return;
    }
    this.side[k] = l.family === 4 ? SIDE_V4 : SIDE_V6;
    this.plen[k] = l.prefixLen;
    this.texts[k] = l.text;
    netWords(l, this.addr, 8 * i + 4 * s);
  }

  /** Copies row j of `from` into row i (a rule taken over from the set in force). */
  copyRow(i: number, from: RuleTable, j: number): void {
    this.ids[i] = from.ids[j]!;
    this.action[i] = from.action[j]!;
    this.proto[i] = from.proto[j]!;
    for (let w = 0; w < 4; w++) this.ports[4 * i + w] = from.ports[4 * j + w]!;
    this.ifindex[i] = from.ifindex[j]!;
    const fi = from.iface?.[j];
    if (fi !== undefined) (this.iface ??= new Array<string | number | undefined>(this.length))[i] = fi;
    for (let s = 0; s < 2; s++) {
      const k = 2 * i + s;
      const fk = 2 * j + s;
      this.side[k] = from.side[fk]!;
      this.plen[k] = from.plen[fk]!;
      this.texts[k] = from.texts[fk]!;
      const fl = from.lists?.[fk];
      if (fl) (this.lists ??= new Array<readonly Net[] | undefined>(2 * this.length))[k] = fl;
    }
    for (let w = 0; w < 8; w++) this.addr[8 * i + w] = from.addr[8 * j + w]!;
    const c = from.canon?.[j];
    if (c) (this.canon ??= new Array<AclRule | undefined>(this.length))[i] = c;
  }

  /*
   * One-rule changes, in place (the set in force after the change's flip: nothing else
   * reads the rows any more, as with the id map beside them; a copy of a 100k-rule table
   * would take a change several ms). The JS arrays keep the set's length, the typed
   * arrays grow by doubling.
   */

  /** Adds `n` as the last row. */
  append(n: NormalizedRule): void {
    const i = this.length;
    if (this.action.length === i) {
      const cap = Math.max(16, 2 * i);
      this.action = grown(this.action, new Uint8Array(cap));
      this.proto = grown(this.proto, new Int16Array(cap));
      this.ports = grown(this.ports, new Int32Array(4 * cap));
      this.ifindex = grown(this.ifindex, new Float64Array(cap));
      this.side = grown(this.side, new Uint8Array(2 * cap));
      this.plen = grown(this.plen, new Uint8Array(2 * cap));
      this.addr = grown(this.addr, new Int32Array(8 * cap));
    }
    this.length = i + 1;
    this.ids.push('');
    this.texts.push('', '');
    this.iface?.push(undefined);
    this.lists?.push(undefined, undefined);
    this.canon?.push(undefined);
    this.setRow(i, n);
  }

  /** Removes row i (the rows after it move up one). */
  remove(i: number): void {
    const n = this.length;
    for (const [a, w] of [
      [this.action, 1],
      [this.proto, 1],
      [this.ports, 4],
      [this.ifindex, 1],
      [this.side, 2],
      [this.plen, 2],
      [this.addr, 8],
    ] as const) {
      a.copyWithin(i * w, (i + 1) * w, n * w);
    }
    this.ids.splice(i, 1);
    this.texts.splice(2 * i, 2);
    this.iface?.splice(i, 1);
    this.lists?.splice(2 * i, 2);
    this.canon?.splice(i, 1);
    this.length = n - 1;
  }
}

/** `into` holding `a` from its start (a column grown). */
function grown<T extends Uint8Array | Int16Array | Int32Array | Float64Array>(a: T, into: T): T {
  into.set(a as ArrayLike<number>);
  return into;
}

/**
 * A rule as an object: numbers and the parsed addresses, one object of one shape. Its
 * canonical form (`rule`) is a function of them, made only when something asks for it.
 */
export class NormRule implements NormalizedRule {
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

  /** Takes a canonical form made before (its row's). */
  adopt(c: AclRule): void {
    this.#canon = c;
  }
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

/** The canonical form of a normalized rule: fields in the order of AclRule, absent ones left out. */
export function canonOf(n: NormalizedRule): AclRule {
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
