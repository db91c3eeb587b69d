// The rule-set compiler (lib/modules/acl/classifier.ts + addon/acl/) on its own,
// without a kernel: blob layout, determinism, the "too complex" error, and a walk of the
// compiled trees (the XDP program's algorithm, written again here) checked against
// ClassBench's own first-match answers. Verdicts through the real XDP program are in
// test/modules/acl.verdicts.test.ts.
import { describe, expect, it } from 'vitest';
import { compileBlob, type FamilyEntries } from '../../lib/modules/acl/classifier.js';
import { parseClassBench, parseClassBenchTrace } from '../../lib/modules/acl/classbench.js';
import {
  BLOB_MAGIC,
  HDR_WORDS,
  H_MAGIC,
  H_RECORDS,
  H_USED,
  H_V6_TREES,
  REC_HDR,
  recordWords,
  TREE_BASE_WORDS,
  TREE_WORDS,
  V4_DIMS,
  V6_DIMS,
} from '../../lib/modules/acl/layout.js';
import { expandRules, normalizeRules, type NormalizedRule } from '../../lib/modules/acl/rules.js';
import type { AclRule } from '../../lib/modules/acl/rules.js';
import { readClassBench } from '../modules/acl.helpers.js';
import { walk } from './acl-walk.js';

function entries(rules: AclRule[]): { norm: NormalizedRule[]; v4: FamilyEntries; v6: FamilyEntries } {
  const norm = normalizeRules(rules, { capacity: 200_000 });
  const slots = Uint32Array.from(norm, (_, i) => i);
  return { norm, ...expandRules(norm, slots, slots) };
}

describe('AclFirewall rule-set compiler', () => {
  it('lays out the header and the records in priority order', async () => {
    const { v4, v6 } = entries(parseClassBench(readClassBench('generated/fw1_1k')));
    const { words } = await compileBlob(v4, v6);
    expect(words[H_MAGIC]).toBe(BLOB_MAGIC);
    expect(words[H_USED]).toBe(words.length);
    expect(words[H_RECORDS]).toBe(v4.count + v6.count);
    const rw = recordWords(V4_DIMS);
    for (const i of [0, 1, v4.count >> 1, v4.count - 1]) {
      const at = HDR_WORDS + i * rw;
      expect(words[at]).toBe(v4.prio[i]);
      expect(words[at + 1]).toBe(v4.meta[i]);
      expect(Array.from(words.subarray(at + REC_HDR, at + rw))).toEqual(
        Array.from({ length: 2 * V4_DIMS }, (_, k) => (k % 2 ? v4.hi : v4.lo)[i * V4_DIMS + (k >> 1)]),
      );
    }
    expect(words[H_V6_TREES]).toBeGreaterThan(0); // rules without addresses apply to IPv6 too
  });

  it('is deterministic: the same rules give the same words', async () => {
    const { v4, v6 } = entries(parseClassBench(readClassBench('generated/acl1_1k')));
    const a = (await compileBlob(v4, v6)).words;
    const b = (await compileBlob(v4, v6)).words;
    expect(b.length).toBe(a.length);
    expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
  });

  // the 10k sets' big trees are built by two threads (the root's children split between them)
  it.each(['acl1_1k', 'fw1_1k', 'ipc1_1k', 'acl1_10k', 'fw1_10k', 'ipc1_10k'])(
    "%s: walking the trees gives ClassBench's first match for every trace header",
    async (set) => {
      const { v4, v6 } = entries(parseClassBench(readClassBench(`generated/${set}`)));
      const { words } = await compileBlob(v4, v6);
      const trace = parseClassBenchTrace(readClassBench(`generated/${set}_trace`));
      const answers = readClassBench(`generated/${set}_trace.firstmatch`).trim().split('\n').map(Number);
      expect(answers.length).toBe(trace.length);
      let matched = 0;
      const wrong: string[] = [];
      trace.forEach((h, i) => {
        // .firstmatch: 0-based rule index, -1 for none (records are one per rule here: no lists)
        const got = walk(words, [h.src, h.dst, h.srcPort, h.dstPort, h.proto, 0, 1], 4);
        if (got !== answers[i] && wrong.length < 5) wrong.push(`header ${i}: rule ${got}, ClassBench says ${answers[i]}`);
        if (got >= 0) matched++;
      });
      expect(wrong).toEqual([]);
      expect(matched).toBeGreaterThan(trace.length / 2);
    },
  );

  // more than LEAF_MAX rules where no cut separates them: test/unit/acl-shapes.test.ts

  it('stops with ERR_MAP_FULL as soon as the blob would outgrow the limit', async () => {
    const { v4, v6 } = entries(parseClassBench(readClassBench('generated/acl1_1k')));
    const full = (await compileBlob(v4, v6)).words.length * 4;
    const records = (HDR_WORDS + v4.count * recordWords(V4_DIMS) + v6.count * recordWords(V6_DIMS)) * 4;
    for (const limit of [records - 4, records + 1024]) {
      // the records do not fit / the trees do not
      expect(limit).toBeLessThan(full);
      await expect(compileBlob(v4, v6, {}, limit)).rejects.toMatchObject({ code: 'ERR_MAP_FULL', field: 'rules' });
    }
    expect((await compileBlob(v4, v6, {}, full)).words.length * 4).toBe(full);
  });

  it('two-thread trees: deterministic, and the limit is exact (fits at its size, ERR_MAP_FULL one word less)', async () => {
    const { v4, v6 } = entries(parseClassBench(readClassBench('generated/acl1_10k')));
    const a = (await compileBlob(v4, v6)).words;
    const b = (await compileBlob(v4, v6)).words;
    expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
    const full = a.length * 4;
    expect((await compileBlob(v4, v6, {}, full)).words.length * 4).toBe(full);
    await expect(compileBlob(v4, v6, {}, full - 4)).rejects.toMatchObject({ code: 'ERR_MAP_FULL', field: 'rules' });
    await expect(compileBlob(v4, v6, {}, full - 4096)).rejects.toMatchObject({ code: 'ERR_MAP_FULL', field: 'rules' });
  });

  it('a set whose trees would replicate without bound is refused as too complex, within the memory bound', async () => {
    // fw1 without its partition into trees: wildcard fields would be copied into every
    // child (this ran to the largest blob before the bound); now the tree stops at its
    // share of the bound and what it spills does not fit MAX_TREES trees either
    const { v4, v6 } = entries(parseClassBench(readClassBench('generated/fw1_10k')));
    await expect(compileBlob(v4, v6, { partition: false })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', field: 'rules', details: { family: 4 } });
    // with its partition it fits well within the bound
    const { trees } = await compileBlob(v4, v6);
    const words = trees.filter((t) => t.family === 4).reduce((a, t) => a + t.words, 0);
    expect(words).toBeLessThanOrEqual((TREE_WORDS * v4.count + TREE_BASE_WORDS) / 2);
  });

  it('rejects record arrays that do not match their counts (a TypeError, never a bad read)', async () => {
    const { v4, v6 } = entries([{ id: 'a', action: 'deny', src: '198.18.0.0/15' }]);
    const short: FamilyEntries = { ...v4, count: v4.count + 5 };
    await expect(compileBlob(short, v6)).rejects.toThrow(TypeError);
  });
});
