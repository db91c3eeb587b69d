/**
 * Incremental changes of an AclFirewall's rule set: one rule added, replaced or removed
 * without compiling the trees again.
 *
 * A compiled blob keeps an empty "overlay" region between its trees and its JSON source
 * (OVERLAY_WORDS words, when the blob has room for it): per family a list of at most
 * OVL_MAX record offsets (header words H_V4_OVL_AT/_N, H_V6_OVL_AT/_N) and room for
 * OVL_MAX records. The XDP program checks those records one by one after the trees
 * (bpf/acl/classify.h) and keeps the best priority. A change:
 *   - removes a rule by making its records unmatchable in place (dimension 0: lo > hi);
 *   - adds a rule by writing its records into the overlay, with a priority after every
 *     rule's (it goes to the end of the set, as addRule() without a position does);
 *   - replaces a rule by both, the new records keeping the old priority, slot and tag.
 * The words a change writes are kept as patches relative to the compiled set ("base"):
 * the idle blob gets the patches it lacks (or, the first time after a compile, a copy of
 * the blob in force), then the header, then the usual flip. A JSON record of the changes
 * (H_DELTA_OFF/LEN, after the base's source) lets a process that adopts the pinned
 * firewall rebuild the rule set in force.
 *
 * When the overlay is full, or a change fails half way, the caller compiles the whole set
 * (which folds the overlay in) and drops this one.
 */
import {
  H_CREATED_HI,
  H_CREATED_LO,
  H_DELTA_LEN,
  H_DELTA_OFF,
  H_GEN,
  H_RULES,
  H_USED,
  H_V4_OVL_AT,
  H_V4_OVL_N,
  H_V6_OVL_AT,
  H_V6_OVL_N,
  HDR_WORDS,
  OVL_MAX,
  REC_HDR,
  V4_DIMS,
  V6_DIMS,
} from './layout.js';
import { expandRules, recordCounts, type AclRule, type NormalizedRule } from './rules.js';
import type { RuleTable } from './table.js';

const RW4 = REC_HDR + 2 * V4_DIMS;
const RW6 = REC_HDR + 2 * V6_DIMS;
/** Words a blob reserves for the overlay. */
export const OVERLAY_WORDS = 2 * OVL_MAX + OVL_MAX * (RW4 + RW6);

/** What the blob's overlay JSON holds (for adoption): the changes since the compile. */
export interface DeltaSource {
  v: 1;
  gen: number;
  /** ids of compiled rules removed */
  removed: string[];
  /** rules replaced (in place) or added (at the end, in this order) */
  set: { rule: AclRule; slot: number; tag: number }[];
}

/** The rules in force after a blob's overlay JSON (adoption). */
export function applyDeltaSource(rules: AclRule[], slots: number[], tags: number[], d: DeltaSource): { rules: AclRule[]; slots: number[]; tags: number[] } {
  const removed = new Set(d.removed);
  const set = new Map(d.set.map((e) => [e.rule.id, e]));
  const out = { rules: [] as AclRule[], slots: [] as number[], tags: [] as number[] };
  const push = (r: AclRule, s: number, t: number) => {
    out.rules.push(r);
    out.slots.push(s);
    out.tags.push(t);
  };
  const seen = new Set<string>();
  rules.forEach((r, i) => {
    if (removed.has(r.id)) return;
    seen.add(r.id);
    const e = set.get(r.id);
    if (e) push(e.rule, e.slot, e.tag);
    else push(r, slots[i]!, tags[i]!);
  });
  for (const e of d.set) if (!seen.has(e.rule.id)) push(e.rule, e.slot, e.tag);
  return out;
}

/** Where one rule's records are: `n4` IPv4 records from word `at4` on, RW4 words apart (IPv6 alike). */
interface Recs {
  at4: number;
  n4: number;
  at6: number;
  n6: number;
  prio: number;
}

/**
 * Where the compiled rules' records are, in typed arrays rather than an object per rule
 * (this is made after every compile, and a 100k-rule set's worth of small objects is what
 * the garbage collector then copies during the next replace): rule i's IPv4 records are
 * `pre4[i+1] - pre4[i]` records from word `at4 + pre4[i] * RW4` on (IPv6 alike); `index`
 * maps an id to i; `gone[i]` is set once the overlay removed or replaced rule i.
 */
interface Located {
  index: Map<string, number>;
  at4: number;
  at6: number;
  pre4: Uint32Array;
  pre6: Uint32Array;
  gone: Uint8Array;
}

/** One write: `words` at word offset `off`. */
interface Patch {
  off: number;
  words: Uint32Array;
}

