// The rule-set compiler's output, pinned: ClassBench sets compile to the very blobs they
// compiled to when addon/acl_compile.cc was split into addon/acl/ (sha256 of the words,
// recorded before the split). The 10k and 100k sets build their big roots on threads
// (addon/acl/build_threads.cc), so this also holds the words independent of the threads.
// A change to the tree builder that is meant to change the trees updates these hashes,
// and says so in its commit.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 30536, sha256: 'c51078f4b76093c74b78db84de1deaa5bba7727145edd7d95cd171ae92fc5f9a' },
  fw1_1k: { words: 21196, sha256: 'c3f1e395248b7581082c60fbd20ae3d5a3d9394a963bfef3c95e49315354516d' },
  ipc1_1k: { words: 32613, sha256: '653540c935bf58af4fc0abbaf37d815811b5d55a5223b274045414f9d611a8c2' },
  acl1_10k: { words: 327179, sha256: '58cc4dae9bb6c56d9e422994a1ae3dbdc10a2810fa8a2be0b2ac687b2bb45bcc' },
  fw1_10k: { words: 245293, sha256: '684b11ebfb17ea40db2d08f38be7e021ab926733202f870f1a135e4128c3a5bf' },
  ipc1_10k: { words: 405964, sha256: '65ea167a796efe8e22a2c1495e834a1bbc63b690ef2aec0470de1a3c25f1570e' },
  acl1_100k: { words: 1941401, sha256: '0efaeca44771695313feee7e4e7bdd3b8617fa53aa91193230d52a8f81c6563e' },
  fw1_100k: { words: 2307457, sha256: 'edc559324c007bd8bb82daf261b8dff1a88f49c8409a7a7054f46fe40c0edfea' },
};

describe('AclFirewall rule-set compiler output', () => {
  for (const [set, want] of Object.entries(GOLDEN)) {
    it(`compiles ClassBench ${set} to the recorded blob`, async () => {
      const norm = normalizeRules(parseClassBench(readClassBench(`generated/${set}`)), { capacity: 200_000 });
      const slots = Uint32Array.from(norm, (_, i) => i);
      const { v4, v6 } = expandRules(norm, slots, slots);
      const { words } = await compileBlob(v4, v6);
      const sha256 = createHash('sha256').update(new Uint8Array(words.buffer, words.byteOffset, words.byteLength)).digest('hex');
      expect({ words: words.length, sha256 }).toEqual(want);
    }, 120_000);
  }
});
