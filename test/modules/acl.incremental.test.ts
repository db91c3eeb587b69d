/**
 * One-rule changes through the rule set's overlay (lib/modules/acl/delta.ts): random
 * adds, removes and replacements on a 10k ClassBench set, IPv4 and IPv6, every change
 * checked through BPF_PROG_TEST_RUN against a reference classifier (first match by linear
 * scan over the test's own model of the set), per-rule counters at the end; then the
 * overlay filling up and being folded into a compile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclAction, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { dst6, fmt6, headerFrame, readClassBench, refRules, refTrace, rng, spread, src6, testRunHost, type RefHeader, type RefRule } from './acl.helpers.js';

let lab: Lab;
let host: LabHost;
let ifname: string;

beforeAll(async () => {
  ({ lab, host, ifname } = await testRunHost('acl-incr'));
});
afterAll(async () => {
  await lab?.close();
});

const ACTIONS: AclAction[] = ['allow', 'deny', 'log'];
const v6Proto = (p: number): number => (p === 1 ? 58 : p === 0 ? 253 : p);

function addr(lo: number, hi: number, family: 4 | 6, map: (n: number) => Buffer, base: number): string | undefined {
  const size = hi - lo + 1;
  if (size === 2 ** 32) return undefined;
  const len = 32 - Math.log2(size);
  if (family === 4) return `${[24, 16, 8, 0].map((s) => Math.floor(lo / 2 ** s) % 256).join('.')}/${len}`;
  return `${fmt6(map(lo))}/${base + len}`;
}

/** The test's own translation of a reference rule (ports and proto as in acl.verdicts). */
function toAcl(r: RefRule, family: 4 | 6, id: string, action: AclAction): AclRule {
  const a: AclRule = { id, action };
  const s = addr(r.sLo, r.sHi, family, src6, 16);
  const d = addr(r.dLo, r.dHi, family, dst6, 80);
  if (s) a.src = s;
  if (d) a.dst = d;
  if (r.proto !== null) a.proto = r.proto;
  if (r.spLo !== 0 || r.spHi !== 65535) a.srcPort = [r.spLo, r.spHi];
  if (r.dpLo !== 0 || r.dpHi !== 65535) a.dstPort = [r.dpLo, r.dpHi];
  return a;
}

interface Entry {
  id: string;
  ref: RefRule;
  action: AclAction;
}

function firstMatch(model: Entry[], h: RefHeader): Entry | undefined {
  for (const e of model) {
    const r = e.ref;
    if (h.src < r.sLo || h.src > r.sHi || h.dst < r.dLo || h.dst > r.dHi) continue;
    if (r.proto !== null && r.proto !== h.proto) continue;
    if (h.sport < r.spLo || h.sport > r.spHi || h.dport < r.dpLo || h.dport > r.dpHi) continue;
    return e;
  }
  return undefined;
}

/** A rule around header h: exact addresses, or its source's /24 (overlapping more of the trace). */
function ruleAround(h: RefHeader, wide: boolean): RefRule {
  const sLo = wide ? Math.floor(h.src / 256) * 256 : h.src;
  const ports = h.proto === 6 || h.proto === 17; // (ports need a protocol that has them)
  return {
    sLo,
    sHi: wide ? sLo + 255 : h.src,
    dLo: h.dst,
    dHi: h.dst,
    spLo: 0,
    spHi: 65535,
    dpLo: ports ? h.dport : 0,
    dpHi: ports ? h.dport : 65535,
    proto: h.proto,
  };
}

async function setup(family: 4 | 6, defaultAction: 'allow' | 'deny') {
  let refs = refRules(readClassBench('generated/acl1_10k'));
  let trace = refTrace(readClassBench('generated/acl1_10k_trace'));
  if (family === 6) {
    refs = refs.map((r) => ({ ...r, proto: r.proto === null ? null : v6Proto(r.proto) }));
    trace = trace.map((h) => ({ ...h, proto: v6Proto(h.proto) }));
  }
  const model: Entry[] = refs.map((ref, i) => ({ id: `r${i}`, ref, action: ACTIONS[i % 3]! }));
  const fw = await AclFirewall.attach(ifname, {
    netns: host.netns,
    maxRules: 10_000 + 200,
    defaultAction,
    defaultDenyEvents: false,
    events: false,
    rules: model.map((e) => toAcl(e.ref, family, e.id, e.action)),
  });
  return { fw, model, trace };
}

