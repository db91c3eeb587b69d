/**
 * AclFirewall verdicts on rule sets of any shape (random wide-range/wildcard sets of
 * several seeds with IPv6, narrow sets, adversarial families; test/modules/acl.shapes.ts),
 * through BPF_PROG_TEST_RUN with the verdict cache off, so every run walks the trees:
 * each header's verdict and every rule's counter against the reference first-match
 * classifier. Each set has as many rules as the firewall's maxRules: the capacity holds
 * whatever the shape. The rule sets' addresses are only used through testRun.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclRule } from '../../lib/index.js';
import type { Lab, LabHost } from '../../lib/lab/index.js';
import { testRunHost } from './acl.helpers.js';
import { adversarialRules, narrowRules, randomRules, refFirstMatch, shapeFrame, shapeHeaders } from './acl.shapes.js';

let lab: Lab;
let host: LabHost;
let ifname: string;

beforeAll(async () => {
  ({ lab, host, ifname } = await testRunHost('acl-shapes'));
});
afterAll(async () => {
  await lab?.close();
});

async function checkSet(rules: AclRule[], headers: number, seed: number): Promise<{ matched: number }> {
  const fw = await AclFirewall.attach(ifname, {
    netns: host.netns,
    maxRules: rules.length,
    defaultAction: 'allow',
    rules,
    events: false,
    verdictCache: false,
  });
  try {
    const hs = shapeHeaders(rules, headers, seed);
    const want = hs.map((h) => refFirstMatch(rules, h));
    const hits = new Map<number, number>();
    for (const m of want) if (m >= 0) hits.set(m, (hits.get(m) ?? 0) + 1);
    const bad: string[] = [];
    const lanes = 4;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < hs.length; i += lanes) {
          const r = await fw.testRun(shapeFrame(hs[i]!));
          const m = want[i]!;
          const expected = m >= 0 && rules[m]!.action === 'deny' ? 'drop' : 'pass';
          if (r.action !== expected && bad.length < 10) bad.push(`header ${i}: ${r.action}, expected ${expected} (rule ${m})`);
        }
      }),
    );
    expect(bad).toEqual([]);
    const st = await fw.stats();
    const diff = st.rules.flatMap((c, i) => (c.packets === (hits.get(i) ?? 0) ? [] : [`${c.id}: ${c.packets} != ${hits.get(i) ?? 0}`])).slice(0, 10);
    expect(diff).toEqual([]);
    expect(st.default.allowed.packets).toBe(want.filter((m) => m < 0).length);
    expect(st.classified.walked).toBe(hs.length);
    return { matched: hits.size };
  } finally {
    fw.close();
  }
}

describe('AclFirewall verdicts on rule sets of any shape', () => {
  for (const seed of [1, 2, 3]) {
    it(`random 2,048 rules (IPv4 and IPv6, prefixes /0../32, ranges up to 20,000 wide), seed ${seed}`, async () => {
      const r = await checkSet(randomRules(2048, seed), 1500, 100 + seed);
      expect(r.matched).toBeGreaterThan(30); // many distinct rules decide (wide early rules shadow most)
    }, 120_000);
  }
  for (const kind of ['wide', 'crossing', 'nested'] as const) {
    it(`adversarial '${kind}', 2,048 rules`, async () => {
      const r = await checkSet(adversarialRules(kind, 2048, 7), 1500, 200);
      expect(r.matched).toBeGreaterThan(300);
    }, 120_000);
  }
  it('random 10,000 rules and narrow 10,000 rules at the default capacity', async () => {
    await checkSet(randomRules(10_000, 4), 1500, 300);
    await checkSet(narrowRules(10_000, 5), 1000, 301);
  }, 240_000);
});
