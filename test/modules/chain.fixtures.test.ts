/**
 * ServiceChainer through BPF_PROG_TEST_RUN on the real kernel: frames built byte by byte
 * (test/fixtures/chain/frames.ts), arriving on different interfaces (testRun `ingress`),
 * from different MACs, VLANs, tunnels (VNI from the Decapsulator's metadata, through a
 * real [decap, chain] pipeline), prefixes, protocols and ports. Each case checks the
 * verdict, the mark in the metadata in front of the output frame, and exactly which
 * counters moved; the expected rule comes from a plain linear scan (the reference).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decapsulator, ServiceChainer, XdpPipeline, type ChainRule, type ChainStats } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { frame, metaOf, reference, type Pkt } from '../fixtures/chain/frames.js';

const MAGIC = 0x424b4d31;
const F_VNI = 1;
const F_MARK = 1 << 4;
const services = [
  { name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.0.1' }] },
  { name: 'ids', mark: 0x11, table: 111, nexthops: [{ via: '198.18.0.1' }, { via: '2001:db8::1' }] },
];
const upstream = { mark: 0x20, table: 120, nexthops: [{ via: '198.18.0.1' }] };
const markOf = (action: string) => (action === 'upstream' ? upstream.mark : services.find((s) => s.name === action)!.mark);

/** Every counter as name -> packets, for exact before/after diffs. */
function flat(s: ChainStats): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const r of s.rules) m.set(`rule/${r.id}`, r.packets);
  for (const v of s.services) m.set(`service/${v.name}`, v.packets);
  for (const k of ['upstream', 'unclassified', 'metadataFailed', 'packets'] as const) m.set(k, s[k].packets);
  return m;
}
function diff(a: ChainStats, b: ChainStats): Record<string, number> {
  const fa = flat(a);
  const out: Record<string, number> = {};
  for (const [k, v] of flat(b)) if (v !== (fa.get(k) ?? 0n)) out[k] = Number(v - (fa.get(k) ?? 0n));
  return out;
}

