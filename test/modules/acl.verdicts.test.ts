/**
 * AclFirewall verdicts on ClassBench rule sets (acl1, fw1, ipc1), through
 * BPF_PROG_TEST_RUN: every header's verdict and the per-rule counters are checked
 * against a reference classifier written for this test (first match by linear scan),
 * and the reference itself against ClassBench's `.firstmatch` answers. IPv6 sets are
 * the same sets with addresses mapped into IPv6 (see acl.helpers.ts). ClassBench
 * addresses are used only through testRun, never as live traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { AclFirewall, type AclAction, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import {
  CLASSBENCH,
  dst6,
  fmt6,
  headerFrame,
  readClassBench,
  refFirstMatch,
  refRules,
  refTrace,
  rng,
  spread,
  src6,
  testRunHost,
  type RefHeader,
  type RefRule,
} from './acl.helpers.js';

let lab: Lab;
let host: LabHost;
let ifname: string;

beforeAll(async () => {
  ({ lab, host, ifname } = await testRunHost('acl-verdicts'));
});
afterAll(async () => {
  await lab?.close();
});

/** Rule i's action: allow, deny, log in turn. */
const actionOf = (i: number): AclAction => (['allow', 'deny', 'log'] as const)[i % 3]!;

function cidr4(lo: number, hi: number): string | undefined {
  const size = hi - lo + 1;
  if (size === 2 ** 32) return undefined;
  const len = 32 - Math.log2(size);
  return `${[24, 16, 8, 0].map((s) => Math.floor(lo / 2 ** s) % 256).join('.')}/${len}`;
}

function cidr6(lo: number, hi: number, map: (n: number) => Buffer, base: number): string | undefined {
  const size = hi - lo + 1;
  if (size === 2 ** 32) return undefined;
  return `${fmt6(map(lo))}/${base + 32 - Math.log2(size)}`;
}

/** The test's own translation of ClassBench rules into AclRules. */
function toAclRules(rules: RefRule[], family: 4 | 6, idPrefix: string): AclRule[] {
  return rules.map((r, i) => {
    const a: AclRule = { id: `${idPrefix}${i}`, action: actionOf(i) };
    const s = family === 4 ? cidr4(r.sLo, r.sHi) : cidr6(r.sLo, r.sHi, src6, 16);
    const d = family === 4 ? cidr4(r.dLo, r.dHi) : cidr6(r.dLo, r.dHi, dst6, 80);
    if (s) a.src = s;
    if (d) a.dst = d;
    if (r.proto !== null) a.proto = family === 6 ? v6Proto(r.proto) : r.proto;
    if (r.spLo !== 0 || r.spHi !== 65535) a.srcPort = [r.spLo, r.spHi];
    if (r.dpLo !== 0 || r.dpHi !== 65535) a.dstPort = [r.dpLo, r.dpHi];
    return a;
  });
}

/** In IPv6, ICMP is 58, and 0 would be a hop-by-hop header: remap both. */
function v6Proto(p: number): number {
  return p === 1 ? 58 : p === 0 ? 253 : p;
}

function v6Rules(rules: RefRule[]): RefRule[] {
  return rules.map((r) => ({ ...r, proto: r.proto === null ? null : v6Proto(r.proto) }));
}

function v6Header(h: RefHeader): RefHeader {
  return { ...h, proto: v6Proto(h.proto) };
}

/** Headers no ClassBench rule was built around (the default-action path). */
function randomHeaders(n: number, seed: number): RefHeader[] {
  const r = rng(seed);
  const protos = [6, 17, 1, 47, 50, 132];
  return Array.from({ length: n }, () => ({ src: r(), dst: r(), sport: r() % 65536, dport: r() % 65536, proto: protos[r() % protos.length]! }));
}

