/**
 * ServiceChainer rule sets: hundreds of random rules of mixed shapes against the
 * reference classifier (a linear scan), per packet (the mark) and per rule (the
 * counters); the shape limit; and bad input refused with the field named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceChainer, type ChainRule, type ChainService } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { frame, metaOf, reference, type Pkt } from '../fixtures/chain/frames.js';
import { rng } from '../helpers/rng.js';

const services: ChainService[] = Array.from({ length: 6 }, (_, i) => ({ name: `s${i}`, mark: 0x100 + i, table: 300 + i, nexthops: [{ via: '198.18.0.1' }] }));
const upstream = { mark: 0x200, table: 399, nexthops: [{ via: '198.18.0.1' }] };
const markOf = (a: string) => (a === 'upstream' ? upstream.mark : services.find((s) => s.name === a)!.mark);

let lab: Lab;
let host: LabHost;
let links: LabLink[];
beforeAll(async () => {
  lab = await Lab.create({ name: 'chain-rules' });
  host = await lab.host('h');
  const peer = await lab.host('p');
  links = [
    await lab.link(peer, host, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] }),
    await lab.link(peer, host, { aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'] }),
  ];
});
afterAll(async () => {
  await lab?.close();
});

const MACS = ['02:00:00:00:00:01', '02:00:00:00:0a:01', '02:00:00:00:0a:02'];
const V4 = (r: () => number) => `198.18.${Math.floor(r() * 8) * 16 + Math.floor(r() * 4)}.${Math.floor(r() * 8)}`;
const V6 = (r: () => number) => `2001:db8:${Math.floor(r() * 6)}:${Math.floor(r() * 4)}::${Math.floor(r() * 3)}`;
const PORTS = [53, 80, 443];

function prefix4(addr: string, len: number): string {
  const n = addr.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const x = (n & m) >>> 0;
  return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}/${len}`;
}
function prefix6(addr: string, len: 32 | 48 | 64): string {
  const g = addr.split('::')[0]!.split(':');
  return `${g.slice(0, len / 16).join(':')}::/${len}`;
}

/**
 * A random rule from one of ~20 templates (shapes). The broad ones (an interface, a
 * MAC: the way back from a service) are rare, so that the specific ones decide most
 * packets and some packets match nothing.
 */
function randomRule(r: () => number, ifnames: string[]): ChainRule {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const action = r() < 0.2 ? 'upstream' : pick(services).name;
  const rule: ChainRule = { action, priority: Math.floor(r() * 1000) };
  const t = Math.floor(r() * 20);
  if (t === 0) rule.iface = ifnames[1]!;
  if (t === 1) rule.srcMac = pick(MACS.slice(1));
  if (t === 2 || t === 3) rule.vlan = 1 + Math.floor(r() * 3);
  if (t >= 4 && t <= 7) rule.src = prefix4(V4(r), pick([20, 24, 30, 32]));
  if (t === 8 || t === 9) rule.dst = prefix4(V4(r), pick([24, 28]));
  if (t === 10 || t === 11) Object.assign(rule, { src: prefix4(V4(r), 24), proto: pick(['tcp', 'udp'] as const), dstPort: pick(PORTS) });
  if (t >= 12 && t <= 14) rule.src = prefix6(V6(r), pick([48, 64] as const));
  if (t === 15 || t === 16) Object.assign(rule, { dst: prefix6(V6(r), 64), proto: 'udp' });
  if (t >= 17)
    Object.assign(rule, {
      proto: pick(['tcp', 'udp'] as const),
      dstPort: pick(PORTS),
      ...(r() < 0.5 ? { iface: pick(ifnames) } : { vlan: 1 + Math.floor(r() * 3) }),
    });
  return rule;
}