let lab: Lab;
let host: LabHost;
let l1: LabLink;
let l2: LabLink;
beforeAll(async () => {
  lab = await Lab.create({ name: 'chain-fx' });
  host = await lab.host('h');
  const peer = await lab.host('p');
  l1 = await lab.link(peer, host, { aAddrs: ['198.18.0.1/24', '2001:db8::1/64'], bAddrs: ['198.18.0.2/24', '2001:db8::2/64'] });
  l2 = await lab.link(peer, host, { aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'] });
});
afterAll(async () => {
  await lab?.close();
});

describe('ServiceChainer classification (testRun)', () => {
  let chain: ServiceChainer;
  let rules: ChainRule[];
  const ifindexOf = (i: string | number) => (i === l1.b.ifname ? l1.b.ifindex : i === l2.b.ifname ? l2.b.ifindex : Number(i));

  beforeAll(async () => {
    rules = [
      { id: 'from-fw', iface: l2.b.ifname, action: 'upstream', priority: 10 }, // back from the service
      { id: 'fw-mac', srcMac: '02:00:00:00:0f:01', action: 'upstream', priority: 10 },
      { id: 'vlan7', vlan: 7, action: 'ids', priority: 20 },
      { id: 'web', proto: 'tcp', dstPort: 80, action: 'ids', priority: 30 },
      { id: 'tenant', src: '198.18.4.0/22', action: 'fw', priority: 40 },
      { id: 'host', src: '198.18.4.7/32', action: 'ids', priority: 50 }, // shadowed by 'tenant' (lower priority)
      { id: 'v6', src: '2001:db8:1::/48', dst: '2001:db8:2::/48', action: 'fw', priority: 40 },
      { id: 'v6-dns', dst: '2001:db8::53/128', proto: 'udp', dstPort: 53, action: 'ids', priority: 35 },
      { id: 'dst4', dst: '198.18.64.0/18', action: 'fw' },
    ];
    chain = await ServiceChainer.load({ services, upstream, rules, netns: host.netns });
  });
  afterAll(async () => {
    await chain?.close();
  });

  const cases: { name: string; pkt: Pkt; ingress?: 1 | 2 }[] = [
    { name: 'from the service interface -> upstream', pkt: { src: '198.18.4.1', dst: '198.18.9.9' }, ingress: 2 },
    { name: 'same packet on the outside interface -> its service', pkt: { src: '198.18.4.1', dst: '198.18.9.9' }, ingress: 1 },
    { name: 'service MAC -> upstream', pkt: { srcMac: '02:00:00:00:0f:01', src: '198.18.4.1', dst: '198.18.9.9' }, ingress: 1 },
    { name: 'VLAN 7 -> ids', pkt: { vlan: 7, src: '198.18.100.1', dst: '198.18.9.9' }, ingress: 1 },
    { name: 'VLAN 8 -> nothing', pkt: { vlan: 8, src: '198.18.100.1', dst: '198.18.9.9' }, ingress: 1 },
    { name: 'VLAN 7, non-IP -> ids', pkt: { vlan: 7 }, ingress: 1 },
    { name: 'tcp/80 -> ids (before the prefix rule)', pkt: { src: '198.18.4.1', dst: '198.18.9.9', proto: 6, dport: 80 }, ingress: 1 },
    { name: 'udp/80 -> prefix rule', pkt: { src: '198.18.4.1', dst: '198.18.9.9', proto: 17, dport: 80 }, ingress: 1 },
    { name: 'tcp/80 over IPv6 -> ids', pkt: { src: '2001:db8:9::1', dst: '2001:db8:9::2', proto: 6, dport: 80 } },
    { name: 'the /32 loses to the earlier /22', pkt: { src: '198.18.4.7', dst: '198.18.9.9' } },
    { name: 'outside every prefix -> unclassified', pkt: { src: '198.18.8.1', dst: '198.18.9.9' } },
    { name: 'IPv6 src+dst prefixes -> fw', pkt: { src: '2001:db8:1::5', dst: '2001:db8:2::6' } },
    { name: 'IPv6 src only -> unclassified', pkt: { src: '2001:db8:1::5', dst: '2001:db8:3::6' } },
    { name: 'IPv6 DNS -> ids', pkt: { src: '2001:db8:7::5', dst: '2001:db8::53', proto: 17, dport: 53 } },
    { name: 'IPv6 DNS on tcp -> unclassified', pkt: { src: '2001:db8:7::5', dst: '2001:db8::53', proto: 6, dport: 53 } },
    { name: 'destination prefix -> fw', pkt: { src: '198.18.200.1', dst: '198.18.100.1' } },
    { name: 'IPv4-mapped bits do not match an IPv4 rule', pkt: { src: '::ffff:c612:401', dst: '::1' } },
    { name: 'non-IP frame, no VLAN -> unclassified', pkt: {} },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const ingress = c.ingress === 2 ? l2.b : c.ingress === 1 ? l1.b : undefined;
      const pkt: Pkt = { ...c.pkt, ...(ingress ? { ifindex: ingress.ifindex } : { ifindex: 0 }) };
      const want = reference(rules, pkt, ifindexOf);
      const input = frame(pkt);
      const before = chain.stats();
      const r = await chain.testRun(input, ingress ? { ingress: ingress.ifname, netns: host.netns } : {});
      const after = chain.stats();
      expect(r.action).toBe('pass');
      // the frame itself is never changed
      expect(r.packet.subarray(r.packet.length - input.length).equals(input)).toBe(true);
      const meta = metaOf(r.packet, input.length);
      const moved: Record<string, number> = { packets: 1 };
      if (want === undefined) {
        expect(meta).toBeNull();
        moved.unclassified = 1;
      } else {
        const rule = rules[want]!;
        expect(meta).toEqual({ magic: MAGIC, vni: 0, mark: markOf(rule.action), flags: F_MARK });
        moved[`rule/${rule.id}`] = 1;
        moved[rule.action === 'upstream' ? 'upstream' : `service/${rule.action}`] = 1;
      }
      expect(diff(before, after)).toEqual(moved);
      expect(after.packets.bytes - before.packets.bytes).toBe(BigInt(input.length));
    });
  }

  it('the cases reach every rule but the shadowed one, and the unclassified path', () => {
    const s = chain.stats();
    const hit = s.rules.filter((r) => r.packets > 0n).map((r) => r.id);
    expect(hit.sort()).toEqual(
      rules
        .map((r) => r.id!)
        .filter((id) => id !== 'host')
        .sort(),
    );
    expect(s.unclassified.packets).toBeGreaterThan(0n);
    expect(chain.status).toMatchObject({ attached: 'none', marksSkb: false, routes: 0, rules: rules.length });
  });

  it('the TC copier decides nothing (TCX_NEXT), so later TC programs on the hook still run', async () => {
    const r = await chain.tcProgram.testRun(Buffer.alloc(64));
    expect(r.retval).toBe(-1);
    expect(r.verdict).toBe('unspec');
  });
});

