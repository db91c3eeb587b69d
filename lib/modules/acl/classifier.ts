/**
 * Rule-set compiler: turns normalized rules into the blob the XDP program walks.
 *
 * Classification structure: a decision tree with power-of-two cuts (HiCuts-style,
 * with the cut positions aligned on bit boundaries so a node is one shift and one mask).
 * A node picks one key word (dimension) and `bits` of it; the packet's value of those
 * bits indexes the node's child array. Leaves list at most LEAF_MAX records in
 * priority order; the packet is checked against each in full (so the tree only has to
 * narrow the candidates, never to be exact) and the first that matches wins.
 *
 * Every field is a range per 32-bit key word: a CIDR becomes one range per address
 * word (an IPv6 /48 is exact on word 0, a /16 range on word 1, any on words 2-3), so
 * IPv4 and IPv6 share the code. The ingress interface and "has an L4 header" are two
 * more dimensions, so two rules that the tree cannot tell apart are truly identical and
 * the later one is dropped as covered.
 *
 * Per node, the compiler:
 * 1. drops every rule after the first one that covers the node's whole region
 *    (they can never be the first match there);
 * 2. stops with a leaf when at most `binth` rules remain;
 * 3. otherwise tries every dimension and cut width and keeps the cut that leaves the
 *    smallest largest child while the copies of rules it makes stay within `spfac`
 *    times the node's rules;
 * 4. shares identical children (same rules, same position inside the child).
 *
 * When one tree gets too big (rule sets with many wildcards in the fields it cuts,
 * like firewall sets), rules are split into up to MAX_TREES groups by which address
 * fields are specific, each with its own tree; the packet walks all of them and keeps
 * the best priority (trees whose best rule cannot beat the current match are skipped).
 */
import { BpfkitError } from '../../core/errors.js';
import {
  BLOB_MAGIC, BLOB_VERSION, HDR_WORDS, H_GEN, H_MAGIC, H_RECORDS, H_RULES, H_USED, H_V4_ROOTS, H_V4_TREES,
  H_V6_ROOTS, H_V6_TREES, H_VERSION, LEAF, LEAF_MAX, MAX_CUT_BITS, MAX_DEPTH, MAX_TREES, REC_HDR, recordWords,
  V4_DIMS, V4_WIDTHS, V6_DIMS, V6_WIDTHS,
} from './layout.js';

/** Records of one address family, in priority order. */
export interface FamilyEntries {
  dims: number;
  count: number;
  /** count x dims lower bounds. */
  lo: Uint32Array;
  /** count x dims upper bounds (inclusive). */
  hi: Uint32Array;
  /** Priority (position in the whole expanded rule set; lower wins). */
  prio: Uint32Array;
  /** slot | action << 24. */
  meta: Uint32Array;
  /** Tag of the rule's slot (see layout.ts). */
  tag: Uint32Array;
}

export interface CompileOptions {
  /** Leaf size at which cutting stops. Default 8. */
  binth?: number;
  /** Allowed copies of rules per cut, as a multiple of the node's rules. Default 4. */
  spfac?: number;
  /** Widest cut in bits. Default 8. */
  maxBits?: number;
  /** Split rules into trees by which address fields are specific. Default true. */
  partition?: boolean;
}

export interface TreeStats {
  family: 4 | 6;
  records: number;
  nodes: number;
  leaves: number;
  maxDepth: number;
  maxLeaf: number;
  words: number;
}

export interface CompiledBlob {
  /** The blob words (length = words used; pad to the map's value size when writing). */
  words: Uint32Array;
  trees: TreeStats[];
}

/** Growable u32 array. */
class Words {
  buf = new Uint32Array(1 << 16);
  len = 0;
  reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < at + n) cap *= 2;
      const nb = new Uint32Array(cap);
      nb.set(this.buf.subarray(0, this.len));
      this.buf = nb;
    }
    this.len += n;
    return at;
  }
}

const POW2 = Array.from({ length: 33 }, (_, i) => 2 ** i);
const EMPTY = new Int32Array(0);

interface Region {
  base: Float64Array;
  free: Uint8Array;
}