/** Checks `headers` by testRun against the model; counts each match per rule id in `hits`. */
async function check(fw: AclFirewall, family: 4 | 6, model: Entry[], headers: RefHeader[], defaultAction: string, hits: Map<string, number>, what: string) {
  const bad: string[] = [];
  const lanes = 4;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = lane; i < headers.length; i += lanes) {
        const h = headers[i]!;
        const m = firstMatch(model, h);
        const want = (m ? m.action : defaultAction) === 'deny' ? 'drop' : 'pass';
        const r = await fw.testRun(headerFrame(h, family));
        if (m) hits.set(m.id, (hits.get(m.id) ?? 0) + 1);
        if (r.action !== want && bad.length < 5) bad.push(`${what}: header ${JSON.stringify(h)}: ${r.action}, expected ${want} (rule ${m?.id})`);
      }
    }),
  );
  expect(bad).toEqual([]);
}

async function randomChanges(family: 4 | 6, defaultAction: 'allow' | 'deny', seed: number) {
  const { fw, model, trace } = await setup(family, defaultAction);
  try {
    const r = rng(seed);
    const hits = new Map<string, number>();
    const base = spread(trace, 200);
    await check(fw, family, model, base, defaultAction, hits, 'compiled');
    let added = 0;
    const counts = { add: 0, remove: 0, update: 0 };
    for (let step = 0; step < 40; step++) {
      const h = trace[r() % trace.length]!;
      const kind = (['add', 'remove', 'update'] as const)[r() % 3]!;
      const gen = fw.generation;
      const probe: RefHeader[] = [h];
      if (kind === 'add') {
        const e: Entry = { id: `n${added++}`, ref: ruleAround(h, r() % 2 === 0), action: ACTIONS[r() % 3]! };
        const info = await fw.addRule(toAcl(e.ref, family, e.id, e.action));
        model.push(e);
        expect(info.overlay).toBeGreaterThan(0);
      } else {
        // a rule that matters: the first match of a trace header, if any
        const m = firstMatch(model, h) ?? model[r() % model.length]!;
        const at = model.indexOf(m);
        if (kind === 'remove') {
          expect(await fw.removeRule(m.id)).toBe(true);
          model.splice(at, 1);
          hits.delete(m.id);
        } else {
          const e: Entry = { id: m.id, ref: ruleAround(h, r() % 2 === 0), action: ACTIONS[(ACTIONS.indexOf(m.action) + 1) % 3]! };
          const info = await fw.updateRule(toAcl(e.ref, family, e.id, e.action));
          expect(info.overlay).toBeGreaterThan(0);
          model[at] = e;
        }
        // headers the old rule judged
        for (const x of base) if (x.src >= m.ref.sLo && x.src <= m.ref.sHi && x.dst >= m.ref.dLo && x.dst <= m.ref.dHi) probe.push(x);
      }
      counts[kind]++;
      expect(fw.generation).toBe(gen + 1);
      expect(fw.compileInfo?.overlay).toBeGreaterThanOrEqual(0);
      expect(fw.rules().map((x) => x.id)).toEqual(model.map((e) => e.id));
      await check(fw, family, model, [...probe, ...spread(trace, 60 + step)], defaultAction, hits, `step ${step} (${kind})`);
    }
    expect(counts.add).toBeGreaterThan(5);
    expect(counts.remove).toBeGreaterThan(5);
    expect(counts.update).toBeGreaterThan(5);
    // every rule's counter: the packets the model says it matched (removed rules' counts left with them)
    const st = await fw.stats();
    const diff = model.flatMap((e, i) =>
      st.rules[i]!.packets === (hits.get(e.id) ?? 0) ? [] : [`${e.id}: ${st.rules[i]!.packets} != ${hits.get(e.id) ?? 0}`],
    );
    expect(diff.slice(0, 10)).toEqual([]);
  } finally {
    fw.close();
  }
}