async function checkSet(opts: {
  name: string;
  family: 4 | 6;
  headers: number;
  random: number;
  defaultAction: 'allow' | 'deny';
  maxRules: number;
}): Promise<{ checked: number; matched: number; rules: number }> {
  const text = readClassBench(`generated/${opts.name}`);
  let rules = refRules(text);
  const trace = refTrace(readClassBench(`generated/${opts.name}_trace`));
  const firstmatch = readFileSync(`${CLASSBENCH}/generated/${opts.name}_trace.firstmatch`, 'utf8').trim().split('\n').map(Number);
  // the reference agrees with ClassBench's own answers (on the IPv4 originals)
  const picks = spread([...trace.keys()], opts.headers);
  for (const i of picks) expect(refFirstMatch(rules, trace[i]!)).toBe(firstmatch[i]);
  let headers = [...picks.map((i) => trace[i]!), ...randomHeaders(opts.random, opts.headers + opts.random)];
  if (opts.family === 6) {
    rules = v6Rules(rules);
    headers = headers.map(v6Header);
  }
  const acl = toAclRules(rules, opts.family, 'r');
  const fw = await AclFirewall.attach(ifname, {
    netns: host.netns,
    maxRules: opts.maxRules,
    defaultAction: opts.defaultAction,
    rules: acl,
    defaultDenyEvents: false,
  });
  try {
    const hits = new Map<number, number>();
    let matched = 0;
    const bad: string[] = [];
    const expected = headers.map((h) => {
      const m = refFirstMatch(rules, h);
      if (m >= 0) {
        matched++;
        hits.set(m, (hits.get(m) ?? 0) + 1);
      }
      const action = m >= 0 ? actionOf(m) : opts.defaultAction;
      return action === 'deny' ? 'drop' : 'pass';
    });
    // run in a few parallel lanes (testRun goes to the libuv pool). Each header runs
    // twice in one testRun (on one CPU): the tree walk, then the verdict cache's answer,
    // which is the verdict checked
    const lanes = 4;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < headers.length; i += lanes) {
          const r = await fw.testRun(headerFrame(headers[i]!, opts.family), { repeat: 2 });
          if (r.action !== expected[i] && bad.length < 10)
            bad.push(`header ${i} ${JSON.stringify(headers[i])}: ${r.action}, expected ${expected[i]} (rule ${refFirstMatch(rules, headers[i]!)})`);
        }
      }),
    );
    expect(bad).toEqual([]);
    const st = await fw.stats();
    const counted = st.rules.map((r) => r.packets);
    const want = rules.map((_, i) => 2 * (hits.get(i) ?? 0));
    const diff = counted.flatMap((c, i) => (c === want[i] ? [] : [`r${i}: ${c} != ${want[i]}`])).slice(0, 10);
    expect(diff).toEqual([]);
    const misses = headers.length - matched;
    const dflt = opts.defaultAction === 'deny' ? st.default.denied : st.default.allowed;
    expect(dflt.packets).toBe(2 * misses);
    // every second run was a cache hit (first runs also hit where a header repeats), but
    // for the rare pair that the kernel rescheduled between the two repetitions (the test
    // run loop yields on need_resched: another lane may then evict the slot, or the thread
    // may move to the other CPU's cache) — seen once in 2,300 on a loaded machine
    expect(st.classified.cached + st.classified.walked).toBe(2 * headers.length);
    expect(st.classified.cached).toBeGreaterThanOrEqual(headers.length - Math.ceil(headers.length / 100));
    return { checked: headers.length, matched, rules: rules.length };
  } finally {
    fw.close();
  }
}

describe('AclFirewall verdicts on ClassBench sets (testRun vs a reference classifier)', () => {
  for (const name of ['acl1_1k', 'fw1_1k', 'ipc1_1k']) {
    it(`${name}, IPv4: every verdict and every rule's counter`, async () => {
      const r = await checkSet({ name, family: 4, headers: 3000, random: 500, defaultAction: 'deny', maxRules: 2000 });
      expect(r.matched).toBeGreaterThanOrEqual(3000);
    });
  }
  for (const name of ['acl1_1k', 'fw1_1k']) {
    it(`${name}, IPv6 (mapped addresses): every verdict and every rule's counter`, async () => {
      const r = await checkSet({ name, family: 6, headers: 2000, random: 300, defaultAction: 'allow', maxRules: 2000 });
      expect(r.matched).toBeGreaterThanOrEqual(2000);
    });
  }
  for (const name of ['acl1_10k', 'fw1_10k', 'ipc1_10k']) {
    it(`${name}, IPv4`, async () => {
      const r = await checkSet({ name, family: 4, headers: 2500, random: 300, defaultAction: 'allow', maxRules: 10_000 });
      expect(r.rules).toBeGreaterThan(9000);
    });
  }
  it('acl1_10k, IPv6 (mapped addresses)', async () => {
    await checkSet({ name: 'acl1_10k', family: 6, headers: 1500, random: 200, defaultAction: 'deny', maxRules: 10_000 });
  });
  it('acl1_100k, IPv4 (99,632 rules)', async () => {
    const r = await checkSet({ name: 'acl1_100k', family: 4, headers: 2000, random: 300, defaultAction: 'deny', maxRules: 100_000 });
    expect(r.rules).toBe(99_632);
  }, 180_000);
  it('fw1_100k, IPv4 (92,653 rules)', async () => {
    const r = await checkSet({ name: 'fw1_100k', family: 4, headers: 2000, random: 300, defaultAction: 'allow', maxRules: 100_000 });
    expect(r.rules).toBe(92_653);
  }, 180_000);
});
