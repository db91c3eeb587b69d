/**
 * The expansion of normalized ACL rules (rules.ts) into the per-family records the
 * classifier compiles: one record per source x destination combination of a family,
 * every field a range per 32-bit key word.
 */
import { PROTO_MAX, V4_DIMS, V6_DIMS } from './layout.js';
import type { FamilyEntries } from './classifier.js';
import type { Net, NormalizedRule } from './rules.js';

function isList(l: Net | readonly Net[]): l is readonly Net[] {
  return Array.isArray(l);
}

const ALL = 0xffffffff;
const ANY: readonly (Net | null)[] = [null];
const NONE: readonly Net[] = [];

function addrWords(c: Net | null, words: number, lo: Uint32Array, hi: Uint32Array, at: number): void {
  if (!c) {
    for (let i = 0; i < words; i++) {
      lo[at + i] = 0;
      hi[at + i] = ALL;
    }
    return;
  }
  if (c.family === 4) {
    // no host bits (validated): the network address, then the host part set
    lo[at] = c.v4 >>> 0;
    hi[at] = (c.v4 | (c.prefixLen === 0 ? -1 : c.prefixLen === 32 ? 0 : -1 >>> c.prefixLen)) >>> 0;
    return;
  }
  for (let i = 0; i < words; i++) {
    const w = c.v6!.readUInt32BE(4 * i);
    const bits = Math.min(32, Math.max(0, c.prefixLen - 32 * i));
    const span = 2 ** (32 - bits) - 1; // host part of this word
    const base = bits === 0 ? 0 : Math.floor(w / (span + 1)) * (span + 1);
    lo[at + i] = base;
    hi[at + i] = base + span;
  }
}

/** How many of a src/dst's addresses are of family `fam` (absent: any address, 1). */
function countOf(l: Net | readonly Net[] | null, fam: number): number {
  if (!l) return 1;
  if (!isList(l)) return l.family === fam ? 1 : 0;
  let n = 0;
  for (const c of l) if (c.family === fam) n++;
  return n;
}

// one-address lists for expandRules (filled and read synchronously, never kept)
const ONE_SRC: (Net | null)[] = [null];
const ONE_DST: (Net | null)[] = [null];

/** A src/dst's addresses of family `fam`, as a list (`one` holds a single address). */
function ofFamily(l: Net | readonly Net[] | null, fam: number, one: (Net | null)[]): readonly (Net | null)[] {
  if (!l) return ANY;
  if (!isList(l)) {
    if (l.family !== fam) return NONE;
    one[0] = l;
    return one;
  }
  return l.length === 1 ? (l[0]!.family === fam ? l : NONE) : l.filter((c) => c.family === fam);
}

/**
 * Expands normalized rules into the records of each family. `slots[i]` / `tags[i]` are
 * rule i's counter slot and tag. Priority is the rule's position.
 */
/** Records each rule makes in each family (what expandRules() lays out, in that order). */
export function recordCounts(rules: readonly NormalizedRule[]): { v4: Uint32Array; v6: Uint32Array } {
  const v4 = new Uint32Array(rules.length);
  const v6 = new Uint32Array(rules.length);
  for (let ri = 0; ri < rules.length; ri++) {
    const r = rules[ri]!;
    const src = r.src;
    const dst = r.dst;
    if (r.proto !== 58) v4[ri] = countOf(src, 4) * countOf(dst, 4);
    if (r.proto !== 1) v6[ri] = countOf(src, 6) * countOf(dst, 6);
  }
  return { v4, v6 };
}

export function expandRules(rules: NormalizedRule[], slots: ArrayLike<number>, tags: ArrayLike<number>): { v4: FamilyEntries; v6: FamilyEntries } {
  let n4 = 0;
  let n6 = 0;
  for (let ri = 0; ri < rules.length; ri++) {
    const r = rules[ri]!;
    const src = r.src;
    const dst = r.dst;
    if (r.proto !== 58) n4 += countOf(src, 4) * countOf(dst, 4);
    if (r.proto !== 1) n6 += countOf(src, 6) * countOf(dst, 6);
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
  for (let ri = 0; ri < rules.length; ri++) {
    const r = rules[ri]!;
    const meta = (slots[ri]! | (r.action << 24)) >>> 0;
    // each field read once a rule
    const src = r.src;
    const dst = r.dst;
    const sport = r.sport;
    const dport = r.dport;
    const spLo = sport ? sport[0] : 0;
    const spHi = sport ? sport[1] : 65535;
    const dpLo = dport ? dport[0] : 0;
    const dpHi = dport ? dport[1] : 65535;
    const proto = r.proto;
    const ifindex = r.ifindex;
    const l4 = r.needsL4 ? 1 : 0;
    const tag = tags[ri]!;
    for (let fam = 4; fam <= 6; fam += 2) {
      if ((fam === 4 && proto === 58) || (fam === 6 && proto === 1)) continue;
      const srcs = ofFamily(src, fam, ONE_SRC);
      const dsts = ofFamily(dst, fam, ONE_DST);
      const F = fam === 4 ? v4 : v6;
      const D = F.dims;
      const aw = fam === 4 ? 1 : 4;
      for (let si = 0; si < srcs.length; si++) {
        const s = srcs[si]!;
        for (let di = 0; di < dsts.length; di++) {
          const d = dsts[di]!;
          const i = fam === 4 ? i4++ : i6++;
          const at = i * D;
          addrWords(s, aw, F.lo, F.hi, at);
          addrWords(d, aw, F.lo, F.hi, at + aw);
          const p = at + 2 * aw;
          F.lo[p] = spLo;
          F.hi[p] = spHi;
          F.lo[p + 1] = dpLo;
          F.hi[p + 1] = dpHi;
          F.lo[p + 2] = proto ?? 0;
          F.hi[p + 2] = proto ?? PROTO_MAX;
          F.lo[p + 3] = ifindex ?? 0;
          F.hi[p + 3] = ifindex ?? ALL;
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
