/**
 * Decapsulator fixtures: packet in / expected verdict / expected packet out, built by
 * test/fixtures/decap/make_fixtures.py with scapy (not with bpfkit), run through
 * BPF_PROG_TEST_RUN on the real kernel. Every case also checks that exactly the right
 * counter moved (decapsulated per protocol/family/VNI, or passed by reason, or nothing).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decapsulator, type DecapLoadOptions, type DecapStats } from '../../lib/index.js';

interface Case {
  name: string;
  config: string;
  packet: string;
  in: string;
  out: string;
  expect: string;
  protocol?: 'vxlan' | 'geneve';
  vni?: number;
  outerIpv6?: boolean;
  innerLen?: number;
}
const fx = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as {
  configs: Record<string, DecapLoadOptions>;
  cases: Case[];
};

/** Every counter as a flat name -> [packets, bytes] map, for exact before/after diffs. */
function flat(s: DecapStats): Map<string, [bigint, bigint]> {
  const m = new Map<string, [bigint, bigint]>();
  for (const [p, c] of Object.entries(s.protocols)) {
    m.set(`${p}/ipv4`, [c.ipv4.packets, c.ipv4.bytes]);
    m.set(`${p}/ipv6`, [c.ipv6.packets, c.ipv6.bytes]);
  }
  for (const v of s.vnis) m.set(`vni/${v.protocol}/${v.vni}`, [v.packets, v.bytes]);
  m.set('vniOverflow', [s.vniOverflow.packets, s.vniOverflow.bytes]);
  m.set('metadataFailed', [s.metadataFailed.packets, s.metadataFailed.bytes]);
  for (const [r, c] of Object.entries(s.passed)) m.set(`passed/${r}`, [c.packets, c.bytes]);
  return m;
}

function diff(a: DecapStats, b: DecapStats): Record<string, [number, number]> {
  const fa = flat(a);
  const out: Record<string, [number, number]> = {};
  for (const [k, [p, by]] of flat(b)) {
    const [p0, b0] = fa.get(k) ?? [0n, 0n];
    if (p !== p0 || by !== b0) out[k] = [Number(p - p0), Number(by - b0)];
  }
  return out;
}

const decaps = new Map<string, Decapsulator>();
beforeAll(async () => {
  for (const [name, opts] of Object.entries(fx.configs)) decaps.set(name, await Decapsulator.load(opts));
});
afterAll(() => {
  for (const d of decaps.values()) d.close();
});

describe('Decapsulator BPF_PROG_TEST_RUN fixtures (scapy-built)', () => {
  it('covers every pass-through reason and both protocols over both outer families', () => {
    const reasons = new Set(fx.cases.map((c) => c.expect));
    for (const r of [
      'otherHost',
      'notLocal',
      'fragment',
      'ipOptions',
      'ipv6ExtHeaders',
      'ipChecksum',
      'malformed',
      'truncated',
      'vxlanFlags',
      'geneveVersion',
      'geneveOam',
      'geneveCritical',
      'geneveProtocol',
      'innerTooShort',
      'vniNotAllowed',
      'decap',
      'ignore',
    ]) {
      expect(reasons, r).toContain(r);
    }
    const kinds = new Set(fx.cases.filter((c) => c.expect === 'decap').map((c) => `${c.protocol}/${c.outerIpv6 ? 6 : 4}`));
    expect([...kinds].sort()).toEqual(['geneve/4', 'geneve/6', 'vxlan/4', 'vxlan/6']);
  });

  for (const c of fx.cases) {
    it(`${c.name} [${c.config}] -> ${c.expect}`, async () => {
      const d = decaps.get(c.config)!;
      const input = Buffer.from(c.in, 'hex');
      const before = d.stats();
      const r = await d.testRun(input);
      const after = d.stats();
      expect(r.action).toBe('pass');
      expect(r.packet.toString('hex'), `scapy: ${c.packet}`).toBe(c.out);
      const moved = diff(before, after);
      if (c.expect === 'decap') {
        const fam = c.outerIpv6 ? 'ipv6' : 'ipv4';
        expect(moved).toEqual({
          [`${c.protocol}/${fam}`]: [1, c.innerLen],
          [`vni/${c.protocol}/${c.vni}`]: [1, c.innerLen],
        });
      } else if (c.expect === 'ignore') {
        expect(moved).toEqual({});
      } else {
        expect(moved).toEqual({ [`passed/${c.expect}`]: [1, input.length] });
      }
    });
  }
});
