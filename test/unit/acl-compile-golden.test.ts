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
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { parseClassBench } from '../../lib/modules/acl/classbench.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';

const GOLDEN: Record<string, { words: number; sha256: string }> = {
  acl1_1k: { words: 33915, sha256: 'dfd47b6b1f084f9dcb4e5c849dcc6f1cc4ae269b8f76723830dd7c129af0cc97' },
  fw1_1k: { words: 23146, sha256: 'b0e66342b90251bf514edc50d1d2a380a22f5b3127a441a3b27c4fab478cf6f9' },
  ipc1_1k: { words: 35539, sha256: '4a4336b7ab7b9cbef719bdb7c360112d7912119ae5321172f82f0125bb7e7c06' },
  acl1_10k: { words: 366770, sha256: 'bcb9e1bd09a0746b49851e855b0abf0f5d9b936e417c7c35e0da76ca8c093265' },
  fw1_10k: { words: 218041, sha256: '3d94943be984273b3d5ced9afbae1454a37ce9ca6cf6a3beec576c20bfe33698' },
  ipc1_10k: { words: 325386, sha256: '88d4a2bc7834555d198e570ceb5e773b8527480d5c60165fae288d316a8e433c' },
  acl1_100k: { words: 1872998, sha256: 'aa7d33d8b090441d5bfd4a505b4007d990c73024a60d8251b281db8fe5806609' },
  fw1_100k: { words: 2072061, sha256: '8ffd2486d394ee06b170c3b477d2e708335a9ced73112d7e93d06f35dcdfac37' },
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
