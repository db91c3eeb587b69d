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
// partitions).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 33932, sha256: 'fc88e959bbf4731f83d566969c61df9337190c5cf166dc4e5d0eb1ba442e9c2f' },
  fw1_1k: { words: 23222, sha256: '1903b753b442ed71a5d7a5a4cac9b99cdaa37e4f6b0654a719a33c27b8c6408f' },
  ipc1_1k: { words: 35546, sha256: '48d9fb6629fdbf42ef2efe063d8339940c6985f4b87794a682cd5b6e7f1a0be3' },
  acl1_10k: { words: 367533, sha256: 'edcc291bf1685fe0df46cad2e63f2f83b9034a7c42e76b6e26c31e4aaebf68ca' },
  fw1_10k: { words: 237844, sha256: '1442c3c78ec52ad78e864487c3d6fb0f6d77cdde426589e0e9ee0c57095cf475' },
  ipc1_10k: { words: 325726, sha256: 'e81e61df90298b0a834ade5b77c3cbd3de64c3e1f863b3061f9671de8c7f0d95' },
  acl1_100k: { words: 1936172, sha256: 'eb6d4e78f5bb9a6c1f79b125e6dafcbe93e167b31889787a9825483e9eac5b2a' },
  fw1_100k: { words: 2269232, sha256: 'd87480e71878e2968a01f2d99edefe1c3211bc50022e793c2f8cdb0ea055940a' },
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
