/**
 * AclFirewall per-rule counters (bpf/acl/maps.h: acl_rule_counters, one region of counter
 * slots per possible CPU in one plain array): packets counted on each CPU in turn (the
 * whole process pinned with taskset, so BPF_PROG_TEST_RUN runs there) add up, rule by
 * rule, to exactly the packets and bytes sent to it; each CPU's region holds its own
 * share; a slot a removed rule leaves behind starts at zero for the id that takes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { AclFirewall, BpfMap, possibleCpus, struct, u32, u64, type AclRule } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { onCpu } from '../helpers/cpu.js';
import { frame, v4, testRunHost } from './acl.helpers.js';

const PIN = `/sys/fs/bpf/bpfkit-test-aclctr-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
const MAX_RULES = 16;
let lab: Lab;
let fw: AclFirewall;
let ifname: string;
let netns: string;

beforeAll(async () => {
  const t = await testRunHost('acl-ctr');
  lab = t.lab;
  ifname = t.ifname;
  netns = t.host.netns;
});
afterAll(async () => {
  fw?.detach();
  await lab?.close();
});

const RULES: AclRule[] = [
  { id: 'dns', action: 'allow', proto: 'udp', dstPort: 53 },
  { id: 'web', action: 'deny', proto: 'tcp', dstPort: [80, 90] },
  { id: 'lan', action: 'log', src: '198.18.1.0/24' },
  { id: 'udp', action: 'deny', proto: 'udp' },
];
/** Test frames, each with the rule a first-match scan of RULES gives it (undefined: default). */
const CASES: { f: Buffer; rule: string | undefined; n: [number, number] }[] = [
  { f: frame({ src: v4('198.18.1.7'), dst: v4('198.18.0.2'), proto: 17, sport: 1000, dport: 53 }), rule: 'dns', n: [7, 3] },
  { f: frame({ src: v4('198.18.2.7'), dst: v4('198.18.0.2'), proto: 6, sport: 1000, dport: 85 }), rule: 'web', n: [5, 11] },
  { f: frame({ src: v4('198.18.1.9'), dst: v4('198.18.0.2'), proto: 6, sport: 1000, dport: 22, length: 200 }), rule: 'lan', n: [2, 9] },
  { f: frame({ src: v4('198.18.2.9'), dst: v4('198.18.0.2'), proto: 17, sport: 1000, dport: 54 }), rule: 'udp', n: [13, 1] },
  { f: frame({ src: v4('198.18.2.9'), dst: v4('198.18.0.2'), proto: 6, sport: 1000, dport: 22 }), rule: undefined, n: [4, 4] },
];

/** The pinned counters of one CPU's region, by slot. */
function region(cpu: number): { packets: bigint; bytes: bigint }[] {
  using m = BpfMap.openPinned(join(PIN, 'rule_counters'), { key: u32, value: struct('bpfkit_counter', { packets: u64, bytes: u64 }) });
  const slots = m.info.maxEntries / possibleCpus();
  expect(slots).toBe(2 * MAX_RULES);
  return Array.from({ length: slots }, (_, s) => m.get(cpu * slots + s)!);
}

describe('per-rule counters', () => {
  it('packets from each CPU in turn: every rule exact, each CPU its own region; a reused slot starts at zero', async () => {
    fw = await AclFirewall.attach(ifname, { netns, pin: PIN, maxRules: MAX_RULES, rules: RULES, events: false });
    const lanes = cpus().length > 1 ? [0, 1] : [0];
    for (const [lane, cpu] of lanes.entries()) {
      await onCpu(cpu, async () => {
        for (const c of CASES) expect((await fw.testRun(c.f, { repeat: c.n[lane] })).retval).toBeGreaterThanOrEqual(0);
      });
    }
    const want = (id: string | undefined, fromLanes = lanes.map((_, l) => l)) => {
      let packets = 0;
      let bytes = 0;
      for (const c of CASES.filter((x) => x.rule === id))
        for (const l of fromLanes) {
          packets += c.n[l]!;
          bytes += c.n[l]! * c.f.length;
        }
      return { packets, bytes };
    };
    const stats = await fw.stats();
    for (const r of RULES) {
      expect(fw.ruleStats(r.id), r.id).toEqual(want(r.id));
      expect(
        stats.rules.find((x) => x.id === r.id),
        r.id,
      ).toMatchObject(want(r.id));
    }
    expect(stats.default.allowed.packets).toBe(want(undefined).packets);

    // the pinned layout: CPU c's counter of slot s at c x slots + s, each CPU its own share
    let inRegions = 0n;
    for (const [lane, cpu] of lanes.entries()) {
      const inRegion = region(cpu).reduce((sum, c) => sum + c.packets, 0n);
      expect(inRegion, `CPU ${cpu}`).toBe(BigInt(RULES.reduce((sum, r) => sum + want(r.id, [lane]).packets, 0)));
      inRegions += inRegion;
    }
    expect(inRegions).toBe(BigInt(RULES.reduce((sum, r) => sum + want(r.id).packets, 0)));

    // 'web' goes, its slot is freed; the next new id takes it and starts at zero
    await fw.setRules(RULES.filter((r) => r.id !== 'web'));
    await fw.setRules([...RULES.filter((r) => r.id !== 'web'), { id: 'web2', action: 'deny', proto: 'tcp', dstPort: [80, 90] }]);
    expect(fw.ruleStats('web2')).toEqual({ packets: 0, bytes: 0 });
    expect(fw.ruleStats('dns')).toEqual(want('dns')); // a kept id keeps counting
    for (const [lane, cpu] of lanes.entries()) await onCpu(cpu, () => fw.testRun(CASES[1]!.f, { repeat: CASES[1]!.n[lane] }));
    expect(fw.ruleStats('web2')).toEqual(want('web'));
    expect(fw.ruleStats('web')).toBeUndefined();
  });
});
