/**
 * PolicyRoute behaviour with real packets: a 3-host lab where host `src` reaches the
 * same destination (198.18.100.1 / fd00:100::1, configured on both next hops) through
 * `nh1` (main table) or `nh2` (table 100). iptables/ip6tables in `src` mark UDP to port
 * 5001 with 0x10; the PolicyRoute's fwmark rule must send exactly those packets to nh2
 * and leave port 5002 on main. Counted at each next hop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPFKIT_ROUTE_PROTOCOL, PolicyRoute } from '../../lib/index.js';
import { Lab, type LabHost, type UdpSink } from '../../lib/lab/index.js';
import { rootRules } from './route.helpers.js';

const N = 40;

let lab: Lab;
let src: LabHost;
let nh1: LabHost;
let nh2: LabHost;
let rootBefore: string;
const sinks: Record<string, UdpSink> = {};

beforeAll(async () => {
  rootBefore = rootRules();
  lab = await Lab.create({ name: 'route-traffic' });
  [src, nh1, nh2] = await Promise.all([lab.host('src'), lab.host('nh1'), lab.host('nh2')]);
  await lab.link(src, nh1, { aName: 'to-nh1', bName: 'eth0', aAddrs: ['198.18.1.1/24', 'fd00:1::1/64'], bAddrs: ['198.18.1.2/24', 'fd00:1::2/64'] });
  await lab.link(src, nh2, { aName: 'to-nh2', bName: 'eth0', aAddrs: ['198.18.2.1/24', 'fd00:2::1/64'], bAddrs: ['198.18.2.2/24', 'fd00:2::2/64'] });
  for (const nh of [nh1, nh2]) {
    await nh.addAddr('lo', '198.18.100.1/32');
    await nh.addAddr('lo', 'fd00:100::1/128');
    // replies are not needed, but keep the next hops able to answer
    await nh.addRoute('198.18.0.0/15 via ' + (nh === nh1 ? '198.18.1.1' : '198.18.2.1'));
    for (const port of [5001, 5002]) sinks[`${nh.name}:${port}`] = await nh.udpSink('::', port);
  }
  // main table: everything via nh1
  await src.addRoute('default via 198.18.1.2');
  await src.addRoute('default via fd00:1::2');
  // the mark: locally generated UDP to port 5001 (mangle OUTPUT re-routes marked packets)
  await src.exec(['iptables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '--dport', '5001', '-j', 'MARK', '--set-mark', '0x10']);
  await src.exec(['ip6tables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '--dport', '5001', '-j', 'MARK', '--set-mark', '0x10']);
});

afterAll(async () => {
  await lab?.close();
  expect(rootRules()).toBe(rootBefore);
});

/** Datagrams each sink got from IPv4 / IPv6 senders so far. */
function counts(): Record<string, { v4: number; v6: number }> {
  const out: Record<string, { v4: number; v6: number }> = {};
  for (const [k, s] of Object.entries(sinks)) {
    const d = s.datagrams();
    const v4 = d.filter((x) => x.from.address.startsWith('::ffff:')).length;
    out[k] = { v4, v6: d.length - v4 };
  }
  return out;
}

/** Send N datagrams to each port over one family and wait for them to land somewhere. */
async function burst(family: 4 | 6): Promise<Record<string, number>> {
  const before = counts();
  const dst = family === 4 ? '198.18.100.1' : 'fd00:100::1';
  for (const port of [5001, 5002]) {
    const r = await src.sendUdp(dst, port, { count: N, intervalMs: 1 });
    expect(r.sent).toBe(N);
  }
  // all 2N must arrive (at one next hop or the other): wait on the total
  const key = family === 4 ? 'v4' : 'v6';
  const total = (): number => Object.values(counts()).reduce((s, c) => s + c[key], 0) - Object.values(before).reduce((s, c) => s + c[key], 0);
  for (let i = 0; i < 50 && total() < 2 * N; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 200)); // stragglers to the wrong sink would show up now
  const after = counts();
  const delta: Record<string, number> = {};
  for (const k of Object.keys(after)) delta[k] = after[k][key] - before[k][key];
  return delta;
}

describe('PolicyRoute steers fwmark-marked traffic (real packets)', () => {
  it('marked UDP goes through table 100 to nh2, unmarked stays on main via nh1; remove restores main', async () => {
    const ns = { netns: src.netns };
    // without the policy everything goes via nh1
    expect(await burst(4)).toEqual({ 'nh1:5001': N, 'nh1:5002': N, 'nh2:5001': 0, 'nh2:5002': 0 });

    const pr = await PolicyRoute.apply(
      {
        priority: 1000,
        fwmark: 0x10,
        table: 100,
        routes: [
          { dst: '0.0.0.0/0', via: '198.18.2.2' },
          { dst: '::/0', via: 'fd00:2::2' },
        ],
      },
      ns,
    );
    expect(pr.changes).toMatchObject({ rulesAdded: 2, routesAdded: 2 });
    expect(await src.ip(['-4', 'rule', 'show'])).toContain(`1000:\tfrom all fwmark 0x10 lookup 100 proto ${BPFKIT_ROUTE_PROTOCOL}`);
    expect(await src.ip(['-6', 'route', 'show', 'table', '100'])).toContain('default via fd00:2::2 dev to-nh2');

    expect(await burst(4)).toEqual({ 'nh1:5001': 0, 'nh1:5002': N, 'nh2:5001': N, 'nh2:5002': 0 });
    expect(await burst(6)).toEqual({ 'nh1:5001': 0, 'nh1:5002': N, 'nh2:5001': N, 'nh2:5002': 0 });

    // applying again changes nothing, traffic keeps flowing the same way
    const again = await PolicyRoute.apply(pr.spec, ns);
    expect(again.changes).toMatchObject({ rulesAdded: 0, rulesUnchanged: 2, routesAdded: 0, routesUnchanged: 2, routesReplaced: 0 });
    expect(await burst(4)).toEqual({ 'nh1:5001': 0, 'nh1:5002': N, 'nh2:5001': N, 'nh2:5002': 0 });

    await pr.remove();
    expect(await burst(4)).toEqual({ 'nh1:5001': N, 'nh1:5002': N, 'nh2:5001': 0, 'nh2:5002': 0 });
    expect(await burst(6)).toEqual({ 'nh1:5001': N, 'nh1:5002': N, 'nh2:5001': 0, 'nh2:5002': 0 });
    expect(await PolicyRoute.list(ns)).toEqual([]);
  });
});