describe('ServiceChainer after a Decapsulator in one pipeline: the VNI from the metadata', () => {
  let pipe: XdpPipeline;
  let decap: Decapsulator;
  let chain: ServiceChainer;
  const rules: ChainRule[] = [
    { vni: 100, action: 'fw' },
    { vni: 200, src: '198.18.4.0/24', action: 'ids' },
    { src: '198.18.4.0/24', action: 'upstream', priority: 2000 },
  ];

  /** A VXLAN packet to the host (outer IPv4/UDP 4789) around `inner`. */
  function vxlan(vni: number, inner: Buffer): Buffer {
    const vx = Buffer.alloc(8);
    vx[0] = 0x08;
    vx.writeUIntBE(vni, 4, 3);
    const payload = Buffer.concat([vx, inner]);
    const outer = frame({ dstMac: '02:00:00:00:00:02', src: '198.18.0.1', dst: '198.18.0.2', proto: 17, sport: 40000, dport: 4789 });
    const eth = outer.subarray(0, 14);
    const ip = Buffer.from(outer.subarray(14, 34));
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(40000, 0);
    udp.writeUInt16BE(4789, 2);
    udp.writeUInt16BE(8 + payload.length, 4);
    ip.writeUInt16BE(20 + 8 + payload.length, 2);
    ip.writeUInt16BE(0, 10);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += ip.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    ip.writeUInt16BE(~s & 0xffff, 10);
    return Buffer.concat([eth, ip, udp, payload]);
  }

  beforeAll(async () => {
    pipe = await XdpPipeline.attach(l1.b.ifname, { netns: host.netns });
    decap = await Decapsulator.attach(pipe, { interfaceMac: '02:00:00:00:00:02', rewriteMac: false });
    chain = await ServiceChainer.attach(pipe, { services, upstream, rules, rulePriority: 3000 });
  });
  afterAll(async () => {
    await chain?.close();
    decap?.close();
    pipe?.close();
  });

  for (const [vni, src, want] of [
    [100, '198.18.9.1', 0],
    [200, '198.18.4.1', 1],
    [200, '198.18.9.1', undefined],
    [300, '198.18.4.1', 2],
  ] as const) {
    it(`VNI ${vni}, inner source ${src} -> ${want === undefined ? 'unclassified' : rules[want]!.action}`, async () => {
      expect(pipe.stages).toEqual(['decap', 'chain']);
      const inner = frame({ src, dst: '198.18.9.9' });
      const before = chain.stats();
      const r = await pipe.testRun(vxlan(vni, inner));
      const after = chain.stats();
      expect(r.action).toBe('pass');
      expect(r.packet.subarray(r.packet.length - inner.length).equals(inner)).toBe(true); // decapsulated, untouched
      const meta = metaOf(r.packet, inner.length);
      const markFlag = want === undefined ? 0 : F_MARK;
      expect(meta).toMatchObject({ magic: MAGIC, vni, flags: expect.any(Number) });
      expect(meta!.flags & (F_VNI | F_MARK)).toBe(F_VNI | markFlag);
      if (want !== undefined) expect(meta!.mark).toBe(markOf(rules[want]!.action));
      const moved = diff(before, after);
      expect(moved[want === undefined ? 'unclassified' : `rule/${want}`]).toBe(1);
    });
  }

  it('without a tunnel, a VNI rule never matches', async () => {
    const r = await pipe.testRun(frame({ src: '198.18.9.1', dst: '198.18.9.9' }));
    expect(metaOf(r.packet, 60)).toBeNull();
  });
});