class TreeBuilder {
  readonly dims: number;
  readonly widths: readonly number[];
  nodes = 0;
  leaves = 0;
  maxDepth = 0;
  maxLeaf = 0;
  #leafCache = new Map<number, number[]>();
  // scratch for choosing cuts
  #diff = new Int32Array((1 << MAX_CUT_BITS) + 2);
  #edge = new Uint8Array((1 << MAX_CUT_BITS) + 2);
  #L = new Uint32Array(0);
  #ev = new Int32Array(0);
  #H = new Uint32Array(0);

  constructor(
    readonly fam: FamilyEntries,
    readonly recOff: Uint32Array,
    readonly out: Words,
    readonly binth: number,
    readonly spfac: number,
    readonly maxBits: number,
    readonly family: 4 | 6,
  ) {
    this.dims = fam.dims;
    this.widths = family === 4 ? V4_WIDTHS : V6_WIDTHS;
  }

  build(list: Int32Array): number {
    const region: Region = { base: new Float64Array(this.dims), free: Uint8Array.from(this.widths) };
    return this.#node(list, region, 0);
  }

  #covers(r: number, reg: Region): boolean {
    const { lo, hi } = this.fam;
    const D = this.dims;
    for (let d = 0; d < D; d++) {
      const b = reg.base[d]!;
      if (lo[r * D + d]! > b || hi[r * D + d]! < b + POW2[reg.free[d]!]! - 1) return false;
    }
    return true;
  }

  #leaf(list: Int32Array, depth: number): number {
    if (list.length > LEAF_MAX) {
      throw new BpfkitError(
        'ERR_UNSUPPORTED',
        `rule set too complex: ${list.length} IPv${this.family} rules overlap in a region the classifier cannot split (limit ${LEAF_MAX} at depth ${depth})`,
        { field: 'rules', details: { family: this.family, depth, rules: list.length } },
      );
    }
    // identical leaves are shared: FNV-1a over the record indices, checked word by word
    let h = 0x811c9dc5 ^ list.length;
    for (let i = 0; i < list.length; i++) h = Math.imul(h ^ list[i]!, 0x01000193);
    const b = this.out.buf;
    const cands = this.#leafCache.get(h);
    if (cands) {
      for (const at of cands) {
        if ((b[at]! & 0xffff) !== list.length) continue;
        let same = true;
        for (let i = 0; i < list.length && same; i++) same = b[at + 1 + i] === this.recOff[list[i]!];
        if (same) return at;
      }
    }
    const at = this.out.reserve(1 + list.length);
    const ob = this.out.buf;
    ob[at] = (LEAF | list.length) >>> 0;
    for (let i = 0; i < list.length; i++) ob[at + 1 + i] = this.recOff[list[i]!]!;
    if (cands) cands.push(at);
    else this.#leafCache.set(h, [at]);
    this.leaves++;
    if (list.length > this.maxLeaf) this.maxLeaf = list.length;
    return at;
  }

  #node(listIn: Int32Array, reg: Region, depth: number): number {
    let list = listIn;
    for (let i = 0; i < list.length; i++) {
      if (this.#covers(list[i]!, reg)) {
        list = list.subarray(0, i + 1);
        break;
      }
    }
    if (depth > this.maxDepth) this.maxDepth = depth;
    if (list.length <= this.binth || depth >= MAX_DEPTH - 1) return this.#leaf(list, depth);
    let cut: { d: number; bits: number } | null = this.#chooseCut(list, reg);
    if (!cut || ('maxChild' in cut && cut.maxChild === list.length)) {
      // Nested rules overlapping at one point: no cut separates them. Keep them in one
      // leaf if it is short enough; else narrow the region towards the first rule until
      // it covers the region (and the rules after it drop out).
      if (list.length <= LEAF_MAX) return this.#leaf(list, depth);
      cut = this.#towardsFirst(list[0]!, reg);
      if (!cut) return this.#leaf(list, depth);
    }
    const { d, bits } = cut;
    const { lo, hi } = this.fam;
    const D = this.dims;
    const n = list.length;
    const free = reg.free[d]!;
    const shift = free - bits;
    const base = reg.base[d]!;
    const top = base + POW2[free]! - 1;
    const nc = 1 << bits;
    const mask = POW2[shift]! - 1;
    // Segments: runs of children no rule starts or ends inside, so every rule present
    // covers each of them whole and they can share one subtree. Boundaries come from the
    // rules (at most 4 each), so this is O(n log n), not O(children).
    const spanA = new Int32Array(n);
    const spanB = new Int32Array(n);
    const cuts = new Int32Array(4 * n + 1);
    let k = 0;
    cuts[k++] = 0;
    for (let i = 0; i < n; i++) {
      const r = list[i]!;
      const l = lo[r * D + d]!;
      const h = hi[r * D + d]!;
      const lr = l <= base ? 0 : l - base;
      const hr = h >= top ? top - base : h - base;
      const a = lr >>> shift;
      const b = hr >>> shift;
      spanA[i] = a;
      spanB[i] = b;
      cuts[k++] = a;
      if (b + 1 < nc) cuts[k++] = b + 1;
      if (lr & mask && a + 1 < nc) cuts[k++] = a + 1; // a rule starting inside child a
      if ((hr + 1) & mask) cuts[k++] = b; // a rule ending inside child b
    }
    const sorted = cuts.subarray(0, k).sort();
    let nseg = 0;
    for (let i = 0; i < k; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[nseg++] = sorted[i]!;
    const seg = sorted.slice(0, nseg); // segment starts, ascending; segment j = [seg[j], seg[j+1] or nc)
    const segOf = (c: number): number => {
      let a = 0;
      let b = nseg - 1;
      while (a < b) {
        const m = (a + b + 1) >> 1;
        if (seg[m]! <= c) a = m;
        else b = m - 1;
      }
      return a;
    };
    const first = new Int32Array(n);
    const last = new Int32Array(n);
    const counts = new Int32Array(nseg);
    for (let i = 0; i < n; i++) {
      first[i] = segOf(spanA[i]!);
      last[i] = segOf(spanB[i]!);
      for (let j = first[i]!; j <= last[i]!; j++) counts[j]!++;
    }
    const lists: Int32Array[] = new Array(nseg);
    for (let j = 0; j < nseg; j++) lists[j] = new Int32Array(counts[j]!);
    counts.fill(0);
    for (let i = 0; i < n; i++) for (let j = first[i]!; j <= last[i]!; j++) lists[j]![counts[j]!++] = list[i]!;
    const at = this.out.reserve(1 + nc);
    this.out.buf[at] = d | (shift << 8) | (bits << 16);
    this.nodes++;
    // children: the region is narrowed in place and restored (depth-first build)
    reg.free[d] = shift;
    for (let j = 0; j < nseg; j++) {
      const c0 = seg[j]!;
      const c1 = j + 1 < nseg ? seg[j + 1]! : nc;
      reg.base[d] = base + c0 * (mask + 1);
      const child = this.#node(lists[j]!, reg, depth + 1);
      lists[j] = EMPTY;
      this.out.buf.fill(child, at + 1 + c0, at + 1 + c1);
    }
    reg.base[d] = base;
    reg.free[d] = free;
    return at;
  }

  /** A cut in a dimension where rule `r` does not yet cover the region. */
  #towardsFirst(r: number, reg: Region): { d: number; bits: number } | null {
    const { lo, hi } = this.fam;
    const D = this.dims;
    for (let d = 0; d < D; d++) {
      const free = reg.free[d]!;
      const b = reg.base[d]!;
      if (free > 0 && (lo[r * D + d]! > b || hi[r * D + d]! < b + POW2[free]! - 1)) return { d, bits: Math.min(free, 8) };
    }
    return null;
  }

  /**
   * Best (dimension, bits) for this node, or null when no cut helps. A cut's memory is
   * estimated by its distinct children: children between the same rule boundaries get
   * the same rules and are shared, so the cost is the sum over those segments plus the
   * child array itself.
   */
  #chooseCut(list: Int32Array, reg: Region): { d: number; bits: number; maxChild: number } | null {
    const { lo, hi } = this.fam;
    const D = this.dims;
    const n = list.length;
    const budget = this.spfac * n + 256;
    let best: { d: number; bits: number; maxChild: number; cost: number } | null = null;
    if (this.#L.length < n) {
      this.#L = new Uint32Array(n * 2);
      this.#H = new Uint32Array(n * 2);
    }
    const L = this.#L;
    const H = this.#H;
    for (let d = 0; d < D; d++) {
      const free = reg.free[d]!;
      if (free === 0) continue;
      const base = reg.base[d]!;
      const top = base + POW2[free]! - 1;
      // offsets inside the region of the rules that do not span it whole
      let m = 0;
      for (let i = 0; i < n; i++) {
        const r = list[i]!;
        const l = lo[r * D + d]!;
        const h = hi[r * D + d]!;
        if (l <= base && h >= top) continue;
        L[m] = l <= base ? 0 : l - base;
        H[m] = h >= top ? top - base : h - base;
        m++;
      }
      if (m === 0) continue;
      const full = n - m;
      const maxB = Math.min(free, n > 4096 ? MAX_CUT_BITS : n > 256 ? Math.max(12, this.maxBits) : n > 32 ? this.maxBits : Math.min(this.maxBits, 6));
      // The largest child only shrinks and the cost only grows with more bits: find the
      // widest cut within the budget (binary search), then narrow it while the largest
      // child stays the same (same split, less memory).
      let pick = this.#evalCut(m, full, free, maxB);
      let bits = maxB;
      if (pick.cost > budget && maxB > 1) {
        let a = 1;
        let b = maxB - 1;
        pick = this.#evalCut(m, full, free, 1);
        bits = 1;
        while (a < b) {
          const mid = (a + b + 1) >> 1;
          const e = this.#evalCut(m, full, free, mid);
          if (e.cost <= budget) {
            a = mid;
            pick = e;
            bits = mid;
          } else {
            b = mid - 1;
          }
        }
      }
      if (pick.maxChild >= n) continue; // this dimension does not separate these rules
      for (let step = 0; step < 3 && bits > 1; step++) {
        const e = this.#evalCut(m, full, free, bits - 1);
        if (e.maxChild !== pick.maxChild) break;
        pick = e;
        bits--;
      }
      if (!best || pick.maxChild < best.maxChild || (pick.maxChild === best.maxChild && pick.cost < best.cost)) {
        best = { d, bits, maxChild: pick.maxChild, cost: pick.cost };
      }
    }
    return best;
  }

  /** Largest child and estimated words of cutting `bits` of a dimension (rules in #L/#H). */
  #evalCut(m: number, full: number, free: number, bits: number): { maxChild: number; cost: number } {
    const L = this.#L;
    const H = this.#H;
    const shift = free - bits;
    const mask = POW2[shift]! - 1;
    const nc = 1 << bits;
    if (nc > 2 * m) {
      // few rules, many children: sweep the sorted boundaries only. Events are encoded
      // as position*4 + kind (0: a rule ends before it, 1: a child made distinct,
      // 2: a rule starts) so one numeric sort orders them.
      if (this.#ev.length < 4 * m) this.#ev = new Int32Array(8 * m);
      const ev = this.#ev;
      let k = 0;
      for (let j = 0; j < m; j++) {
        const lj = L[j]!;
        const hj = H[j]!;
        const a = lj >>> shift;
        const b = hj >>> shift;
        ev[k++] = a * 4 + 2;
        ev[k++] = (b + 1) * 4;
        ev[k++] = lj & mask ? (a + 1) * 4 + 1 : a * 4 + 1;
        ev[k++] = (hj + 1) & mask ? b * 4 + 1 : (b + 1) * 4 + 1;
      }
      const sorted = ev.subarray(0, k).sort();
      let run = 0;
      let maxChild = 0;
      let cost = nc + full; // child 0 starts a segment
      let lastPos = 0;
      for (let i = 0; i < k; ) {
        const pos = sorted[i]! >> 2;
        while (i < k && sorted[i]! >> 2 === pos) {
          const kind = sorted[i]! & 3;
          if (kind === 2) run++;
          else if (kind === 0) run--;
          i++;
        }
        if (run > maxChild) maxChild = run;
        if (pos < nc && pos !== lastPos) cost += run + full;
        else if (pos === 0) cost += run;
        lastPos = pos;
      }
      return { maxChild: maxChild + full, cost };
    }
    const diff = this.#diff;
    const edge = this.#edge;
    diff.fill(0, 0, nc + 1);
    edge.fill(0, 0, nc + 1);
    for (let j = 0; j < m; j++) {
      const lj = L[j]!;
      const hj = H[j]!;
      const a = lj >>> shift;
      const b = hj >>> shift;
      diff[a]!++;
      diff[b + 1]!--;
      edge[a] = 1;
      edge[b + 1] = 1;
      // a rule starting or ending inside a child makes that child unlike its neighbours
      if (lj & mask) edge[a + 1] = 1;
      if ((hj + 1) & mask) edge[b] = 1;
    }
    let run = 0;
    let maxChild = 0;
    let cost = nc;
    for (let c = 0; c < nc; c++) {
      run += diff[c]!;
      if (run > maxChild) maxChild = run;
      if (edge[c] || c === 0) cost += run + full;
    }
    return { maxChild: maxChild + full, cost };
  }
}

