/**
 * Decapsulator end to end in a namespace lab. Host A encapsulates (kernel vxlan devices
 * for VXLAN over IPv4 and IPv6; crafted scapy frames for Geneve, as this kernel has no
 * geneve module); host B has no tunnel device at all, only the Decapsulator on its veth,
 * and UDP servers bound to the inner addresses. Witnesses: the servers' received
 * payloads, B's /proc/net/snmp (UDP NoPorts: outer packets that reached B's UDP layer
 * because they were not decapsulated), `ip -d link` (no tunnel device on B).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BpfObject, Decapsulator, type DecapStats } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';

const PORT = 7777;
const WORLD_MAC = '02:00:00:00:bb:02'; // inner destination MAC: the remote endpoint's world
const B_MAC = '02:00:00:00:00:02'; // = the fixtures' interface MAC
const fixtures = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as { cases: { name: string; in: string }[] };
const fixture = (name: string) => Buffer.from(fixtures.cases.find((c) => c.name === name)!.in, 'hex');

let lab: Lab;
let a: LabHost;
let b: LabHost;
let aMac: string;
let decap: Decapsulator;

async function udpNoPorts(h: LabHost): Promise<number> {
  const snmp = (await h.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = snmp.map((l) => l.split(/\s+/).slice(1));
  return Number(values![names!.indexOf('NoPorts')]);
}

/** Send `count` datagrams from A through `dst`, check B's server got exactly them. */
async function sendThrough(dst: string, count: number, prefix: string): Promise<{ received: Buffer[]; innerBytes: number }> {
  const sink = await b.udpSink(dst, PORT);
  try {
    const payload = (i: number) => `${prefix} ${i} ${'.'.repeat(i % 37)}`;
    const r = await a.sendUdp(dst, PORT, { count, payload, intervalMs: 0 });
    expect(r.sent).toBe(count);
    await sink.waitFor(count, 5_000);
    // a little longer: nothing more may arrive
    await new Promise((res) => setTimeout(res, 100));
    const innerHdr = 14 + (dst.includes(':') ? 40 : 20) + 8;
    let innerBytes = 0;
    for (let i = 0; i < count; i++) innerBytes += innerHdr + Buffer.byteLength(payload(i));
    const got = sink.payloads();
    expect(got.map((p) => p.toString()).sort()).toEqual(Array.from({ length: count }, (_, i) => payload(i)).sort());
    return { received: got, innerBytes };
  } finally {
    await sink.close();
  }
}

function delta(before: DecapStats, after: DecapStats) {
  const vni = (s: DecapStats, p: string, v: number) => s.vnis.find((x) => x.protocol === p && x.vni === v) ?? { packets: 0n, bytes: 0n };
  return {
    vni: (p: string, v: number) => ({
      packets: vni(after, p, v).packets - vni(before, p, v).packets,
      bytes: vni(after, p, v).bytes - vni(before, p, v).bytes,
    }),
    passed: after.passedTotal.packets - before.passedTotal.packets,
    decap: after.decapsulated.packets - before.decapsulated.packets,
  };
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'decap-e2e' });
  a = await lab.host('a');
  b = await lab.host('b');
  const l = await lab.link(a, b, {
    aAddrs: ['198.18.10.1/24', '2001:db8:10::1/64'],
    bAddrs: ['198.18.10.2/24', '2001:db8:10::2/64'],
    bMac: B_MAC,
  });
  aMac = l.a.mac;
  // A: kernel VXLAN devices towards B (VNI 100 over IPv4, VNI 200 over IPv6). No IPv6 on
  // them (addrgenmode none) and static neighbours, so nothing but our datagrams crosses.
  await a.batch([
    'link add vx4 type vxlan id 100 local 198.18.10.1 remote 198.18.10.2 dstport 4789 dev eth0',
    'link add vx6 type vxlan id 200 local 2001:db8:10::1 remote 2001:db8:10::2 dstport 4789 dev eth0',
    'link set vx4 addrgenmode none',
    'link set vx6 addrgenmode none',
    'addr add 198.19.100.1/24 dev vx4',
    'addr add 198.19.101.1/24 dev vx6',
    'link set vx4 up',
    'link set vx6 up',
    `neigh add 198.19.100.2 lladdr ${WORLD_MAC} dev vx4 nud permanent`,
    `neigh add 198.19.101.2 lladdr ${WORLD_MAC} dev vx6 nud permanent`,
  ]);
  // B: the inner addresses, and no tunnel device at all
  await b.batch(['addr add 198.19.100.2/32 dev lo', 'addr add 198.19.101.2/32 dev lo', 'addr add 198.19.102.2/32 dev lo', 'addr add fd00:102::2/128 dev lo']);
  // resolve the outer neighbours before XDP goes on (ARP/ND are not tunnel traffic anyway)
  expect((await a.ping('198.18.10.2', { count: 1 })).received).toBe(1);
  expect((await a.ping('2001:db8:10::2', { count: 1 })).received).toBe(1);
  decap = await Decapsulator.attach('eth0', { netns: b.netns });
});

