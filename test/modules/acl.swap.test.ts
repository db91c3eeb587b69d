/**
 * Atomic rule-set swaps under load: 2,000 flips between two rule sets while packets flow
 * (live UDP over the lab veth, plus BPF_PROG_TEST_RUN lanes). The sets give the probe
 * packets the same verdict (allowed) through different trees, rule orders and catch-alls,
 * and differ in the action of the probe rules (log in A, allow in B), so:
 *  - a packet judged by a torn mix of the two would fall to the catch-all deny rules or
 *    the default deny, whose counters must stay 0;
 *  - every event (only A logs) must carry an A generation (odd) and name the probe rule
 *    of the packet's own destination: record, header and packet from one set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { frame, rng, v4 } from './acl.helpers.js';

const PROBES = 64;
const FLIPS = 2000;
let lab: Lab;
let client: LabHost;
let fw: AclFirewall;

function decoys(seed: number, n: number): AclRule[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `decoy-${seed}-${i}`,
    action: 'deny' as const,
    src: `198.18.${4 + (r() % 8)}.${r() % 256}`,
    dst: `198.18.3.${r() % 256}`,
    proto: 'udp' as const,
    dstPort: [r() % 1000, 1000 + (r() % 1000)] as [number, number],
  }));
}

const probe = (i: number, action: 'log' | 'allow'): AclRule => ({ id: `probe-${i}`, action, dst: `198.18.1.${i}`, proto: 'udp', dstPort: 9 });
const SET_A: AclRule[] = [
  ...decoys(1, 150),
  ...Array.from({ length: PROBES }, (_, i) => probe(i, 'log')),
  { id: 'a-deny', action: 'deny', dst: '198.18.1.0/24' },
  { id: 'a-rest', action: 'allow' },
];
const SET_B: AclRule[] = [
  ...Array.from({ length: PROBES }, (_, i) => probe(PROBES - 1 - i, 'allow')),
  ...decoys(2, 200),
  { id: 'b-deny', action: 'deny', dst: '198.18.0.0/15' },
  { id: 'b-rest', action: 'allow', src: ['0.0.0.0/0', '::/0'] },
];

beforeAll(async () => {
  lab = await Lab.create({ name: 'acl-swap' });
  client = await lab.host('client');
  const server = await lab.host('server');
  const l = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  await client.addRoute('198.18.1.0/24 via 198.18.0.2');
  fw = await AclFirewall.attach(l.b.ifname, { netns: server.netns, maxRules: 512, defaultAction: 'deny', rules: SET_A, eventIntervalMs: 0 });
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('atomic swap under load', () => {
  it(`${FLIPS} flips while packets flow: every packet judged by one whole set`, async () => {
    const events: AclEvent[] = [];
    fw.on('event', (e) => events.push(e));
    const g0 = fw.generation;
    expect(g0 % 2).toBe(1); // A has odd generations
    let flipping = true;
    let runs = 0;
    const wrong: string[] = [];
    // live traffic: UDP datagrams to the probe addresses through the veth
    const live = (async () => {
      let sent = 0;
      while (flipping) {
        const r = await client.sendUdp(`198.18.1.${sent % PROBES}`, 9, { count: 2000 });
        sent += r.sent;
      }
      return sent;
    })();
    // testRun lanes
    const lanes = Array.from({ length: 3 }, async (_, lane) => {
      const r = rng(100 + lane);
      while (flipping) {
        const i = r() % PROBES;
        const res = await fw.testRun(frame({ src: v4('198.18.0.1'), dst: v4(`198.18.1.${i}`), proto: 17, sport: 5000 + lane, dport: 9 }), { repeat: 20 });
        runs += 20;
        if (res.action !== 'pass' && wrong.length < 5) wrong.push(`probe ${i}: ${res.action}`);
      }
    });
    const t0 = performance.now();
    for (let k = 1; k <= FLIPS; k++) await fw.setRules(k % 2 ? SET_B : SET_A);
    const flipMs = (performance.now() - t0) / FLIPS;
    flipping = false;
    const sent = await live;
    await Promise.all(lanes);
    expect(fw.generation).toBe(g0 + FLIPS);
    expect(wrong).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    const st = await fw.stats();
    const count = (id: string) => st.rules.find((r) => r.id === id)?.packets ?? 0;
    // the catch-alls of the current set (A again after an even number of flips) and the default never fired
    expect(count('a-deny')).toBe(0);
    expect(st.default.denied.packets).toBe(0);
    const probes = Array.from({ length: PROBES }, (_, i) => count(`probe-${i}`)).reduce((a, b) => a + b, 0);
    expect(probes).toBeGreaterThanOrEqual(runs); // test runs + live datagrams, all judged by a probe rule
    expect(runs).toBeGreaterThan(1000);
    expect(sent).toBeGreaterThan(1000);
    // events: only A logs, so only odd generations; each names the probe of its own destination
    expect(events.length).toBeGreaterThan(100);
    const bad = events.filter((e) => e.generation % 2 !== 1 || e.ruleId !== `probe-${e.dst.split('.')[3]}` || e.action !== 'log');
    expect(bad.slice(0, 5)).toEqual([]);
    console.log(
      `acl swap: ${FLIPS} flips, ${flipMs.toFixed(2)} ms per flip, ${runs} test runs, ${sent} live datagrams, ${events.length} events (${st.events.lost} lost)`,
    );
  }, 300_000);
});
