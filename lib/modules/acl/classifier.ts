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
 * like firewall sets), rules are split into up to 3 groups by which address fields are
 * specific, each with its own tree; the packet walks all of them and keeps the best
 * priority (trees whose best rule cannot beat the current match are skipped).
 *
 * Memory is bounded per record whatever the shape: a family's trees take at most
 * TREE_WORDS words per record plus TREE_BASE_WORDS. A tree that outgrows its share is
 * built again with per-node budgets, and the rules its full leaves cannot hold go to
 * further trees (up to MAX_TREES per family); beyond that the set is refused as too
 * complex (addon/acl/tree.h, docs/acl.md "Capacity").
 *
 * This file groups the records and fills the header (layout.ts writeBlobHeader); the
 * trees are built by the native addon (addon/acl/tree.cc): a 10,000-rule set visits tens
 * of thousands of nodes, each trying every dimension at several widths, and native code
 * does that about 4x faster than the same algorithm in JS did, which matters for how fast
 * a swap is.
 */
import { BpfkitError } from '../../core/errors.js';
import { aclCompile, type NativeAclFamily } from '../../core/native-acl.js';
import {
  LEAF_MAX,
  MAX_BLOB_BYTES,
  MAX_CUT_BITS,
  MAX_TREES,
  PTR_EMPTY,
  PTR_REC,
  TREE_WORDS,
  V4_DIMS,
  V4_WIDTHS,
  V6_DIMS,
  V6_WIDTHS,
  writeBlobHeader,
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
  /** Tree words per record, the memory bound (at most and by default TREE_WORDS). */
  treeWords?: number;
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

/**
 * Groups a family's records by which address is specific (a prefix of at least 16 bits
 * for IPv4, 64 for IPv6), so wildcard addresses are not copied into every child of the
 * cuts on that field: a specific source (whatever the destination), a specific
 * destination only, neither. A rule specific in both goes with the specific sources:
 * the source cuts separate it as well, and a fourth tree (EffiCuts' and CutSplit's
 * both-specific class) cost a packet one more tree to walk for no memory saved (fw1_100k
 * walked 2.85 trees per packet with four, 1.94 with three, in 2% fewer words). Returns up
 * to 3 groups in order of their best priority, each a list of record indices in priority
 * order. Small sets use one tree.
 */
function partition(fam: FamilyEntries, family: 4 | 6, on: boolean): Int32Array[] {
  const n = fam.count;
  if (n === 0) return [];
  if (!on || n <= 64) {
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return [all];
  }
  const D = fam.dims;
  // IPv4: a prefix of at least 16 bits (word 0 at most 0xffff wide); IPv6: at least 64
  // bits (word 1 exact), since the prefixes of a network's rules often share their /32
  const srcW = family === 4 ? 0 : 1;
  const dstW = family === 4 ? 1 : 5;
  const limit = family === 4 ? 0xffff : 0;
  const { lo, hi } = fam;
  const bucket = new Uint8Array(n);
  const sizes = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    // 2: specific source, 1: specific destination only, 0: neither
    const b = hi[i * D + srcW]! - lo[i * D + srcW]! <= limit ? 2 : hi[i * D + dstW]! - lo[i * D + dstW]! <= limit ? 1 : 0;
    bucket[i] = b;
    sizes[b]!++;
  }
  const lists = sizes.map((k) => new Int32Array(k));
  const fill = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const b = bucket[i]!;
    lists[b]![fill[b]!++] = i;
  }
  const groups = lists.filter((g) => g.length > 0);
  groups.sort((a, b) => fam.prio[a[0]!]! - fam.prio[b[0]!]!);
  return groups;
}

/**
 * Compiles the records of both families into a blob of at most `maxBytes` (0: the largest
 * any program variant addresses, MAX_BLOB_BYTES; beyond it: ERR_MAP_FULL, and the compiler
 * stops growing it). The trees are built by the native addon (addon/acl/) on
 * the libuv thread pool, so a big set does not stall the event loop. `gen` and other header fields beyond the classifier are filled
 * by the caller (see layout.ts).
 */
export async function compileBlob(v4: FamilyEntries, v6: FamilyEntries, opts: CompileOptions = {}, maxBytes = 0): Promise<CompiledBlob> {
  const on = opts.partition ?? true;
  const fam = (f: FamilyEntries, family: 4 | 6): NativeAclFamily => ({
    ...f,
    family,
    widths: Uint8Array.from(family === 4 ? V4_WIDTHS : V6_WIDTHS),
    groups: partition(f, family, on).slice(0, MAX_TREES),
  });
  const res = await aclCompile(fam(v4, 4), fam(v6, 6), {
    binth: opts.binth ?? 8,
    spfac: opts.spfac ?? 4,
    maxBits: opts.maxBits ?? 8,
    maxCutBits: MAX_CUT_BITS,
    maxWords: Math.floor((maxBytes || MAX_BLOB_BYTES) / 4),
    treeWords: opts.treeWords ?? TREE_WORDS,
  });
  if (res.tooBig) {
    const limit = maxBytes || MAX_BLOB_BYTES;
    const records = v4.count + v6.count;
    throw new BpfkitError(
      'ERR_MAP_FULL',
      `rules: the compiled rule set needs more than ${limit} bytes (${records} records: rules x sources x destinations; compilation stopped there)`,
      {
        field: 'rules',
        details: { capacity: limit, records },
      },
    );
  }
  if (res.error) {
    const { family, depth, rules } = res.error;
    throw new BpfkitError(
      'ERR_UNSUPPORTED',
      `rule set too complex: ${rules} IPv${family} records are left over after ${MAX_TREES} trees (more than ${LEAF_MAX} rules overlap where no cut within the memory bound separates them, at depth ${depth})`,
      { field: 'rules', details: { family, depth, rules } },
    );
  }
  const w = res.words!;
  // the root's ctl word goes into the header beside it (acl_blob.h ACL_H_V4_ROOTS)
  const roots = (family: 4 | 6) =>
    res.roots!.filter((r) => r.family === family).map(({ root, prio }) => ({ root, prio, ctl: root === PTR_EMPTY || root & PTR_REC ? 0 : w[root]! }));
  writeBlobHeader(w, { usedWords: w.length, gen: 0, rules: 0, records: v4.count + v6.count, v4Trees: roots(4), v6Trees: roots(6) });
  return { words: w, trees: res.trees! };
}

export { V4_DIMS, V6_DIMS };