afterAll(async () => {
  decap?.close();
  await lab?.close();
});

describe('Decapsulator in a lab: A encapsulates, B decapsulates at XDP with no tunnel device', () => {
  it('is attached natively to B:eth0 and B has no tunnel device', async () => {
    expect(decap.link?.mode).toBe('native');
    expect(decap.settings.interfaceMac).toBe(B_MAC);
    const links = JSON.parse(await b.ip(['-d', '-j', 'link', 'show'])) as { ifname: string; linkinfo?: { info_kind?: string } }[];
    expect(links.filter((l) => l.linkinfo?.info_kind && l.linkinfo.info_kind !== 'veth')).toEqual([]);
    const xdp = JSON.parse(await b.ip(['-j', 'link', 'show', 'dev', 'eth0'])) as { xdp?: { prog?: { id: number } } }[];
    expect(xdp[0]?.xdp?.prog?.id).toBe(decap.program.info.id);
  });

  for (const v of [
    { name: 'VXLAN over IPv4', dst: '198.19.100.2', vni: 100, fam: 'ipv4' as const },
    { name: 'VXLAN over IPv6', dst: '198.19.101.2', vni: 200, fam: 'ipv6' as const },
  ]) {
    it(`${v.name} (kernel vxlan on A): every datagram arrives intact, counted once per VNI`, async () => {
      const noPorts = await udpNoPorts(b);
      const before = decap.stats();
      const { innerBytes } = await sendThrough(v.dst, 300, v.name);
      const after = decap.stats();
      const d = delta(before, after);
      expect(d.vni('vxlan', v.vni)).toEqual({ packets: 300n, bytes: BigInt(innerBytes) });
      expect(after.protocols.vxlan[v.fam].packets - before.protocols.vxlan[v.fam].packets).toBe(300n);
      expect(d.decap).toBe(300n);
      expect(d.passed).toBe(0n);
      expect(await udpNoPorts(b)).toBe(noPorts); // no outer packet reached B's UDP layer
    });
  }

  for (const v of [
    {
      name: 'Geneve over IPv4 with options, inner IPv4',
      outerSrc: '198.18.10.1',
      outerDst: '198.18.10.2',
      innerSrc: '198.19.102.1',
      innerDst: '198.19.102.2',
      vni: 300,
      options: true,
    },
    {
      name: 'Geneve over IPv6 without options, inner IPv6',
      outerSrc: '2001:db8:10::1',
      outerDst: '2001:db8:10::2',
      innerSrc: 'fd00:102::1',
      innerDst: 'fd00:102::2',
      vni: 301,
      options: false,
    },
  ]) {
    it(`${v.name} (crafted with scapy, injected on A:eth0): B's server gets every datagram`, async () => {
      const count = 200;
      const sink = await b.udpSink(v.innerDst, PORT);
      const before = decap.stats();
      try {
        const cfg = { iface: 'eth0', srcMac: aMac, dstMac: B_MAC, ...v, count, dport: PORT, innerDstMac: WORLD_MAC, prefix: `geneve${v.vni}` };
        const r = await a.exec(['/usr/bin/python3', join(__dirname, '../fixtures/decap/send_geneve.py'), JSON.stringify(cfg)], { timeoutMs: 60_000 });
        expect(r.stdout.trim()).toBe(String(count));
        expect(await sink.waitFor(count, 5_000)).toBe(count);
        const want = Array.from({ length: count }, (_, i) => `geneve${v.vni} ${i}${'.'.repeat(i % 37)}`);
        expect(
          sink
            .payloads()
            .map((p) => p.toString())
            .sort(),
        ).toEqual(want.sort());
      } finally {
        await sink.close();
      }
      const after = decap.stats();
      const fam = v.outerSrc.includes(':') ? 'ipv6' : 'ipv4';
      expect(after.protocols.geneve[fam].packets - before.protocols.geneve[fam].packets).toBe(BigInt(count));
      expect(delta(before, after).vni('geneve', v.vni).packets).toBe(BigInt(count));
      expect(delta(before, after).passed).toBe(0n);
    });
  }

  it('without MAC rewriting B drops the inner frames as addressed to another host (why rewriteMac is on by default)', async () => {
    await decap.update({ rewriteMac: false });
    try {
      const sink = await b.udpSink('198.19.100.2', PORT);
      const before = decap.stats();
      await a.sendUdp('198.19.100.2', PORT, { count: 50 });
      expect(await sink.waitFor(1, 1_000)).toBe(0);
      await sink.close();
      expect(delta(before, decap.stats()).vni('vxlan', 100).packets).toBe(50n); // decapsulated, then dropped by the stack
    } finally {
      await decap.update({ rewriteMac: true });
    }
    await sendThrough('198.19.100.2', 20, 'rewrite-back-on');
  });

  it('update(): a VNI off the allowlist passes to the stack (counted), back on it decapsulates again', async () => {
    await decap.update({ vnis: [999] });
    const noPorts = await udpNoPorts(b);
    const before = decap.stats();
    const sink = await b.udpSink('198.19.100.2', PORT);
    await a.sendUdp('198.19.100.2', PORT, { count: 40 });
    expect(await sink.waitFor(1, 1_000)).toBe(0);
    await sink.close();
    const after = decap.stats();
    expect(after.passed.vniNotAllowed.packets - before.passed.vniNotAllowed.packets).toBe(40n);
    expect(await udpNoPorts(b)).toBe(noPorts + 40); // the outer datagrams reached B's UDP: nobody on 4789
    await decap.update({ vnis: [100, 200] });
    await sendThrough('198.19.100.2', 40, 'allowed-again');
    await decap.update({ vnis: null });
    expect(decap.settings.vnis).toBeNull();
  });

  it('strict destination: only packets to a local tunnel address are decapsulated', async () => {
    await decap.update({ localAddresses: ['198.18.10.3', '2001:db8:10::3'] });
    const before = decap.stats();
    const sink = await b.udpSink('198.19.100.2', PORT);
    await a.sendUdp('198.19.100.2', PORT, { count: 30 });
    expect(await sink.waitFor(1, 1_000)).toBe(0);
    await sink.close();
    expect(decap.stats().passed.notLocal.packets - before.passed.notLocal.packets).toBe(30n);
    await decap.update({ localAddresses: ['198.18.10.2', '2001:db8:10::2'] });
    await sendThrough('198.19.100.2', 30, 'strict-v4');
    await sendThrough('198.19.101.2', 30, 'strict-v6');
    await decap.update({ localAddresses: null });
  });

  it('update() is atomic under load: no packet ever sees old addresses with new VNIs or the reverse', async () => {
    // X = { VNI 100, local 198.18.1.2 }, Y = { VNI 200, local 198.18.1.3 }.
    // P (VNI 100 -> .2) is decapsulated under X and notLocal under Y; Q (VNI 200 -> .3) the
    // reverse. A torn config (addresses of one, VNIs of the other) makes P or Q
    // vniNotAllowed, which must never happen. Traffic: live frames from A's side of the
    // veth (a re-stamping XDP_TX generator), while the main thread keeps swapping X and Y.
    const P = fixture('vxlan4-large');
    const Q = fixture('vxlan4-large-vni200-to-x');
    const X = { vnis: [100], localAddresses: ['198.18.1.2'] };
    const Y = { vnis: [200], localAddresses: ['198.18.1.3'] };
    await decap.update(X);
    const gens = await Promise.all([P, Q].map((f) => BpfObject.load(testObject('decap_gen'), { globals: { tmpl: f.subarray(0, 128) } })));
    const before = decap.stats();
    let stop = false;
    let sent = 0;
    try {
      const run = async (o: BpfObject, frame: Buffer) => {
        const g = o.xdpProgram('xdp_stamp_tx');
        for (let i = 0; i < 1000 && !stop; i++) {
          await g.generate(frame, { iface: 'eth0', netns: a.netns, count: 1000 });
          sent += 1000;
        }
        g.close();
      };
      const traffic = Promise.all([run(gens[0]!, P), run(gens[1]!, Q)]);
      let updates = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 3000) {
        await decap.update(updates % 2 ? X : Y);
        updates++;
      }
      stop = true;
      await traffic;
      await new Promise((r) => setTimeout(r, 200)); // let B's NAPI drain the veth ring
      const after = decap.stats();
      const moved = (r: keyof DecapStats['passed']) => after.passed[r].packets - before.passed[r].packets;
      const dec = after.decapsulated.packets - before.decapsulated.packets;
      console.log(
        `atomicity: ${updates} updates, ${sent} frames sent, ${dec} decapsulated, ${moved('notLocal')} notLocal, ${moved('vniNotAllowed')} vniNotAllowed`,
      );
      expect(updates).toBeGreaterThan(10);
      expect(moved('vniNotAllowed')).toBe(0n);
      expect(after.passedTotal.packets - before.passedTotal.packets).toBe(moved('notLocal'));
      expect(dec).toBeGreaterThan(1000n);
      expect(moved('notLocal')).toBeGreaterThan(1000n);
      // veth may drop frames when B's ring is full, never count one twice
      expect(dec + moved('notLocal')).toBeLessThanOrEqual(BigInt(sent));
      expect(dec + moved('notLocal')).toBeGreaterThan(BigInt(sent) / 2n);
    } finally {
      stop = true;
      for (const g of gens) g.close();
      await decap.update({ vnis: null, localAddresses: null });
    }
  }, 60_000);

  it('rejects bad options before changing anything', async () => {
    const s = decap.settings;
    const bad: [object, string][] = [
      [{ protocols: [] }, 'protocols'],
      [{ protocols: ['gre'] }, 'protocols[0]'],
      [{ ports: { vxlan: [4789, 0] } }, 'ports.vxlan[1]'],
      [{ ports: { vxlan: [1, 2, 3, 4, 5] } }, 'ports.vxlan'],
      [{ ports: { geneve: 4789 } }, 'ports'],
      [{ vnis: [] }, 'vnis'],
      [{ vnis: [1, 1 << 24] }, 'vnis[1]'],
      [{ localAddresses: ['198.18.0.300'] }, 'localAddresses[0]'],
      [{ localAddresses: [] }, 'localAddresses'],
      [{ localAddresses: Array.from({ length: 9 }, (_, i) => `198.18.10.${i + 10}`) }, 'localAddresses'],
      [{ rewriteMac: 'yes' }, 'rewriteMac'],
      [{ interfaceMac: 'ff:ff:ff:ff:ff:ff' }, 'interfaceMac'],
      [{ vni: [1] }, 'vni'],
    ];
    for (const [opts, field] of bad) {
      await expect(decap.update(opts as never), JSON.stringify(opts)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field });
    }
    expect(decap.settings).toEqual(s);
    await expect(Decapsulator.attach('nope0', { netns: b.netns })).rejects.toMatchObject({ code: 'ERR_NO_SUCH_INTERFACE' });
    await expect(Decapsulator.load({ vnis: [1] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'interfaceMac' });
    await expect(Decapsulator.load({ rewriteMac: false, limits: { allowedVnis: 2 }, vnis: [1, 2, 3] })).rejects.toMatchObject({ field: 'vnis' });
    // still decapsulating with the old settings
    await sendThrough('198.19.100.2', 10, 'after-bad-updates');
  });

  it('close() detaches from the interface', async () => {
    const d = await Decapsulator.attach('eth0', { netns: a.netns, mode: 'generic' });
    expect(d.link?.mode).toBe('generic');
    const q = () => b.lab.hosts[0]!.ip(['-j', 'link', 'show', 'dev', 'eth0']);
    expect(JSON.parse(await q())[0].xdp).toBeDefined();
    d.close();
    d.close();
    expect(JSON.parse(await q())[0].xdp).toBeUndefined();
    expect(() => d.stats()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
