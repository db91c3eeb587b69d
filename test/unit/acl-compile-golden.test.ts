// The rule-set compiler's output, pinned: ClassBench sets compile to the very blobs they
// compiled to when addon/acl_compile.cc was split into addon/acl/ (sha256 of the words,
// recorded before the split). The 10k and 100k sets build their big roots on threads
// (addon/acl/build_threads.cc), so this also holds the words independent of the threads.
// A change to the tree builder that is meant to change the trees updates these hashes,
// and says so in its commit. Regenerated when the trees got their memory bound per
// record (header format 2, IPv6 partition on /64; ipc1_10k's trees outgrow their share
// of the bound and are built bounded). Regenerated when the partitions became 3 (a rule
// specific in both addresses joins the source-specific tree: one tree fewer to walk); the
// one-tree attempt over a family is capped at 16 words a record too (acl1_1k keeps its
// partitions). Regenerated when empty and one-record leaves became pointers (blob format 3:
// ACL_PTR_EMPTY, ACL_PTR_REC | a record's offset), with no leaf words of their own.
// Regenerated when each tree's root ctl word joined its root in the header (blob format 4,
// a header of 80 words): every set is 16 words longer, and each word after the header is
// the old one or, for a pointer, the old one + 16 (checked word by word against format 3).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 33931, sha256: 'f72ee54d5978ceefdd8a060c9fa8811691b1c1828e77f77db649764abc715c79' },
  fw1_1k: { words: 23162, sha256: '58d98d7af70633fbddcc1729f2096cd589937ebb794f342746c874a35684d9b6' },
  ipc1_1k: { words: 35555, sha256: '809074d211713b6db7cc828b0843d25e4de28bdd2f158eb677946e2c13337f39' },
  acl1_10k: { words: 366786, sha256: 'f3d271a7a5bc274dd98d4dbbbcb2830165cfd20e12012007138fe9099acc305a' },
  fw1_10k: { words: 218057, sha256: 'aad6dbe3b79bb4862cc623059ae8d60b43f4c8a6d3e25fb565ea147cd45b9e34' },
  ipc1_10k: { words: 325402, sha256: '55546d7742df7dce21ed3b00bb3939a35b0c4884f67d5f611d7d7d7ac0c5a75e' },
  acl1_100k: { words: 1873014, sha256: 'cc61643d2bc7ffa72ec8c84acb1e2e5a50859b19166b51b8c1e39bfe969b6d2e' },
  fw1_100k: { words: 2072077, sha256: '682cca483b702ababd9d427fd620d2325b07ce05ccb2d1c0c0abc9fafa33dd17' },
};

describe('AclFirewall rule-set compiler output', () => {
  for (const [set, want] of Object.entries(GOLDEN)) {
    it(`compiles ClassBench ${set} to the recorded blob`, async () => {
      const norm = normalizeRules(parseClassBench(readClassBench(`generated/${set}`)), { capacity: 200_000 });
      const slots = Uint32Array.from(norm, (_, i) => i);
      const { v4, v6 } = expandRules(norm, slots, slots);
      const { words } = await compileBlob(v4, v6);
      const sha256 = createHash('sha256')
        .update(new Uint8Array(words.buffer, words.byteOffset, words.byteLength))
        .digest('hex');
      expect({ words: words.length, sha256 }).toEqual(want);
    }, 120_000);
  }
});
