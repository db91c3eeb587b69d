/**
 * ServiceChainer updates under load: live UDP through an attached chainer and
 * BPF_PROG_TEST_RUN lanes on its program while hundreds of atomic rule-set swaps run.
 * The two sets have different shapes (a source /24 vs a destination /32 with a
 * protocol), so a packet that met a mix (one set's shape table with the other set's
 * rule generation) would match nothing: it would be counted unclassified. Every packet
 * must be classified, by one set or the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceChainer, type ChainRule } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { frame, metaOf } from '../fixtures/chain/frames.js';

const services = [
  { name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.0.1' }] },
  { name: 'ids', mark: 0x11, table: 111, nexthops: [{ via: '198.18.0.1' }] },
];
const upstream = { mark: 0x20, table: 120, nexthops: [{ via: '198.18.0.1' }] };
// padding rules of other shapes and prefixes, so each swap rewrites hundreds of entries
const pad = (n: number, third: number): ChainRule[] =>
  Array.from({ length: n }, (_, i) => ({ src: `198.19.${third}.${i % 256}/32`, proto: 'tcp', dstPort: 1 + i, action: 'fw' }));
const setA: ChainRule[] = [{ src: '198.18.0.0/24', action: 'fw' }, ...pad(300, 1)];
const setB: ChainRule[] = [{ dst: '198.18.0.2/32', proto: 'udp', action: 'ids' }, ...pad(300, 2)];

let lab: Lab;
let client: LabHost;
let server: LabHost;
let l: LabLink;
let chain: ServiceChainer;
beforeAll(async () => {
  lab = await Lab.create({ name: 'chain-swap' });
  client = await lab.host('client');
  server = await lab.host('server');
  l = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  // only our datagrams may reach the server's interface: no IPv6, no ARP (static entries)
  await client.sysctl({ [`net.ipv6.conf.${l.a.ifname}.disable_ipv6`]: 1 });
  await server.sysctl({ [`net.ipv6.conf.${l.b.ifname}.disable_ipv6`]: 1 });
  await client.ip(['neigh', 'replace', '198.18.0.2', 'lladdr', l.b.mac, 'dev', l.a.ifname, 'nud', 'permanent']);
  await server.ip(['neigh', 'replace', '198.18.0.1', 'lladdr', l.a.mac, 'dev', l.b.ifname, 'nud', 'permanent']);
  chain = await ServiceChainer.attach(l.b.ifname, { services, upstream, rules: setA, netns: server.netns });
});
afterAll(async () => {
  await chain?.close();
  await lab?.close();
});

describe('ServiceChainer under a live flood', () => {
  it('hundreds of rule-set swaps while UDP flows: every packet classified by one whole set', async () => {
    const f = frame({ src: '198.18.0.1', dst: '198.18.0.2', proto: 17, dport: 9 });
    let flowing = true;
    let liveSent = 0;
    const live = (async () => {
      for (let i = 0; i < 10_000 && flowing; i++) liveSent += (await client.sendUdp('198.18.0.2', 9, { count: 2000 })).sent;
    })();
    const marks = new Set<number | undefined>();
    const lanes = Array.from({ length: 2 }, async () => {
      let runs = 0;
      while (flowing) {
        const r = await chain.testRun(f, { repeat: 200 });
        marks.add(metaOf(r.packet, f.length)?.mark);
        runs += 200;
      }
      return runs;
    });
    let swaps = 0;
    for (let i = 0; i < 10_000 && (i < 200 || liveSent < 8_000); i++, swaps++) {
      if (i % 4 === 0) await new Promise((r) => setTimeout(r, 0));
      await chain.update({ rules: i % 2 ? setA : setB });
    }
    flowing = false;
    await live;
    const runs = (await Promise.all(lanes)).reduce((a, b) => a + b, 0);
    const s = chain.stats();
    const [fw, ids] = s.services;
    expect(s.unclassified.packets).toBe(0n); // no packet met a mix
    expect(s.upstream.packets).toBe(0n);
    expect(fw!.packets + ids!.packets).toBe(s.packets.packets);
    expect(fw!.packets).toBeGreaterThan(0n);
    expect(ids!.packets).toBeGreaterThan(0n);
    expect(s.packets.packets).toBeGreaterThanOrEqual(BigInt(liveSent + runs));
    expect([...marks].every((m) => m === 0x10 || m === 0x11)).toBe(true);
    expect(liveSent).toBeGreaterThan(0);
    console.log(`chain: ${swaps} swaps of ${setA.length} rules, ${liveSent} live datagrams, ${runs} test runs; fw ${fw!.packets}, ids ${ids!.packets}`);
  });
});
