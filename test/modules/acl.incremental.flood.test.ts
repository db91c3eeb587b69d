/**
 * One-rule changes (the overlay, lib/modules/acl/delta.ts) while packets flow: live UDP
 * over the lab veth plus BPF_PROG_TEST_RUN lanes, in the style of acl.swap.test.ts. Every
 * probe rule (log, one per destination) is replaced again and again by an equivalent form
 * (updateRule: its compiled or overlay records made unmatchable, new ones in the overlay,
 * same priority, slot and tag), unrelated rules are added and removed, and the overlay
 * fills and is folded by compiles along the way. A packet judged by a torn mix (old
 * records gone, new ones not yet there) would fall to the catch-all deny or the default
 * deny, whose counters must stay 0; every event must name the probe of its own destination.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { frame, rng, v4 } from './acl.helpers.js';

const PROBES = 32;
const CHANGES = 600;
let lab: Lab;
let client: LabHost;
let fw: AclFirewall;

const probe = (i: number, form: number): AclRule =>
  form % 2 === 0
    ? { id: `probe-${i}`, action: 'log', dst: `198.18.1.${i}`, proto: 'udp', dstPort: 9 }
    : { id: `probe-${i}`, action: 'log', src: '198.18.0.0/16', dst: `198.18.1.${i}/32`, proto: 'udp', dstPort: [9, 9] };

function decoys(n: number): AclRule[] {
  const r = rng(5);
  return Array.from({ length: n }, (_, i) => ({
    id: `decoy-${i}`,
    action: 'deny' as const,
    src: `198.18.${4 + (r() % 8)}.${r() % 256}`,
    dst: `198.18.3.${r() % 256}`,
    proto: 'udp' as const,
  }));
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'acl-incr-flood' });
  client = await lab.host('client');
  const server = await lab.host('server');
  const l = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  await client.addRoute('198.18.1.0/24 via 198.18.0.2');
  const rules: AclRule[] = [
    ...decoys(300),
    ...Array.from({ length: PROBES }, (_, i) => probe(i, 0)),
    { id: 'catch-deny', action: 'deny', dst: '198.18.1.0/24' },
    { id: 'rest', action: 'allow' },
  ];
  fw = await AclFirewall.attach(l.b.ifname, { netns: server.netns, maxRules: 512, defaultAction: 'deny', rules, eventIntervalMs: 0 });
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('one-rule changes under load', () => {
  it(`${CHANGES} one-rule changes while packets flow: every packet judged by one whole set`, async () => {
    const events: AclEvent[] = [];
    fw.on('event', (e) => events.push(e));
    const g0 = fw.generation;
    let changing = true;
    let runs = 0;
    const wrong: string[] = [];
    const live = (async () => {
      let sent = 0;
      while (changing) {
        const r = await client.sendUdp(`198.18.1.${sent % PROBES}`, 9, { count: 1000 });
        sent += r.sent;
      }
      return sent;
    })();
    const lanes = Array.from({ length: 3 }, async (_, lane) => {
      const r = rng(200 + lane);
      while (changing) {
        const i = r() % PROBES;
        const res = await fw.testRun(frame({ src: v4('198.18.0.1'), dst: v4(`198.18.1.${i}`), proto: 17, sport: 5000 + lane, dport: 9 }), { repeat: 10 });
        runs += 10;
        if (res.action !== 'pass' && wrong.length < 5) wrong.push(`probe ${i}: ${res.action}`);
      }
    });
    const r = rng(9);
    const form = new Array<number>(PROBES).fill(0);
    let overlaid = 0;
    let folds = 0;
    for (let k = 0; k < CHANGES; k++) {
      let info;
      if (k % 10 === 9) {
        info = await fw.addRule({ id: `extra-${k}`, action: 'deny', dst: `198.18.2.${k % 256}`, proto: 'tcp' });
      } else if (k % 10 === 0 && k > 0) {
        expect(await fw.removeRule(`extra-${k - 1}`)).toBe(true);
        info = fw.compileInfo;
      } else {
        const i = r() % PROBES;
        info = await fw.updateRule(probe(i, ++form[i]!));
      }
      if ((info?.overlay ?? 0) > 0) overlaid++;
      else folds++;
    }
    changing = false;
    const sent = await live;
    await Promise.all(lanes);
    expect(fw.generation).toBe(g0 + CHANGES);
    expect(overlaid).toBeGreaterThan(CHANGES / 2); // most changes went through the overlay
    expect(folds).toBeGreaterThan(3); // and it filled and was folded several times
    expect(wrong).toEqual([]);
    await new Promise((res) => setTimeout(res, 300));
    const st = await fw.stats();
    const count = (id: string) => st.rules.find((x) => x.id === id)?.packets ?? 0;
    expect(count('catch-deny')).toBe(0);
    expect(st.default.denied.packets).toBe(0);
    const probes = Array.from({ length: PROBES }, (_, i) => count(`probe-${i}`)).reduce((a, b) => a + b, 0);
    expect(probes).toBeGreaterThanOrEqual(runs); // test runs + live datagrams: all judged by a probe (counters kept across updates)
    expect(runs).toBeGreaterThan(1000);
    expect(sent).toBeGreaterThan(1000);
    expect(events.length).toBeGreaterThan(100);
    const bad = events.filter((e) => e.ruleId !== `probe-${e.dst.split('.')[3]}` || e.action !== 'log');
    expect(bad.slice(0, 5)).toEqual([]);
    console.log(
      `acl incremental flood: ${CHANGES} changes (${overlaid} through the overlay, ${folds} compiled), ${runs} test runs, ${sent} live datagrams, ${events.length} events (${st.events.lost} lost)`,
    );
  }, 300_000);
});
