// The rule-set compiler on sets of any shape, without a kernel: random wide-range and
// wildcard sets (several seeds, IPv4 and IPv6), narrow random sets and adversarial
// families compile within the memory bound per record (bpf/include/acl_blob.h
// ACL_TREE_WORDS), and a walk of the compiled trees (the XDP program's algorithm, written
// again here) gives the reference classifier's first match for every header. Verdicts
// through the real XDP program: test/modules/acl.shapes.test.ts.
import { describe, expect, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import { compileBlob, type FamilyEntries } from '../../lib/modules/acl/classifier.js';
import { HDR_WORDS, MAX_TREES, REC_HDR, RULE_BYTES, TREE_BASE_WORDS, TREE_WORDS, V4_DIMS, V6_DIMS } from '../../lib/modules/acl/layout.js';
import { VARIANTS } from '../../lib/modules/acl/options.js';
import { expandRules, normalizeRules, type AclRule } from '../../lib/modules/acl/rules.js';
import { adversarialRules, narrowRules, randomRules, refFirstMatch, shapeHeaders, shapeKey } from '../modules/acl.shapes.js';
import { walk } from './acl-walk.js';

async function compile(rules: AclRule[]) {
  const norm = normalizeRules(rules, { capacity: 200_000 });
  const slots = Uint32Array.from(norm, (_, i) => i);
  const { v4, v6 } = expandRules(norm, slots, slots);
  return { v4, v6, ...(await compileBlob(v4, v6)) };
}

function treeWords(trees: { family: number; words: number }[], family: number): number {
  return trees.filter((t) => t.family === family).reduce((a, t) => a + t.words, 0);
}

/** The bound: a family's trees take at most TREE_WORDS words per record plus TREE_BASE_WORDS. */
function expectBound(c: { v4: FamilyEntries; v6: FamilyEntries; trees: { family: number; words: number }[] }): void {
  expect(treeWords(c.trees, 4)).toBeLessThanOrEqual(TREE_WORDS * c.v4.count + TREE_BASE_WORDS);
  expect(treeWords(c.trees, 6)).toBeLessThanOrEqual(TREE_WORDS * c.v6.count + TREE_BASE_WORDS);
  expect(c.trees.filter((t) => t.family === 4).length).toBeLessThanOrEqual(MAX_TREES);
  expect(c.trees.filter((t) => t.family === 6).length).toBeLessThanOrEqual(MAX_TREES);
}

const SETS: [string, () => AclRule[]][] = [
  ...[1, 2, 3].map((seed): [string, () => AclRule[]] => [`random 2,000, seed ${seed}`, () => randomRules(2000, seed)]),
  ['random 2,000 IPv6, seed 4', () => randomRules(2000, 4, { v6: 1 })],
  ['narrow 10,000', () => narrowRules(10_000, 5)],
  ['adversarial wide 2,000', () => adversarialRules('wide', 2000, 6)],
  ['adversarial crossing 2,000', () => adversarialRules('crossing', 2000, 7)],
  ['adversarial nested 2,000', () => adversarialRules('nested', 2000, 8)],
];

describe('AclFirewall rule-set compiler: sets of any shape', () => {
  for (const [name, make] of SETS) {
    it(`${name}: within the memory bound, and the walk gives the reference's first match`, async () => {
      const rules = make();
      const c = await compile(rules);
      expectBound(c);
      const headers = shapeHeaders(rules, 3000, 99);
      const wrong: string[] = [];
      let matched = 0;
      for (const h of headers) {
        const want = refFirstMatch(rules, h);
        const got = walk(c.words, shapeKey(h), h.family);
        if (want >= 0) matched++;
        if (got !== want && wrong.length < 5)
          wrong.push(`${JSON.stringify(h, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}: rule ${got}, reference ${want}`);
      }
      expect(wrong).toEqual([]);
      expect(matched).toBeGreaterThan(headers.length / 2); // the rules' own points match (not all first)
    }, 120_000);
  }

  it('100,000 random rules fit the bound too (and the largest variant holds them)', async () => {
    const rules = randomRules(100_000, 11);
    const c = await compile(rules);
    expectBound(c);
    expect(c.words.length * 4).toBeLessThan(100_000 * RULE_BYTES);
  }, 120_000);

  it('every variant holds RULE_BYTES per rule of its capacity, beside the header and the base words', () => {
    for (const v of VARIANTS) expect(v.maxRules * RULE_BYTES + 4 * (HDR_WORDS + 2 * TREE_BASE_WORDS)).toBeLessThanOrEqual(v.bytes);
    // a rule without address lists: an IPv4 and an IPv6 record and their tree words, the rest is its JSON
    expect(4 * (2 * (REC_HDR + TREE_WORDS) + 2 * V4_DIMS + 2 * V6_DIMS)).toBe(440);
  });

  it('one tree replaces the partitions where it fits (moved down over their words), and walks like them', async () => {
    // crossing port ranges over specific and wildcard-ish prefixes: partitioned by the
    // addresses, yet one tree separates them by address within a few times the words
    const rules = adversarialRules('crossing', 4000, 12);
    const c = await compile(rules);
    expectBound(c);
    const v4 = c.trees.filter((t) => t.family === 4);
    expect(v4).toHaveLength(1);
    expect(v4[0]!.records).toBe(c.v4.count);
    // the tree starts right after the records: nothing is left of the partitions
    expect(c.words.length).toBe(HDR_WORDS + c.v4.count * (REC_HDR + 2 * V4_DIMS) + v4[0]!.words);
    for (const h of shapeHeaders(rules, 3000, 5)) expect(walk(c.words, shapeKey(h), h.family)).toBe(refFirstMatch(rules, h));
    // and without the partitions to begin with (partition: false), the same single tree
    const norm = normalizeRules(rules, { capacity: 200_000 });
    const slots = Uint32Array.from(norm, (_, i) => i);
    const { v4: f4, v6: f6 } = expandRules(norm, slots, slots);
    const alone = await compileBlob(f4, f6, { partition: false });
    expect(alone.words).toEqual(c.words);
  }, 60_000);

  it('rules that overlap where no cut separates them go to further trees; beyond MAX_TREES: ERR_UNSUPPORTED', async () => {
    // every rule contains 2001:db8:1::1 from 2001:db8::1: nested /90../127 destinations,
    // which narrowing towards the first rule cannot separate within MAX_DEPTH levels
    const exact: AclRule = { id: 'exact', action: 'deny', src: '2001:db8::1', dst: '2001:db8:1::1' };
    const ok: AclRule[] = [exact];
    for (let p = 90; p < 128; p++) ok.push({ id: `p${p}`, action: 'allow', dst: `2001:db8:1::/${p}` });
    const c = await compile(ok);
    expect(c.trees.filter((t) => t.family === 6).length).toBeGreaterThan(1);
    for (const h of shapeHeaders(ok, 500, 3)) expect(walk(c.words, shapeKey(h), h.family)).toBe(refFirstMatch(ok, h));
    // the same in both fields: 38 x 38 rules nested around one point
    const nested: AclRule[] = [exact];
    for (let p = 90; p < 128; p++)
      for (let q = 90; q < 128; q++) nested.push({ id: `p${p}q${q}`, action: 'allow', src: `2001:db8::/${q}`, dst: `2001:db8:1::/${p}` });
    const err = await compile(nested).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BpfkitError);
    expect(err).toMatchObject({ code: 'ERR_UNSUPPORTED', field: 'rules', details: { family: 6 } });
    expect((err as Error).message).toMatch(/^rule set too complex: \d+ IPv6 records are left over after \d+ trees/);
  }, 60_000);
});
