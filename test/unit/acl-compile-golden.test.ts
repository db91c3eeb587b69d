// The rule-set compiler's output, pinned: ClassBench sets compile to the very blobs they
// compiled to when addon/acl_compile.cc was split into addon/acl/ (sha256 of the words,
// recorded before the split). The 10k and 100k sets build their big roots on threads
// (addon/acl/build_threads.cc), so this also holds the words independent of the threads.
// A change to the tree builder that is meant to change the trees updates these hashes,
// and says so in its commit. Regenerated when the trees got their memory bound per
// record (header format 2, IPv6 partition on /64; ipc1_10k's trees outgrow their share
// of the bound and are built bounded).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 30536, sha256: 'e307e8940834fe6c12ccf77da0049c8bb59436a1cd7038002b1c8c5f50552538' },
  fw1_1k: { words: 21196, sha256: '1aa0c6f3105909cac498ff0a03b12c86beef81686acb0be64d03d604f25eaeaa' },
  ipc1_1k: { words: 32613, sha256: '5787e3fbc32eaa2387789b82db969614ef5d424877a9b8700090262638cc88ed' },
  acl1_10k: { words: 327179, sha256: '7a629ba50007e302b3a111d5ee1272ec559da51df3d2cfa1e56055422b47415a' },
  fw1_10k: { words: 242571, sha256: '02672bdb83edd642eaa89f566f69db052bea0664b61c75f0e9b1180a8e6d5c77' },
  ipc1_10k: { words: 292961, sha256: '827ecfc1311e4c939b29684cc07126a993d444bce8c2b7b756d4415de3e2b4b5' },
  acl1_100k: { words: 1941401, sha256: 'f575a3194604b036fd11d5034888ca2d1146f9cf5efe1b9a67361ad9b06c300f' },
  fw1_100k: { words: 2303927, sha256: 'c78eb7b69786ffa1bbc4b147b5f1bc22b503aabc5b451211ad0df4b9023b5254' },
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
