/**
 * The expansion of normalized ACL rules (rules.ts) into the per-family records the
 * classifier compiles: one record per source x destination combination of a family,
 * every field a range per 32-bit key word.
 */
import { PROTO_MAX, V4_DIMS, V6_DIMS } from './layout.js';
import type { FamilyEntries } from './classifier.js';
import { RuleTable, SIDE_ANY, SIDE_LIST, netWords, type Net, type NormalizedRule } from './table.js';

const ALL = 0xffffffff;

/** A rule set as a table (objects: a one-rule change's rule, a test's set, made into one). */
function tableOf(rules: RuleTable | readonly NormalizedRule[]): RuleTable {
  return rules instanceof RuleTable ? rules : RuleTable.of(rules);
}

/**
 * Writes one address's words at `at` (IPv4: 1 word, IPv6: 4): `fam` 0 is any address,
 * else `w` holds its words from `wAt` on (IPv4: the first, signed) and `plen` its prefix.
 */
function addrWords(fam: number, w: Int32Array, wAt: number, plen: number, words: number, lo: Uint32Array, hi: Uint32Array, at: number): void {
  if (fam === 0) {
    for (let i = 0; i < words; i++) {
      lo[at + i] = 0;
      hi[at + i] = ALL;
    }
    return;
  }
  if (fam === 4) {
    // no host bits (validated): the network address, then the host part set
    const v4 = w[wAt]!;
    lo[at] = v4 >>> 0;
    hi[at] = (v4 | (plen === 0 ? -1 : plen === 32 ? 0 : -1 >>> plen)) >>> 0;
    return;
  }
  for (let i = 0; i < words; i++) {
    const x = w[wAt + i]! >>> 0;
    const bits = Math.min(32, Math.max(0, plen - 32 * i));
    const span = 2 ** (32 - bits) - 1; // host part of this word
    const base = bits === 0 ? 0 : Math.floor(x / (span + 1)) * (span + 1);
    lo[at + i] = base;
    hi[at + i] = base + span;
  }
}

// a list entry's words, for addrWords (filled and read synchronously)
const NET_WORDS = new Int32Array(4);

/** A list entry's words into NET_WORDS; returns its family. */
function listWords(c: Net): number {
  netWords(c, NET_WORDS, 0);
  return c.family;
}

/** How many of side k's addresses are of family `fam` (absent: any address, 1). */
function countOf(t: RuleTable, k: number, fam: number): number {
  const side = t.side[k]!;
  if (side === SIDE_ANY) return 1;
  if (side !== SIDE_LIST) return side === fam ? 1 : 0;
  let n = 0;
  for (const c of t.lists![k]!) if (c.family === fam) n++;
  return n;
}

/** Records each rule makes in each family (what expandRules() lays out, in that order). */
export function recordCounts(rules: RuleTable | readonly NormalizedRule[]): { v4: Uint32Array; v6: Uint32Array } {
  const t = tableOf(rules);
  const v4 = new Uint32Array(t.length);
  const v6 = new Uint32Array(t.length);
  for (let ri = 0; ri < t.length; ri++) {
    const proto = t.proto[ri]!;
    if (proto !== 58) v4[ri] = countOf(t, 2 * ri, 4) * countOf(t, 2 * ri + 1, 4);
    if (proto !== 1) v6[ri] = countOf(t, 2 * ri, 6) * countOf(t, 2 * ri + 1, 6);
  }
  return { v4, v6 };
}

/**
 * Expands rules into the records of each family. `slots[i]` / `tags[i]` are rule i's
 * counter slot and tag. Priority is the rule's position.
 */
