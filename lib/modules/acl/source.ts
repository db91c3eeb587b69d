/**
 * The rule set's source in the blob: what a process adopting a pinned firewall reads back
 * to know the exact rules in force (their canonical form), their counter slots and tags,
 * and the settings.
 *
 * Version 2 (this one) is two parts. At the header's source offset (H_SRC_OFF, H_SRC_LEN
 * bytes) a small JSON object: the version, generation, settings, the rules' ids (a JSON
 * array of strings, so any id round-trips), the interface names rules use, and how many
 * words the second part has. The second part lies just before the JSON: per rule a few
 * 32-bit words (what fields it has, the protocol number, the addresses as numbers and
 * prefix lengths, ports, ICMP type and code, an interface), then every rule's slot, then
 * every tag. Writing it is a loop over numbers the validation already produced, where the
 * JSON of version 1 (every rule as an object) took most of a 100k-rule replace: the
 * canonical texts are a function of those numbers (an address's canonical text is its
 * formatted network and prefix (formatIPv4/formatIPv6), a protocol's its name when it has one), so they are
 * formatted again only when a process adopts the firewall.
 *
 * Version 1 (the whole set as JSON: rules, slots, tags) is still read. A process of a
 * version before 2 reads the JSON part, finds `v: 2` and refuses the pin with its
 * "source version is not supported" error, before changing anything.
 */
import { BpfkitError } from '../../core/errors.js';
import { ipProtocolShown } from '../../core/net/protocols.js';
import { formatIPv6 } from '../../core/codecs.js';
import type { Settings } from './options.js';
import type { AclRule } from './rules.js';
import { SIDE_ANY, SIDE_LIST, SIDE_V6, netWords, type RuleTable } from './table.js';

/** The source version this code writes. */
export const SOURCE_VERSION = 2;

/** A rule set's source, read back (adoption). */
export interface Source extends Settings {
  v: number;
  gen: number;
  rules: AclRule[];
  slots: number[];
  tags: number[];
}

/** The JSON part of a version-2 source. */
interface Head extends Settings {
  v: 2;
  gen: number;
  ids: string[];
  ifaces: string[];
  /** words of the binary part, which ends where the JSON begins */
  words: number;
}

/** A source ready to write: `bin` at some word offset, the JSON right after it. */
export interface EncodedSource {
  bin: Uint32Array;
  json: string;
  jsonBytes: number;
}

// flags word of a rule
const F_ACTION = 0x3; // 0 allow, 1 deny, 2 log
const F_PROTO = 1 << 2; // proto in bits 8..15
const S_SRC = 3; // 2 bits: 0 absent, 1 one address, 2 a list
const S_DST = 5;
const S_SPORT = 16; // 2 bits: 0 absent, 1 one port, 2 a range
const S_DPORT = 18;
const F_ICMP_TYPE = 1 << 20;
const F_ICMP_CODE = 1 << 21;
const S_IFACE = 22; // 2 bits: 0 absent, 1 an index, 2 a name (index into `ifaces`)
const NET_V6 = 0x100; // a net's first word: prefix length | NET_V6

const ACTIONS = ['allow', 'deny', 'log'] as const;

/** Words a rule takes at most, beyond its address lists' (flags, two nets, ports, ICMP or iface). */
const RULE_WORDS = 1 + 5 + 5 + 2 + 2 + 1;

function grow(a: Uint32Array, n: number, k: number): Uint32Array {
  if (n + k <= a.length) return a;
  const b = new Uint32Array(Math.max(2 * a.length, n + k));
  b.set(a.subarray(0, n));
  return b;
}

/**
 * Writes one address at `n` from its words (`w` from `at` on, as the table's columns hold
 * them); returns the next free word (room checked by the caller).
 */
function putAddr(a: Uint32Array, n: number, v6: boolean, plen: number, w: Int32Array, at: number): number {
  if (!v6) {
    a[n] = plen;
    a[n + 1] = w[at]! >>> 0;
    return n + 2;
  }
  a[n] = plen | NET_V6;
  for (let j = 0; j < 4; j++) a[n + 1 + j] = w[at + j]! >>> 0;
  return n + 5;
}

// a list entry's words, for putAddr (filled and read synchronously)
const NET_WORDS = new Int32Array(4);

/**
 * Encodes a validated rule set's source (version 2): a loop over the table's columns,
 * and the interface of a rule as it was written (a name or an index).
 */
