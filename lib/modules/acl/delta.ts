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

interface Recs {
  v4: number[]; // word offsets of the rule's records
  v6: number[];
  prio: number;
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
  readonly #base: readonly NormalizedRule[];
  readonly #slots: Uint32Array;
  readonly #tags: Uint32Array;
  #baseIds: Set<string> | undefined; // ids of the compiled rules (made with #recs)
  #recs: Map<string, Recs> | undefined; // made on the first change
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
    base: readonly NormalizedRule[];
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
  #recsOf(blob: Uint32Array): Map<string, Recs> | undefined {
    if (this.#recs) return this.#recs;
    const m = new Map<string, Recs>();
    const { v4, v6 } = recordCounts(this.#base);
    let n4 = 0;
    for (let i = 0; i < v4.length; i++) n4 += v4[i]!;
    let o4 = HDR_WORDS;
    let o6 = HDR_WORDS + n4 * RW4;
    const j = v6.findIndex((n) => n > 0);
    if (j >= 0) {
      const F = expandRules([this.#base[j]!], [this.#slots[j]!], [this.#tags[j]!]).v6;
      const want = new Uint32Array(RW6);
      want[0] = j;
      want[1] = F.meta[0]!;
      want[2] = F.tag[0]!;
      for (let d = 0; d < V6_DIMS; d++) {
        want[REC_HDR + 2 * d] = F.lo[d]!;
        want[REC_HDR + 2 * d + 1] = F.hi[d]!;
      }
      const end = Math.min(blob.length, this.at) - RW6;
      let k = o6;
      for (; k <= end; k++) {
        if (blob[k] !== j || blob[k + 1] !== want[1] || blob[k + 2] !== want[2]) continue;
        let d = REC_HDR;
        while (d < RW6 && blob[k + d] === want[d]) d++;
        if (d === RW6) break;
      }
      if (k > end) return undefined;
      o6 = k;
    }
    this.#baseIds = new Set(this.#base.map((r) => r.id));
    this.#base.forEach((r, i) => {
      const e: Recs = { v4: [], v6: [], prio: i };
      for (let k = 0; k < v4[i]!; k++, o4 += RW4) e.v4.push(o4);
      for (let k = 0; k < v6[i]!; k++, o6 += RW6) e.v6.push(o6);
      m.set(r.id, e);
    });
    return (this.#recs = m);
  }

  /**
   * Removes rule `removeId` (if given) and writes `add` (if given; replacing: the same
   * id) with this slot and tag. `blob`: the blob in force (read on the first change).
   * Returns false, changing nothing, when the overlay has no
   * room: the caller compiles the whole set.
   */
  /** Finds the compiled records in `blob` (the compiled set, before any change) ahead of the first change. */
  locate(blob: Uint32Array): void {
    this.#recsOf(blob);
  }

  change(removeId: string | undefined, add: { rule: NormalizedRule; slot: number; tag: number } | undefined, blob: Uint32Array): boolean {
    const recs = this.#recsOf(blob);
    if (!recs) return false;
    const old = removeId !== undefined ? recs.get(removeId) : undefined;
    let prio = old ? old.prio : this.#nextPrio;
    let exp: ReturnType<typeof expandRules> | undefined;
    if (add) {
      exp = expandRules([add.rule], [add.slot], [add.tag]);
      if (this.#n4 + exp.v4.count > OVL_MAX || this.#n6 + exp.v6.count > OVL_MAX) return false;
    }
    if (removeId !== undefined && !old) return false; // not expected: the caller checked the id
    if (old) {
      for (const off of old.v4) this.patches.push({ off: off + REC_HDR, words: Uint32Array.of(0xffffffff, 0) });
      for (const off of old.v6) this.patches.push({ off: off + REC_HDR, words: Uint32Array.of(0xffffffff, 0) });
      this.#records -= old.v4.length + old.v6.length;
      recs.delete(removeId!);
      if (!add) {
        if (this.#set.has(removeId!)) this.#set.delete(removeId!);
        if (this.#baseIds!.has(removeId!)) this.#removed.push(removeId!);
      }
    }
    if (add && exp) {
      if (!old) prio = this.#nextPrio++;
      const e: Recs = { v4: [], v6: [], prio };
      const put = (fam: 4 | 6) => {
        const F = fam === 4 ? exp!.v4 : exp!.v6;
        const rw = fam === 4 ? RW4 : RW6;
        const listAt = this.at + (fam === 4 ? 0 : OVL_MAX);
        const recAt = this.at + 2 * OVL_MAX + (fam === 4 ? 0 : OVL_MAX * RW4);
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
          (fam === 4 ? e.v4 : e.v6).push(off);
        }
      };
      put(4);
      put(6);
      this.#records += exp.v4.count + exp.v6.count;
      recs.set(add.rule.id, e);
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