/**
 * Groups a family's records by whether source and destination are specific (a prefix of
 * at least 16 bits for IPv4, 32 for IPv6), so wildcard addresses are not copied into
 * every child of the cuts on that field. Returns up to 4 groups in order of their best
 * priority, each a list of record indices in priority order. Small sets use one tree.
 */
function partition(fam: FamilyEntries, family: 4 | 6, on: boolean): Int32Array[] {
  if (fam.count === 0) return [];
  if (!on || fam.count <= 64) return [Int32Array.from({ length: fam.count }, (_, i) => i)];
  const D = fam.dims;
  const srcW = 0;
  const dstW = family === 4 ? 1 : 4;
  const limit = family === 4 ? 0xffff : 0;
  const buckets: number[][] = [[], [], [], []];
  for (let i = 0; i < fam.count; i++) {
    const srcSmall = fam.hi[i * D + srcW]! - fam.lo[i * D + srcW]! <= limit ? 1 : 0;
    const dstSmall = fam.hi[i * D + dstW]! - fam.lo[i * D + dstW]! <= limit ? 1 : 0;
    buckets[srcSmall * 2 + dstSmall]!.push(i);
  }
  const groups = buckets.filter((b) => b.length > 0).map((b) => Int32Array.from(b));
  groups.sort((a, b) => fam.prio[a[0]!]! - fam.prio[b[0]!]!);
  return groups;
}