export function encodeSource(t: RuleTable, slots: Uint32Array, tags: Uint32Array, gen: number, settings: Settings): EncodedSource {
  const count = t.length;
  let a: Uint32Array = new Uint32Array(6 * count + 2 * count + RULE_WORDS);
  let n = 0;
  const ifaces: string[] = [];
  const P = t.ports;
  for (let i = 0; i < count; i++) {
    a = grow(a, n, RULE_WORDS);
    const at = n++;
    let f = t.action[i]!; // ACT_ALLOW 0, ACT_DENY 1, ACT_LOG 2 (layout.ts): F_ACTION
    const proto = t.proto[i]!;
    if (proto >= 0) f |= F_PROTO | (proto << 8);
    for (let side = 0; side < 2; side++) {
      const k = 2 * i + side;
      const kind = t.side[k]!;
      if (kind === SIDE_ANY) continue;
      if (kind !== SIDE_LIST) {
        n = putAddr(a, n, kind === SIDE_V6, t.plen[k]!, t.addr, 8 * i + 4 * side);
        f |= 1 << (side === 0 ? S_SRC : S_DST);
        continue;
      }
      const list = t.lists![k]!;
      a = grow(a, n, 1 + 5 * list.length + RULE_WORDS);
      a[n++] = list.length;
      for (let j = 0; j < list.length; j++) {
        const c = list[j]!;
        netWords(c, NET_WORDS, 0);
        n = putAddr(a, n, c.family === 6, c.prefixLen, NET_WORDS, 0);
      }
      f |= 2 << (side === 0 ? S_SRC : S_DST);
    }
    const sp = P[4 * i]!;
    const spHi = P[4 * i + 1]!;
    const dp = P[4 * i + 2]!;
    const dpHi = P[4 * i + 3]!;
    if (proto === 1 || proto === 58) {
      // no ports with ICMP (validated): the pairs are the type and the code
      if (sp >= 0) {
        f |= F_ICMP_TYPE;
        a[n++] = sp;
      }
      if (dp >= 0) {
        f |= F_ICMP_CODE;
        a[n++] = dp;
      }
    } else {
      // canonical: one port as a number, a range as [from, to]
      if (sp >= 0) {
        a[n++] = sp;
        if (sp !== spHi) a[n++] = spHi;
        f |= (sp === spHi ? 1 : 2) << S_SPORT;
      }
      if (dp >= 0) {
        a[n++] = dp;
        if (dp !== dpHi) a[n++] = dpHi;
        f |= (dp === dpHi ? 1 : 2) << S_DPORT;
      }
    }
    const v = t.iface === null ? undefined : t.iface[i];
    if (v !== undefined) {
      if (typeof v === 'number') {
        f |= 1 << S_IFACE;
        a[n++] = v;
      } else {
        f |= 2 << S_IFACE;
        a[n++] = ifaces.length;
        ifaces.push(v);
      }
    }
    a[at] = f >>> 0;
  }
  a = grow(a, n, 2 * count);
  a.set(slots, n);
  a.set(tags, n + count);
  n += 2 * count;
  const head: Head = { v: 2, gen, ...settings, ids: t.ids, ifaces, words: n };
  const json = JSON.stringify(head);
  return { bin: a.subarray(0, n), json, jsonBytes: Buffer.byteLength(json, 'utf8') };
}

function refuse(message: string): never {
  throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${message}`, { field: 'pin' });
}

const damaged = (): never => refuse('the rule set in force has a damaged source');

/**
 * Reads a source back from a blob: the JSON at byte `off` (`len` bytes), and for version
 * 2 the words before it. Refuses (ERR_INVALID_ARGUMENT naming pin) what it cannot read.
 */
export function decodeSource(blob: Buffer, off: number, len: number): Source {
  const src = JSON.parse(blob.toString('utf8', off, off + len)) as { v?: unknown };
  if (src.v === 1) return src as Source;
  if (src.v !== 2) refuse(`rule-set source version ${String(src.v)} is not supported`);
  const h = src as Head;
  const n = h.ids.length;
  if (!Number.isInteger(h.words) || h.words < 2 * n || h.words * 4 > off) damaged();
  const base = off - 4 * h.words;
  const w = (i: number) => blob.readUInt32LE(base + 4 * i);
  let k = 0;
  const net = (): string => {
    const x = w(k++);
    const len = x & 0xff;
    if (!(x & NET_V6)) {
      const a = w(k++);
      const t = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
      return len === 32 ? t : `${t}/${len}`;
    }
    // (the canonical text of every IPv6 address, IPv4-mapped ones in mixed notation included)
    const b = Buffer.alloc(16);
    for (let j = 0; j < 4; j++) b.writeUInt32BE(w(k++), 4 * j);
    const t = formatIPv6(b);
    return len === 128 ? t : `${t}/${len}`;
  };
  const addr = (kind: number): string | string[] | undefined => {
    if (kind === 0) return undefined;
    if (kind === 1) return net();
    const m = w(k++);
    const out: string[] = [];
    for (let j = 0; j < m && k < h.words; j++) out.push(net());
    return out;
  };
  const ports = (kind: number): number | [number, number] | undefined => {
    if (kind === 0) return undefined;
    if (kind === 1) return w(k++);
    const lo = w(k++);
    return [lo, w(k++)];
  };
  const rules: AclRule[] = new Array<AclRule>(n);
  for (let i = 0; i < n; i++) {
    if (k >= h.words - 2 * n) damaged();
    const f = w(k++);
    const r: AclRule = { id: h.ids[i]!, action: ACTIONS[f & F_ACTION] ?? damaged() };
    if (f & F_PROTO) {
      const p = (f >>> 8) & 0xff;
      r.proto = ipProtocolShown(p);
    }
    const s = addr((f >>> S_SRC) & 3);
    if (s !== undefined) r.src = s;
    const d = addr((f >>> S_DST) & 3);
    if (d !== undefined) r.dst = d;
    const sp = ports((f >>> S_SPORT) & 3);
    if (sp !== undefined) r.srcPort = sp;
    const dp = ports((f >>> S_DPORT) & 3);
    if (dp !== undefined) r.dstPort = dp;
    if (f & F_ICMP_TYPE) r.icmpType = w(k++);
    if (f & F_ICMP_CODE) r.icmpCode = w(k++);
    const ik = (f >>> S_IFACE) & 3;
    if (ik === 1) r.iface = w(k++);
    else if (ik === 2) r.iface = h.ifaces[w(k++)] ?? damaged();
    rules[i] = r;
  }
  if (k !== h.words - 2 * n) damaged();
  const slots = new Array<number>(n);
  const tags = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    slots[i] = w(k + i);
    tags[i] = w(k + n + i);
  }
  const { ids: _ids, ifaces: _ifaces, words: _words, ...rest } = h;
  return { ...rest, rules, slots, tags };
}
