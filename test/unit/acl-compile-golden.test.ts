// The rule-set compiler's output, pinned: ClassBench sets compile to the very blobs they
// compiled to when addon/acl_compile.cc was split into addon/acl/ (sha256 of the words,
// recorded before the split). The 10k and 100k sets build their big roots on threads
// (addon/acl/build_threads.cc), so this also holds the words independent of the threads.
// A change to the tree builder that is meant to change the trees updates these hashes,
// and says so in its commit. Regenerated when the trees got their memory bound per
// record (budgeted cuts, spill trees, IPv6 partition on /64, header format 2).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 26995, sha256: 'd84f66d82e4f81e51ab78d6318983f7e4340847afdf015822b6a015f8f5ee6f4' },
  fw1_1k: { words: 21099, sha256: '87168074372260b16f01715f261b8abe9bddb74527b9613b527530eb7371d4d0' },
  ipc1_1k: { words: 27017, sha256: 'a4b21674eaaa1710a596c3c526e727c4e735abed9168a8ccf8b611641decdd88' },
  acl1_10k: { words: 258711, sha256: 'b960d5a0f008c9b1e72379da26bcdab65b7d4fdcdfe53ec3e9fd01da5e137f50' },
  fw1_10k: { words: 237864, sha256: '829fdfc5281d3b958d94e8a98a2cb30f125315cb8103238d37bc757d87e7a3b9' },
  ipc1_10k: { words: 288004, sha256: '7021594662ba32b5c0bc7b4a2fb3e8e077f78ad1463d7a02b88edc79e0f9dcc1' },
  acl1_100k: { words: 1941401, sha256: 'f575a3194604b036fd11d5034888ca2d1146f9cf5efe1b9a67361ad9b06c300f' },
  fw1_100k: { words: 2294476, sha256: '49cad7b12f5f468a9a28cea3f854feb6f907f111244f59de146ac4ac9206400e' },
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