function randomPacket(r: () => number, ifindexes: number[]): Pkt {
  const v6 = r() < 0.3;
  const p: Pkt = {
    ifindex: ifindexes[r() < 0.8 ? 0 : 1]!,
    srcMac: MACS[r() < 0.8 ? 0 : 1 + Math.floor(r() * 2)]!,
    src: v6 ? V6(r) : V4(r),
    dst: v6 ? V6(r) : V4(r),
    proto: r() < 0.5 ? 6 : 17,
    dport: PORTS[Math.floor(r() * PORTS.length)]!,
  };
  if (r() < 0.3) p.vlan = 1 + Math.floor(r() * 3);
  if (r() < 0.05) {
    delete p.src; // a non-IP frame
    delete p.dst;
  }
  return p;
}

describe('ServiceChainer vs the reference classifier', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 400 random rules of mixed shapes, 1,500 random packets`, async () => {
      const r = rng(seed);
      const ifnames = links.map((l) => l.b.ifname);
      const byName = new Map(links.map((l) => [l.b.ifname, l.b.ifindex]));
      const rules = Array.from({ length: 400 }, () => randomRule(r, ifnames));
      const chain = await ServiceChainer.load({ services, upstream, rules, netns: host.netns });
      try {
        expect(chain.status.shapes).toBeGreaterThan(10);
        expect(chain.status.shapes).toBeLessThanOrEqual(32);
        const want = new Map<number, number>();
        let unclassified = 0;
        for (let i = 0; i < 1500; i++) {
          const p = randomPacket(
            r,
            links.map((l) => l.b.ifindex),
          );
          const w = reference(rules, p, (x) => byName.get(String(x)) ?? Number(x));
          const ifname = links.find((l) => l.b.ifindex === p.ifindex)!.b.ifname;
          const input = frame(p);
          const out = await chain.testRun(input, { ingress: ifname, netns: host.netns });
          const meta = metaOf(out.packet, input.length);
          if (w === undefined) {
            unclassified++;
            expect(meta, `packet ${i}: ${JSON.stringify(p)}`).toBeNull();
          } else {
            want.set(w, (want.get(w) ?? 0) + 1);
            expect(meta?.mark, `packet ${i}: ${JSON.stringify(p)} -> rule ${w} ${JSON.stringify(rules[w])}`).toBe(markOf(rules[w]!.action));
          }
        }
        const s = chain.stats();
        const got = new Map(s.rules.filter((x) => x.packets > 0n).map((x) => [x.index, Number(x.packets)]));
        expect(got).toEqual(want); // the very rule the reference picks, not just its action
        expect(Number(s.unclassified.packets)).toBe(unclassified);
        expect(want.size).toBeGreaterThanOrEqual(50);
        console.log(`seed ${seed}: ${chain.status.shapes} shapes, ${want.size} distinct winning rules, ${unclassified} unclassified of 1500`);
        expect(unclassified).toBeGreaterThan(0);
      } finally {
        await chain.close();
      }
    });
  }
});

describe('ServiceChainer limits and bad input', () => {
  const base = { services, upstream, rules: [] as ChainRule[] };

  it('more than 32 shapes is refused, naming why', async () => {
    // 33 distinct shapes: src /0../32 (host bits are refused, so use the zero address)
    const shapes = Array.from({ length: 33 }, (_, i) => ({ src: `0.0.0.0/${i}`, action: 's0' }));
    await expect(ServiceChainer.load({ ...base, rules: shapes })).rejects.toMatchObject({
      code: 'ERR_INVALID_RULE',
      field: 'rules',
      message: expect.stringMatching(/33 rule shapes.*at most 32/),
    });
    const ok = await ServiceChainer.load({ ...base, rules: shapes.slice(0, 32) });
    expect(ok.status.shapes).toBe(32);
    await ok.close();
  });

  const bad: [string, Record<string, unknown>, string, string][] = [
    ['unknown service', { rules: [{ action: 'nope' }] }, 'ERR_INVALID_RULE', 'rules[0].action'],
    ['bad MAC', { rules: [{ action: 's0' }, { srcMac: '02:00:00:00:00', action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[1].srcMac'],
    ['group MAC', { rules: [{ srcMac: '01:00:5e:00:00:01', action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].srcMac'],
    ['bad CIDR', { rules: [{ src: '198.18.0.1/24', action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].src'],
    ['mixed families', { rules: [{ src: '198.18.0.0/24', dst: '2001:db8::/32', action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].dst'],
    ['VLAN 0', { rules: [{ vlan: 0, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].vlan'],
    ['VLAN 4095', { rules: [{ vlan: 4095, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].vlan'],
    ['VNI too big', { rules: [{ vni: 1 << 24, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].vni'],
    ['port without proto', { rules: [{ dstPort: 80, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].dstPort'],
    ['port on icmp', { rules: [{ proto: 'icmp', dstPort: 80, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].dstPort'],
    ['port 70000', { rules: [{ proto: 'tcp', dstPort: 70000, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].dstPort'],
    ['unknown interface', { rules: [{ iface: 'nosuch0', action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].iface'],
    ['unknown field', { rules: [{ sport: 1, action: 's0' }] }, 'ERR_INVALID_RULE', 'rules[0].sport'],
    ['duplicate mark', { services: [services[0], { ...services[1], mark: services[0]!.mark }] }, 'ERR_INVALID_ARGUMENT', 'services[1].mark'],
    ['mark of upstream', { services: [{ ...services[0], mark: upstream.mark }] }, 'ERR_INVALID_ARGUMENT', 'services[0].mark'],
    ['duplicate table', { services: [services[0], { ...services[1], table: services[0]!.table }] }, 'ERR_INVALID_ARGUMENT', 'services[1].table'],
    ['main table', { services: [{ ...services[0], table: 254 }] }, 'ERR_INVALID_ARGUMENT', 'services[0].table'],
    ['duplicate name', { services: [services[0], { ...services[1], name: 's0' }] }, 'ERR_INVALID_ARGUMENT', 'services[1].name'],
    ["service named 'upstream'", { services: [{ ...services[0], name: 'upstream' }] }, 'ERR_INVALID_ARGUMENT', 'services[0].name'],
    ['bad next hop', { services: [{ ...services[0], nexthops: [{ via: '198.18.0.300' }] }] }, 'ERR_INVALID_ARGUMENT', 'services[0].nexthops[0].via'],
    ['no next hop', { upstream: { ...upstream, nexthops: [] } }, 'ERR_INVALID_ARGUMENT', 'upstream.nexthops'],
  ];
  for (const [name, change, code, field] of bad) {
    it(`${name} -> ${code} naming ${field}`, async () => {
      await expect(ServiceChainer.load({ ...base, netns: host.netns, ...change } as never)).rejects.toMatchObject({ code, field });
    });
  }

  it('a rejected update changes nothing: same rules, same classification', async () => {
    const chain = await ServiceChainer.load({ ...base, rules: [{ src: '198.18.0.0/24', action: 's1' }] });
    try {
      const f = frame({ src: '198.18.0.9', dst: '198.18.9.9' });
      const before = metaOf((await chain.testRun(f)).packet, f.length);
      await expect(
        chain.update({
          rules: [
            { src: '198.18.0.0/16', action: 's0' },
            { vlan: 5000, action: 's0' },
          ],
        }),
      ).rejects.toMatchObject({ field: 'rules[1].vlan' });
      await expect(chain.update({ services: services.slice(2) })).rejects.toMatchObject({ field: 'rules[0].action' });
      expect(chain.rules).toEqual([{ src: '198.18.0.0/24', action: 's1' }]);
      expect(metaOf((await chain.testRun(f)).packet, f.length)).toEqual(before);
      await chain.update({ rules: [{ src: '198.18.0.0/16', action: 's0' }] });
      expect(metaOf((await chain.testRun(f)).packet, f.length)?.mark).toBe(services[0]!.mark);
      expect(chain.stats().rules).toMatchObject([{ index: 0, action: 's0', packets: 1n }]);
    } finally {
      await chain.close();
    }
  });
});
