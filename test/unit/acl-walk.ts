// The XDP program's tree walk (bpf/acl/classify.h acl_classify), written again in JS for the
// compiler's kernel-free tests: they check what the compiled trees answer without loading them.
import {
  H_V4_ROOTS,
  H_V4_TREES,
  H_V6_ROOTS,
  H_V6_TREES,
  LEAF,
  LEAF_MAX,
  MAX_DEPTH,
  PTR_EMPTY,
  PTR_REC,
  REC_HDR,
  ROOT_WORDS,
  V4_DIMS,
  V6_DIMS,
} from '../../lib/modules/acl/layout.js';

/** The XDP program's walk (bpf/acl/classify.h acl_classify): the best record's priority (its rule's index) or -1. */
export function walk(w: Uint32Array, key: number[], family: 4 | 6): number {
  const dims = family === 4 ? V4_DIMS : V6_DIMS;
  const ntrees = w[family === 4 ? H_V4_TREES : H_V6_TREES]!;
  const roots = family === 4 ? H_V4_ROOTS : H_V6_ROOTS;
  let bestPrio = 0xffffffff;
  for (let t = 0; t < ntrees; t++) {
    const rt = roots + ROOT_WORDS * t; // (root, best prio, root ctl)
    if (w[rt + 1]! >= bestPrio) continue;
    let p = w[rt]!;
    let ctl = 0;
    // a pointer is a node's or leaf's offset, PTR_EMPTY or PTR_REC | a record's offset
    for (let depth = 0; p !== PTR_EMPTY && !(p & PTR_REC); depth++) {
      if (depth >= MAX_DEPTH) throw new Error('tree deeper than MAX_DEPTH');
      // the program reads the root's ctl from the header, not from the root
      ctl = depth === 0 ? w[rt + 2]! : w[p]!;
      if (ctl & LEAF) break;
      const v = (key[ctl & 15]! >>> ((ctl >> 8) & 31)) & ((1 << ((ctl >> 16) & 31)) - 1);
      p = w[p + 1 + v]!;
    }
    if (p === PTR_EMPTY) continue;
    const one = (p & PTR_REC) !== 0;
    const cnt = one ? 1 : ctl & 0xffff;
    if (cnt > LEAF_MAX) throw new Error(`leaf of ${cnt} records`);
    for (let j = 0; j < cnt; j++) {
      const r = one ? (p & ~PTR_REC) >>> 0 : w[p + 1 + j]!;
      if (w[r]! >= bestPrio) break;
      let ok = true;
      for (let d = 0; d < dims && ok; d++) ok = key[d]! >>> 0 >= w[r + REC_HDR + 2 * d]! && key[d]! >>> 0 <= w[r + REC_HDR + 2 * d + 1]!;
      if (ok) {
        bestPrio = w[r]!;
        break;
      }
    }
  }
  return bestPrio === 0xffffffff ? -1 : bestPrio;
}