/**
 * Compiles the records of both families into a blob. `gen` and other header fields
 * beyond the classifier are filled by the caller (see layout.ts).
 */
export function compileBlob(v4: FamilyEntries, v6: FamilyEntries, opts: CompileOptions = {}): CompiledBlob {
  const binth = opts.binth ?? 8;
  const spfac = opts.spfac ?? 4;
  const maxBits = opts.maxBits ?? 8;
  const out = new Words();
  out.reserve(HDR_WORDS);
  const trees: TreeStats[] = [];
  for (const [fam, family] of [[v4, 4], [v6, 6]] as const) {
    const rw = recordWords(fam.dims);
    const base = out.reserve(rw * fam.count);
    const recOff = new Uint32Array(fam.count);
    const b = out.buf;
    for (let i = 0; i < fam.count; i++) {
      const at = base + i * rw;
      recOff[i] = at;
      b[at] = fam.prio[i]!;
      b[at + 1] = fam.meta[i]!;
      b[at + 2] = fam.tag[i]!;
      for (let d = 0; d < fam.dims; d++) {
        b[at + REC_HDR + 2 * d] = fam.lo[i * fam.dims + d]!;
        b[at + REC_HDR + 1 + 2 * d] = fam.hi[i * fam.dims + d]!;
      }
    }
    const groups = partition(fam, family, opts.partition ?? true);
    const rootsAt = family === 4 ? H_V4_ROOTS : H_V6_ROOTS;
    for (let t = 0; t < groups.length && t < MAX_TREES; t++) {
      const g = groups[t]!;
      const before = out.len;
      const tb = new TreeBuilder(fam, recOff, out, binth, spfac, maxBits, family);
      const root = tb.build(g);
      out.buf[rootsAt + 2 * t] = root;
      out.buf[rootsAt + 2 * t + 1] = fam.prio[g[0]!]!;
      trees.push({
        family, records: g.length, nodes: tb.nodes, leaves: tb.leaves, maxDepth: tb.maxDepth, maxLeaf: tb.maxLeaf,
        words: out.len - before,
      });
    }
    out.buf[family === 4 ? H_V4_TREES : H_V6_TREES] = Math.min(groups.length, MAX_TREES);
  }
  const w = out.buf;
  w[H_MAGIC] = BLOB_MAGIC;
  w[H_VERSION] = BLOB_VERSION;
  w[H_USED] = out.len;
  w[H_GEN] = 0;
  w[H_RULES] = 0;
  w[H_RECORDS] = v4.count + v6.count;
  return { words: out.buf.subarray(0, out.len), trees };
}

export { V4_DIMS, V6_DIMS };