/** The overlay of one compiled set: what the changes since the compile wrote. */
export class Overlay {
  readonly id: number; // which compile (blobs holding another one's words are copied first)
  readonly at: number; // word offset of the overlay region
  readonly deltaOff: number; // byte offset of the overlay JSON
  readonly #capBytes: number;
  readonly #header: Uint32Array; // the compiled set's header
  readonly #base: RuleTable; // the compiled set: read by #locate only, before the first change (the set in force's table, which the changes then edit in place)
  readonly #slots: Uint32Array;
  readonly #tags: Uint32Array;
  #located: Located | undefined; // made on the first change, or ahead of it (locate)
  readonly #moved = new Map<string, Recs>(); // rules the overlay wrote (added or replaced), by id
  #n4 = 0;
  #n6 = 0;
  #nextPrio: number;
  readonly patches: Patch[] = [];
  readonly #removed: string[] = [];
  readonly #set = new Map<string, { rule: AclRule; slot: number; tag: number }>();
  #records: number;

  constructor(o: {
    id: number;
    at: number;
    srcEndBytes: number;
    capBytes: number;
    header: Uint32Array;
    base: RuleTable;
    slots: Uint32Array;
    tags: Uint32Array;
    records: number;
  }) {
    this.id = o.id;
    this.at = o.at;
    this.deltaOff = (o.srcEndBytes + 3) & ~3;
    this.#capBytes = o.capBytes;
    this.#header = o.header;
    this.#base = o.base;
    this.#slots = o.slots;
    this.#tags = o.tags;
    this.#nextPrio = o.base.length;
    this.#records = o.records;
  }

  /** Records in the overlay. */
  get used(): number {
    return this.#n4 + this.#n6;
  }

  /** Records in force (compiled, not removed, and overlay). */
  get records(): number {
    return this.#records;
  }

