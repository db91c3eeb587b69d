/**
 * The compiled rule set ("blob") shared with the XDP program. Its constants are generated
 * from bpf/include/acl_blob.h, the one source of truth (layout.gen.ts, by
 * scripts/gen-acl-layout.mjs, run by the native build): `ACL_X` there is `X` here, and
 * enum acl_stat is ACL_STATS. test/unit/acl-blob-contract.test.ts fails when the two drift.
 * This file adds what only user space needs, and the one function that writes a header.
 *
 * A blob is an array of 32-bit words (host byte order):
 *
 *   header   HDR_WORDS words (see H_* offsets)
 *   nodes    decision-tree nodes:
 *              internal: [ctl, child_0 .. child_{2^bits-1}]   ctl = dim | shift<<8 | bits<<16
 *              leaf:     [LEAF | count, rec_0 .. rec_{count-1}] (record word offsets, by priority)
 *            a pointer (a child, a root) is a node's or leaf's offset, PTR_EMPTY (a leaf of no
 *            record) or PTR_REC | a record's offset (a leaf of that record, inline)
 *   records  one per (rule, src, dst) combination:
 *              [prio, meta, tag, lo_0, hi_0, .. lo_{D-1}, hi_{D-1}]   meta = slot | action<<24
 *              (tag: changes when a slot gets a new rule, so the event rate limiter
 *              does not carry a flow's state over to another rule)
 *   source   the rule set as JSON (UTF-8), so a process adopting a pinned firewall can
 *            read back the rules it enforces
 */
import {
  ACL_STATS,
  BLOB_MAGIC,
  BLOB_VERSION,
  FLAG_DEFAULT_DENY,
  FLAG_EVENTS_DEFAULT,
  FLAG_NO_CACHE,
  FLAG_NO_EVENTS,
  H_CREATED_HI,
  H_CREATED_LO,
  H_FLAGS,
  H_GEN,
  H_INTERVAL_MS,
  H_MAGIC,
  H_RECORDS,
  H_RULES,
  H_SRC_LEN,
  H_SRC_OFF,
  H_USED,
  H_V4_ROOTS,
  H_V4_TREES,
  H_V6_ROOTS,
  H_V6_TREES,
  H_VERSION,
  HDR_WORDS,
  MAX_TREES,
  REC_HDR,
  ROOT_WORDS,
} from './layout.gen.js';

export * from './layout.gen.js';

export function recordWords(dims: number): number {
  return REC_HDR + 2 * dims;
}

export type AclStatName = (typeof ACL_STATS)[number];

/**
 * One tree of a family: its root pointer (a node's or leaf's word offset, PTR_EMPTY, or
 * PTR_REC | a record's), the best priority in it, and the root node's or leaf's ctl word
 * (0 for PTR_EMPTY and PTR_REC), which the walk reads from the header with the root.
 */
export interface BlobTreeRoot {
  root: number;
  prio: number;
  ctl: number;
}

/** Header fields of a blob; writeBlobHeader writes those given. */
export interface BlobHeaderFields {
  /** Words in use: records, trees and the JSON source. */
  usedWords?: number;
  /** Rule-set generation (the verdict cache and the events name it). */
  gen?: number;
  flags?: { defaultDeny: boolean; defaultDenyEvents: boolean; events: boolean; verdictCache: boolean };
  eventIntervalMs?: number;
  /** Each family's trees (at most MAX_TREES), in the order the program walks them. */
  v4Trees?: readonly BlobTreeRoot[];
  v6Trees?: readonly BlobTreeRoot[];
  /** Where the JSON source is: word offset and length in bytes. */
  source?: { offWords: number; bytes: number };
  /** User rules. */
  rules?: number;
  /** Records (rule x address combinations). */
  records?: number;
  /** Date.now() of the compile. */
  createdMs?: number;
}

/**
 * Writes a blob header: the format (magic, version) always, and the fields given. The only
 * writer of header words: the compiler (classifier.ts) and the firewall's swap both call it.
 */
export function writeBlobHeader(h: Uint32Array, f: BlobHeaderFields): void {
  if (h.length < HDR_WORDS) throw new RangeError(`blob header: ${h.length} words, need ${HDR_WORDS}`);
  const set = (at: number, v: number | undefined) => {
    if (v !== undefined) h[at] = v >>> 0;
  };
  set(H_MAGIC, BLOB_MAGIC);
  set(H_VERSION, BLOB_VERSION);
  set(H_USED, f.usedWords);
  set(H_GEN, f.gen);
  if (f.flags) {
    const { defaultDeny, defaultDenyEvents, events, verdictCache } = f.flags;
    set(
      H_FLAGS,
      (defaultDeny ? FLAG_DEFAULT_DENY : 0) |
        (defaultDenyEvents ? FLAG_EVENTS_DEFAULT : 0) |
        (events ? 0 : FLAG_NO_EVENTS) |
        (verdictCache ? 0 : FLAG_NO_CACHE),
    );
  }
  set(H_INTERVAL_MS, f.eventIntervalMs);
  const trees = (countAt: number, rootsAt: number, roots: readonly BlobTreeRoot[] | undefined) => {
    if (!roots) return;
    if (roots.length > MAX_TREES) throw new RangeError(`blob header: ${roots.length} trees, at most ${MAX_TREES}`);
    set(countAt, roots.length);
    roots.forEach((r, t) => {
      set(rootsAt + ROOT_WORDS * t, r.root);
      set(rootsAt + ROOT_WORDS * t + 1, r.prio);
      set(rootsAt + ROOT_WORDS * t + 2, r.ctl);
    });
  };
  trees(H_V4_TREES, H_V4_ROOTS, f.v4Trees);
  trees(H_V6_TREES, H_V6_ROOTS, f.v6Trees);
  if (f.source) {
    set(H_SRC_OFF, f.source.offWords);
    set(H_SRC_LEN, f.source.bytes);
  }
  set(H_RULES, f.rules);
  set(H_RECORDS, f.records);
  if (f.createdMs !== undefined) {
    set(H_CREATED_LO, f.createdMs % 2 ** 32);
    set(H_CREATED_HI, Math.floor(f.createdMs / 2 ** 32));
  }
}
