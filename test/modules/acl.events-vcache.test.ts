/**
 * The rate limiter's fast path in the verdict cache (bpf/acl/report.h): a suppressed packet
 * of a cached flow is counted in the flow's verdict-cache entry. Those counts must reach
 * the flow's next event exactly, whatever happens to the entry meanwhile:
 *  - six flows that share one 4-way set on one CPU evict each other while their entries
 *    hold counts (the evicted entry hands its count to the shared flow table);
 *  - rule-set flips while entries hold counts: a rule kept across the flip keeps its
 *    flows' counts (old-generation entries are still summed, or handed over when replaced);
 *    a new rule starts new flows.
 * Frames go through testRun on the CPU the test pins itself to (the real program, the
 * real maps).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { endInterval, frame, onCpu0, portsSharingASet, v4, v6, testRunHost, waitForEvents } from './acl.helpers.js';

let lab: Lab;
let fw: AclFirewall;
const events: AclEvent[] = [];
// long enough that no interval ends while a round runs, however loaded the machine;
// endInterval() ends it (as test/modules/acl.ratelimit.test.ts does)
const INTERVAL_MS = 600_000;
const UDP = { id: 'udp', action: 'deny', proto: 'udp' } as const;

beforeAll(async () => {
  const t = await testRunHost('acl-vc');
  lab = t.lab;
  fw = await AclFirewall.attach(t.ifname, {
    netns: t.host.netns,
    maxRules: 16,
    eventIntervalMs: INTERVAL_MS,
    rules: [UDP],
  });
  fw.on('deny', (e) => events.push(e));
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('suppressed counts held in verdict-cache entries', () => {
  afterEach(async () => {
    await fw.configure({ eventIntervalMs: INTERVAL_MS });
    await fw.setRules([UDP]);
  });

  it('six flows sharing a 4-way set evict each other while holding counts; every count reaches the next event', async () => {
    const ports = portsSharingASet('198.18.9.1', '198.18.0.2', 53, 6);
    expect(ports).toHaveLength(6);
    const frames = ports.map((sport) => frame({ src: v4('198.18.9.1'), dst: v4('198.18.0.2'), proto: 17, sport, dport: 53 }));
    await onCpu0(async () => {
      events.length = 0;
      const s0 = await fw.stats();
      // pass 1: five packets of each flow in turn: one walk each (the entry then holds the
      // flow), four suppressed packets counted in it; the fifth and sixth flows evict two
      for (const f of frames) for (let j = 0; j < 5; j++) await fw.testRun(f);
      await waitForEvents(events, 6, 'first events', true);
      expect(events.map((e) => e.suppressed)).toEqual([0, 0, 0, 0, 0, 0]);
      const s1 = await fw.stats();
      expect(s1.classified.walked - s0.classified.walked).toBe(6);
      expect(s1.events.suppressed - s0.events.suppressed).toBe(24);
      // pass 2: one more packet each: six flows in four ways, so at least two walk again,
      // each replacing an entry that holds a count (proof that the flows share the set)
      for (const f of frames) await fw.testRun(f);
      const s2 = await fw.stats();
      expect(s2.classified.walked - s1.classified.walked).toBeGreaterThanOrEqual(2);
      expect(s2.events.emitted - s1.events.emitted).toBe(0);
      // the interval ends: each flow's next event carries its 5 suppressed packets
      await endInterval(fw);
      events.length = 0;
      for (const f of frames) await fw.testRun(f);
      await waitForEvents(events, 6, 'second events', true);
      expect(events.map((e) => `${e.srcPort}:${e.suppressed}`)).toEqual(ports.map((p) => `${p}:5`));
    });
  });

  it('rule-set flips while entries hold counts: a kept rule keeps its flows, a new rule starts new ones', async () => {
    const frames = [
      frame({ src: v4('198.18.9.2'), dst: v4('198.18.0.2'), proto: 17, sport: 5555, dport: 53 }),
      frame({ src: v6('fd00:9::2'), dst: v6('fd00:2::2'), proto: 17, sport: 5556, dport: 53 }),
    ];
    await onCpu0(async () => {
      events.length = 0;
      for (const f of frames) for (let j = 0; j < 5; j++) await fw.testRun(f);
      await waitForEvents(events, 2, 'first events', true);
      expect(events.map((e) => e.suppressed)).toEqual([0, 0]);
      // flip: 'udp' kept (same slot and tag), another rule first; the entries of the old
      // set hold 4 counts each, and three more packets each are suppressed under the new set
      await fw.setRules([{ id: 'tcp', action: 'deny', proto: 'tcp' }, UDP]);
      for (const f of frames) for (let j = 0; j < 3; j++) await fw.testRun(f);
      // a second flip (the interval's end) while both generations' entries hold counts
      await endInterval(fw);
      events.length = 0;
      for (const f of frames) await fw.testRun(f);
      await waitForEvents(events, 2, 'events after the flips', true);
      expect(events.map((e) => `${e.ruleId}:${e.family}:${e.suppressed}`)).toEqual(['udp:4:7', 'udp:6:7']);
      // a new rule for the same flows: new flows of the rate limiter, nothing inherited
      await fw.configure({ eventIntervalMs: INTERVAL_MS });
      await fw.setRules([{ id: 'udp2', action: 'deny', proto: 'udp' }]);
      events.length = 0;
      for (const f of frames) for (let j = 0; j < 4; j++) await fw.testRun(f);
      await waitForEvents(events, 2, 'events of the new rule', true);
      expect(events.map((e) => `${e.ruleId}:${e.family}:${e.suppressed}`)).toEqual(['udp2:4:0', 'udp2:6:0']);
      await endInterval(fw);
      events.length = 0;
      for (const f of frames) await fw.testRun(f);
      await waitForEvents(events, 2, 'second events of the new rule', true);
      expect(events.map((e) => `${e.ruleId}:${e.suppressed}`)).toEqual(['udp2:3', 'udp2:3']);
    });
  });
});