  /**
   * Where each compiled rule's records are, in `blob` (the compiled set, before any
   * change): the IPv4 records follow the header, the IPv6 ones follow the IPv4 trees
   * (addon/acl/job.cc), found by their first record's words. undefined: not found.
   */
  #locate(blob: Uint32Array): Located | undefined {
    if (this.#located) return this.#located;
    const base = this.#base;
    const { v4, v6 } = recordCounts(base);
    const pre4 = new Uint32Array(base.length + 1);
    const pre6 = new Uint32Array(base.length + 1);
    for (let i = 0; i < base.length; i++) {
      pre4[i + 1] = pre4[i]! + v4[i]!;
      pre6[i + 1] = pre6[i]! + v6[i]!;
    }
    const at4 = HDR_WORDS;
    let at6 = HDR_WORDS + pre4[base.length]! * RW4;
    const j = v6.findIndex((n) => n > 0);
    if (j >= 0) {
      const F = expandRules([base.row(j)], [this.#slots[j]!], [this.#tags[j]!]).v6;
      const want = new Uint32Array(RW6);
      want[0] = j;
      want[1] = F.meta[0]!;
      want[2] = F.tag[0]!;
      for (let d = 0; d < V6_DIMS; d++) {
        want[REC_HDR + 2 * d] = F.lo[d]!;
        want[REC_HDR + 2 * d + 1] = F.hi[d]!;
      }
      const end = Math.min(blob.length, this.at) - RW6;
      let k = at6;
      for (; k <= end; k++) {
        if (blob[k] !== j || blob[k + 1] !== want[1] || blob[k + 2] !== want[2]) continue;
        let d = REC_HDR;
        while (d < RW6 && blob[k + d] === want[d]) d++;
        if (d === RW6) break;
      }
      if (k > end) return undefined;
      at6 = k; // (rule j's records are the first IPv6 ones: pre6[j] is 0)
    }
    const index = new Map<string, number>();
    for (let i = 0; i < base.length; i++) index.set(base.ids[i]!, i);
    return (this.#located = { index, at4, at6, pre4, pre6, gone: new Uint8Array(base.length) });
  }

  /** The records in force of rule `id` (written by the overlay, else compiled), or undefined. */
  #recs(loc: Located, id: string): Recs | undefined {
    const m = this.#moved.get(id);
    if (m) return m;
    const i = loc.index.get(id);
    if (i === undefined || loc.gone[i]) return undefined;
    const { pre4, pre6 } = loc;
    return { at4: loc.at4 + pre4[i]! * RW4, n4: pre4[i + 1]! - pre4[i]!, at6: loc.at6 + pre6[i]! * RW6, n6: pre6[i + 1]! - pre6[i]!, prio: i };
  }

  /** Finds the compiled records in `blob` (the compiled set, before any change) ahead of the first change. */
  locate(blob: Uint32Array): void {
    this.#locate(blob);
  }

  /**
   * Removes rule `removeId` (if given) and writes `add` (if given; replacing: the same
   * id) with this slot and tag. `blob`: the blob in force (read on the first change).
   * Returns false, changing nothing, when the overlay has no
   * room: the caller compiles the whole set.
   */
  change(removeId: string | undefined, add: { rule: NormalizedRule; slot: number; tag: number } | undefined, blob: Uint32Array): boolean {
    const loc = this.#locate(blob);
    if (!loc) return false;
    const old = removeId !== undefined ? this.#recs(loc, removeId) : undefined;
    let prio = old ? old.prio : this.#nextPrio;
    let exp: ReturnType<typeof expandRules> | undefined;
    if (add) {
      exp = expandRules([add.rule], [add.slot], [add.tag]);
      if (this.#n4 + exp.v4.count > OVL_MAX || this.#n6 + exp.v6.count > OVL_MAX) return false;
    }
    if (removeId !== undefined && !old) return false; // not expected: the caller checked the id
    if (old) {
      for (let k = 0; k < old.n4; k++) this.patches.push({ off: old.at4 + k * RW4 + REC_HDR, words: Uint32Array.of(0xffffffff, 0) });
      for (let k = 0; k < old.n6; k++) this.patches.push({ off: old.at6 + k * RW6 + REC_HDR, words: Uint32Array.of(0xffffffff, 0) });
      this.#records -= old.n4 + old.n6;
      if (!this.#moved.delete(removeId!)) loc.gone[loc.index.get(removeId!)!] = 1;
      if (!add) {
        if (this.#set.has(removeId!)) this.#set.delete(removeId!);
        if (loc.index.has(removeId!)) this.#removed.push(removeId!);
      }
    }
    if (add && exp) {
      if (!old) prio = this.#nextPrio++;
      const e: Recs = { at4: 0, n4: exp.v4.count, at6: 0, n6: exp.v6.count, prio };
      // a family's records go to consecutive overlay entries: RW4 / RW6 words apart
      const put = (fam: 4 | 6) => {
        const F = fam === 4 ? exp!.v4 : exp!.v6;
        const rw = fam === 4 ? RW4 : RW6;
        const listAt = this.at + (fam === 4 ? 0 : OVL_MAX);
        const recAt = this.at + 2 * OVL_MAX + (fam === 4 ? 0 : OVL_MAX * RW4);
        if (fam === 4) e.at4 = recAt + this.#n4 * rw;
        else e.at6 = recAt + this.#n6 * rw;
        for (let i = 0; i < F.count; i++) {
          const n = fam === 4 ? this.#n4++ : this.#n6++;
          const off = recAt + n * rw;
          const w = new Uint32Array(rw);
          w[0] = prio;
          w[1] = F.meta[i]!;
          w[2] = F.tag[i]!;
          for (let d = 0; d < F.dims; d++) {
            w[REC_HDR + 2 * d] = F.lo[i * F.dims + d]!;
            w[REC_HDR + 2 * d + 1] = F.hi[i * F.dims + d]!;
          }
          this.patches.push({ off, words: w }, { off: listAt + n, words: Uint32Array.of(off) });
        }
      };
      put(4);
      put(6);
      this.#records += exp.v4.count + exp.v6.count;
      this.#moved.set(add.rule.id, e);
      this.#set.set(add.rule.id, { rule: add.rule.rule, slot: add.slot, tag: add.tag });
    }
    return true;
  }

  /**
   * The header and overlay JSON of generation `gen` (what goes into the idle blob after
   * the patches), or undefined when the JSON does not fit.
   */
  finish(gen: number, rules: number): { header: Uint32Array; json: string; jsonBytes: number; usedBytes: number } | undefined {
    const src: DeltaSource = { v: 1, gen, removed: this.#removed, set: [...this.#set.values()] };
    const json = JSON.stringify(src);
    const jsonBytes = Buffer.byteLength(json, 'utf8');
    const usedBytes = this.deltaOff + jsonBytes;
    if (usedBytes > this.#capBytes) return undefined;
    const h = this.#header.slice();
    const now = Date.now();
    h[H_GEN] = gen;
    h[H_RULES] = rules;
    h[H_USED] = Math.ceil(usedBytes / 4);
    h[H_V4_OVL_AT] = this.at;
    h[H_V4_OVL_N] = this.#n4;
    h[H_V6_OVL_AT] = this.at + OVL_MAX;
    h[H_V6_OVL_N] = this.#n6;
    h[H_DELTA_OFF] = this.deltaOff;
    h[H_DELTA_LEN] = jsonBytes;
    h[H_CREATED_LO] = now % 2 ** 32;
    h[H_CREATED_HI] = Math.floor(now / 2 ** 32);
    return { header: h, json, jsonBytes, usedBytes };
  }
}