describe('AclFirewall one-rule changes through the overlay (10k ClassBench set, testRun vs a reference)', () => {
  it('acl1_10k, IPv4: 40 random adds, removes and replacements', async () => {
    await randomChanges(4, 'allow', 16);
  }, 120_000);
  it('acl1_10k, IPv6 (mapped addresses): 40 random adds, removes and replacements', async () => {
    await randomChanges(6, 'deny', 61);
  }, 120_000);

  it('the overlay fills up, the next change compiles the set (folds it in), later changes use a new overlay', async () => {
    const { fw, model, trace } = await setup(4, 'deny');
    try {
      const r = rng(7);
      const hits = new Map<string, number>();
      const overlays: number[] = [];
      const headers: RefHeader[] = [];
      for (let k = 0; k < 70; k++) {
        const h = trace[r() % trace.length]!;
        headers.push(h);
        const e: Entry = { id: `f${k}`, ref: ruleAround(h, false), action: ACTIONS[k % 3]! };
        overlays.push((await fw.addRule(toAcl(e.ref, 4, e.id, e.action))).overlay ?? -1);
        model.push(e);
      }
      // one record per IPv4 rule: 64 fit, the 65th change compiled everything, then 5 more in the new overlay
      expect(overlays.slice(0, 64)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
      expect(overlays[64]).toBe(0);
      expect(overlays.slice(65)).toEqual([1, 2, 3, 4, 5]);
      expect(fw.rules().map((x) => x.id)).toEqual(model.map((e) => e.id));
      await check(fw, 4, model, [...headers, ...spread(trace, 300)], 'deny', hits, 'after the fold');
      expect(await fw.removeRule('f3')).toBe(true);
      model.splice(
        model.findIndex((e) => e.id === 'f3'),
        1,
      );
      expect(fw.compileInfo?.overlay).toBe(5);
      await check(fw, 4, model, headers, 'deny', hits, 'after a removal');
    } finally {
      fw.close();
    }
  }, 120_000);

  it('a pinned firewall changed through the overlay is adopted with the set in force (rules, generation, counters)', async () => {
    const pin = `/sys/fs/bpf/bpfkit-test-acl-incr-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    const ip = (s: string) => s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
    const h = (src: string, dport: number): RefHeader => ({ src: ip(src), dst: ip('198.18.9.9'), sport: 1000, dport, proto: 17 });
    const fw1 = await AclFirewall.attach(ifname, {
      netns: host.netns,
      pin,
      maxRules: 64,
      defaultAction: 'allow',
      events: false,
      rules: [
        { id: 'a', action: 'deny', src: '198.18.5.0/24', proto: 'udp', dstPort: 53 },
        { id: 'b', action: 'deny', src: '198.18.6.0/24', proto: 'udp' },
        { id: 'c', action: 'allow', src: ['198.18.7.0/24', '2001:db8::/32'] },
      ],
    });
    let fw2: AclFirewall | undefined;
    try {
      await fw1.removeRule('b');
      await fw1.updateRule({ id: 'a', action: 'deny', src: '198.18.5.0/24', proto: 'udp', dstPort: 54 });
      const info = await fw1.addRule({ id: 'd', action: 'deny', src: '198.18.8.0/24' });
      expect(info.overlay).toBe(2);
      expect((await fw1.testRun(headerFrame(h('198.18.8.1', 1)))).action).toBe('drop');
      const rules = fw1.rules();
      const gen = fw1.generation;
      fw1.close();
      fw2 = await AclFirewall.attach(ifname, { netns: host.netns, pin });
      expect(fw2.adopted).toBe(true);
      expect(fw2.rules()).toEqual(rules);
      expect(fw2.generation).toBe(gen);
      expect(fw2.ruleStats('d')?.packets).toBe(1);
      expect(fw2.ruleStats('b')).toBeUndefined();
      const verdicts = async () =>
        Promise.all(
          [h('198.18.5.1', 53), h('198.18.5.1', 54), h('198.18.6.1', 1), h('198.18.8.1', 1)].map(async (x) => (await fw2!.testRun(headerFrame(x))).action),
        );
      expect(await verdicts()).toEqual(['pass', 'drop', 'pass', 'drop']);
      // the adopted process's first change compiles the set
      expect((await fw2.removeRule('d')) && fw2.compileInfo?.overlay).toBe(0);
      expect(await verdicts()).toEqual(['pass', 'drop', 'pass', 'pass']);
    } finally {
      if (fw2) fw2.detach();
      else {
        fw1.close();
        (await AclFirewall.attach(ifname, { netns: host.netns, pin })).detach();
      }
    }
  }, 60_000);
});