export function expandRules(
  rules: RuleTable | readonly NormalizedRule[],
  slots: ArrayLike<number>,
  tags: ArrayLike<number>,
): { v4: FamilyEntries; v6: FamilyEntries } {
  const t = tableOf(rules);
  const counts = recordCounts(t);
  let n4 = 0;
  let n6 = 0;
  for (let ri = 0; ri < t.length; ri++) {
    n4 += counts.v4[ri]!;
    n6 += counts.v6[ri]!;
  }
  const mk = (dims: number, count: number): FamilyEntries => ({
    dims,
    count,
    lo: new Uint32Array(count * dims),
    hi: new Uint32Array(count * dims),
    prio: new Uint32Array(count),
    meta: new Uint32Array(count),
    tag: new Uint32Array(count),
  });
  const v4 = mk(V4_DIMS, n4);
  const v6 = mk(V6_DIMS, n6);
  let i4 = 0;
  let i6 = 0;
  const P = t.ports;
  for (let ri = 0; ri < t.length; ri++) {
    const meta = (slots[ri]! | (t.action[ri]! << 24)) >>> 0;
    // each field read once a rule
    const sp = P[4 * ri]!;
    const dp = P[4 * ri + 2]!;
    const spLo = sp < 0 ? 0 : sp;
    const spHi = sp < 0 ? 65535 : P[4 * ri + 1]!;
    const dpLo = dp < 0 ? 0 : dp;
    const dpHi = dp < 0 ? 65535 : P[4 * ri + 3]!;
    const proto = t.proto[ri]!;
    const ifx = t.ifindex[ri]!;
    const l4 = sp >= 0 || dp >= 0 ? 1 : 0;
    const tag = tags[ri]!;
    for (let fam = 4; fam <= 6; fam += 2) {
      if ((fam === 4 ? counts.v4[ri] : counts.v6[ri]) === 0) continue;
      const F = fam === 4 ? v4 : v6;
      const D = F.dims;
      const aw = fam === 4 ? 1 : 4;
      // a side is any address, one network (in the columns) or a list (its entries of this family)
      const ks = 2 * ri;
      const kd = ks + 1;
      const sSide = t.side[ks]!;
      const dSide = t.side[kd]!;
      const sList = sSide === SIDE_LIST ? t.lists![ks]! : null;
      const dList = dSide === SIDE_LIST ? t.lists![kd]! : null;
      const sN = sList ? sList.length : 1;
      const dN = dList ? dList.length : 1;
      for (let si = 0; si < sN; si++) {
        if (sList && sList[si]!.family !== fam) continue;
        for (let di = 0; di < dN; di++) {
          if (dList && dList[di]!.family !== fam) continue;
          const i = fam === 4 ? i4++ : i6++;
          const at = i * D;
          if (sList) addrWords(listWords(sList[si]!), NET_WORDS, 0, sList[si]!.prefixLen, aw, F.lo, F.hi, at);
          else addrWords(sSide === SIDE_ANY ? 0 : fam, t.addr, 8 * ri, t.plen[ks]!, aw, F.lo, F.hi, at);
          if (dList) addrWords(listWords(dList[di]!), NET_WORDS, 0, dList[di]!.prefixLen, aw, F.lo, F.hi, at + aw);
          else addrWords(dSide === SIDE_ANY ? 0 : fam, t.addr, 8 * ri + 4, t.plen[kd]!, aw, F.lo, F.hi, at + aw);
          const p = at + 2 * aw;
          F.lo[p] = spLo;
          F.hi[p] = spHi;
          F.lo[p + 1] = dpLo;
          F.hi[p + 1] = dpHi;
          F.lo[p + 2] = proto < 0 ? 0 : proto;
          F.hi[p + 2] = proto < 0 ? PROTO_MAX : proto;
          F.lo[p + 3] = ifx < 0 ? 0 : ifx;
          F.hi[p + 3] = ifx < 0 ? ALL : ifx;
          F.lo[p + 4] = l4;
          F.hi[p + 4] = 1;
          F.prio[i] = ri;
          F.meta[i] = meta;
          F.tag[i] = tag;
        }
      }
    }
  }
  return { v4, v6 };
}
