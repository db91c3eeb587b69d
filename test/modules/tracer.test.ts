/**
 * PacketTracer on the real kernel: three lab namespaces a - r - b (r forwards), real UDP
 * packets, and what the tracer says about them: the netfilter and no-socket drop reasons
 * (named from the kernel's BTF), a forwarded packet's path across namespaces in order, a
 * filter that keeps thousands of other packets out, and nothing left loaded after stop()
 * or SIGKILL (bpftool as witness).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, PacketTracer, TRACE_POINTS, type TraceEvent, type TracePacket } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { nodeChild } from '../helpers/node-child.js';
import { bpftoolProgExists, progsStillLoaded } from '../helpers/bpftool.js';
import { testObject } from '../helpers/objects.js';
import { tracerLab, type TracerLab } from './tracer.lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const A = '198.18.10.1';
const B = '198.18.11.2';

let lab: Lab;
let a: LabHost;
let r: LabHost;
let b: LabHost;
let ar: LabLink;
let rb: LabLink;
let ino: TracerLab['ino'];
beforeAll(async () => {
  ({ lab, a, r, b, ar, rb, ino } = await tracerLab('mod-tracer', 10));
});
afterAll(async () => {
  await lab?.close();
});

/** Collects a tracer's packets until `done` holds for one of them (bounded), then stops it. */
async function collect(
  t: PacketTracer,
  send: () => Promise<unknown>,
  done: (p: TracePacket) => boolean,
  enough: (events: TraceEvent[]) => boolean = () => false,
): Promise<{ packets: TracePacket[]; events: TraceEvent[] }> {
  const packets: TracePacket[] = [];
  const events: TraceEvent[] = [];
  t.on('packet', (p) => packets.push(p));
  t.on('event', (e) => events.push(e));
  try {
    await send();
    for (let i = 0; i < 150 && !packets.some(done) && !enough(events); i++) await sleep(20);
  } finally {
    await t.stop();
  }
  return { packets, events };
}

describe('drop reasons, named from the kernel', () => {
  it('a packet dropped by an iptables rule shows a drop with the netfilter reason, in b', async () => {
    await b.exec(['iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '5555', '-j', 'DROP']);
    try {
      const t = await PacketTracer.start({ filter: { host: B, proto: 'udp', port: 5555 }, idleMs: 200 });
      const { packets } = await collect(
        t,
        () => a.sendUdp(B, 5555, { count: 3 }),
        (p) => p.verdict === 'dropped',
      );
      const dropped = packets.filter((p) => p.verdict === 'dropped');
      expect(dropped.length).toBeGreaterThanOrEqual(1);
      const p = dropped[0]!;
      expect(p.dropReason).toBe('NETFILTER_DROP');
      const drop = p.events[p.events.length - 1]!;
      expect(drop).toMatchObject({ point: 'drop', netns: ino.b, src: A, dst: B, proto: 'udp', dport: 5555, dropReason: 'NETFILTER_DROP' });
      // the same sk_buff was seen leaving a and arriving in b before
      expect(p.namespaces).toEqual([ino.a, ino.r, ino.b]);
    } finally {
      await b.exec(['iptables', '-D', 'INPUT', '-p', 'udp', '--dport', '5555', '-j', 'DROP']);
    }
  });

  it('a packet to a closed UDP port shows the no-socket reason', async () => {
    const t = await PacketTracer.start({ filter: { host: B, port: 5556 }, points: ['receive', 'drop'], idleMs: 200 });
    expect(t.points).toEqual(['receive', 'drop']);
    const { packets } = await collect(
      t,
      () => a.sendUdp(B, 5556, { count: 2 }),
      (p) => p.dropReason === 'NO_SOCKET',
    );
    const p = packets.find((x) => x.dropReason === 'NO_SOCKET');
    expect(p).toBeDefined();
    expect(p!.events.map((e) => e.point)).toEqual(['receive', 'receive', 'drop']); // received in r, then in b, dropped in b
    expect(p!.events.map((e) => e.netns)).toEqual([ino.r, ino.b, ino.b]);
    expect(p!.events[2]).toMatchObject({ ifname: rb.b.ifname, ifindex: rb.b.ifindex });
  });
});

describe('a forwarded packet', () => {
  it('shows receive -> FIB lookup -> transmit in r, between a transmit in a and a receive in b, in order', async () => {
    const sink = await b.udpSink(B, 6000);
    try {
      const t = await PacketTracer.start({ filter: { host: B, proto: 'udp', port: 6000 }, idleMs: 200 });
      expect(t.warnings.some((w) => /per-function tracing/.test(w))).toBe(
        !(await import('../../lib/index.js')).tracingSupport().kprobe || !(await import('../../lib/index.js')).tracingSupport().fentry,
      );
      const { packets } = await collect(
        t,
        () => a.sendUdp(B, 6000, { count: 1, payload: 'forward me' }),
        (p) => p.events.some((e) => e.netns === ino.b),
      );
      expect(await sink.waitFor(1)).toBe(1);
      const p = packets.find((x) => x.events.some((e) => e.netns === ino.b && e.point === 'receive'));
      expect(p).toBeDefined();
      const path = p!.events.map(
        (e) =>
          `${e.netns === ino.a ? 'a' : e.netns === ino.r ? 'r' : e.netns === ino.b ? 'b' : '?'}:${e.point}${e.fib ? `(${e.fib.table},${e.fib.result})` : ''}`,
      );
      const inR = path.filter((s) => s.startsWith('r:'));
      // r: received, looked up in the main table (found), queued and sent on the b side
      expect(inR[0]).toBe('r:receive');
      expect(inR).toContain('r:fib_lookup(254,found)');
      expect(inR.slice(-2)).toEqual(['r:queue', 'r:transmit']);
      expect(inR.indexOf('r:fib_lookup(254,found)')).toBeLessThan(inR.indexOf('r:transmit'));
      // a before r before b
      const order = path.map((s) => s[0]);
      expect(order.indexOf('a')).toBe(0);
      expect(order.lastIndexOf('a')).toBeLessThan(order.indexOf('r'));
      expect(order.lastIndexOf('r')).toBeLessThan(order.indexOf('b'));
      expect(p!.events.find((e) => e.netns === ino.r)).toMatchObject({ point: 'receive', ifindex: ar.b.ifindex, ifname: ar.b.ifname });
      const fib = p!.events.find((e) => e.point === 'fib_lookup' && e.fib?.result === 'found')!;
      expect(fib.fib!.oif).toBe(rb.a.ifindex);
      const tx = p!.events.filter((e) => e.point === 'transmit' && e.netns === ino.r);
      expect(tx[0]).toMatchObject({ ifname: rb.a.ifname, rc: 0, src: A, dst: B });
      expect(p!.events[0]!.dtNs).toBe(0);
      expect(p!.events.every((e, i, all) => i === 0 || e.dtNs >= all[i - 1]!.dtNs)).toBe(true);
    } finally {
      await sink.close();
    }
  });
});

describe('a forwarded IPv6 packet', () => {
  it('shows the IPv6 FIB lookup in r (fib6_table_lookup) between its receive and its transmit', async () => {
    expect((await a.ping('2001:db8:11::2', { count: 1 })).received).toBe(1);
    const t = await PacketTracer.start({ filter: { host: '2001:db8:11::2', port: 6001 }, idleMs: 200 });
    const { packets } = await collect(
      t,
      () => a.sendUdp('2001:db8:11::2', 6001, { count: 1 }),
      (p) => p.dropReason === 'NO_SOCKET',
    );
    const p = packets.find((x) => x.dropReason === 'NO_SOCKET');
    expect(p).toBeDefined();
    const inR = p!.events.filter((e) => e.netns === ino.r);
    const fib = inR.findIndex((e) => e.point === 'fib_lookup' && e.fib?.result === 'found' && e.fib.oif === rb.a.ifindex);
    expect(fib).toBeGreaterThan(0);
    expect(inR[0]!.point).toBe('receive');
    expect(inR.findIndex((e) => e.point === 'transmit')).toBeGreaterThan(fib);
    expect(inR[fib]).toMatchObject({ family: 6, src: '2001:db8:10::1', dst: '2001:db8:11::2', dport: 6001 });
    expect(p!.events[p!.events.length - 1]).toMatchObject({ point: 'drop', netns: ino.b, family: 6 });
  });
});

describe('filters', () => {
  it('thousands of other packets produce zero foreign events; the matching ones all come through', async () => {
    const t = await PacketTracer.start({ filter: { host: B, proto: 'udp', port: 7777 }, idleMs: 200 });
    const events: TraceEvent[] = [];
    t.on('event', (e) => events.push(e));
    try {
      await Promise.all([
        a.sendUdp(B, 7778, { count: 3000 }), // same hosts, other port
        a.sendUdp('198.18.10.2', 7777, { count: 1000 }), // same port, other host
        a.ping(B, { count: 20, intervalMs: 1 }), // same hosts, other protocol
      ]);
      await a.sendUdp(B, 7777, { count: 5 });
      for (let i = 0; i < 100 && events.filter((e) => e.point === 'drop' && e.netns === ino.b).length < 5; i++) await sleep(20);
    } finally {
      await t.stop();
    }
    const foreign = events.filter((e) => {
      if (e.point === 'neigh_update') return e.dst !== B;
      return e.proto !== 'udp' || (e.src !== B && e.dst !== B) || (e.sport !== 7777 && e.dport !== 7777);
    });
    expect(foreign).toEqual([]);
    expect(events.filter((e) => e.point === 'drop' && e.netns === ino.b && e.dropReason === 'NO_SOCKET').length).toBe(5);
    const s = t.stats();
    expect(s.seen).toBeGreaterThan(8000); // the foreign packets reached the programs
    expect(s.matched).toBeLessThan(200);
    expect(s.lost).toBe(0);
  });

  it('IPv6: a CIDR filter matches, and the drop is named', async () => {
    const t = await PacketTracer.start({ filter: { host: '2001:db8:10::/64', proto: 'udp', port: 5560 }, points: ['receive', 'drop'], idleMs: 200 });
    const { packets, events } = await collect(
      t,
      () => a.sendUdp('2001:db8:10::2', 5560, { count: 2 }),
      (p) => p.dropReason === 'NO_SOCKET',
    );
    const p = packets.find((x) => x.dropReason === 'NO_SOCKET');
    expect(p?.events.map((e) => [e.point, e.netns])).toEqual([
      ['receive', ino.r],
      ['drop', ino.r],
    ]);
    expect(p!.events[1]).toMatchObject({ family: 6, src: '2001:db8:10::1', dst: '2001:db8:10::2', proto: 'udp', dport: 5560 });
    expect(events.every((e) => e.family === 6 && (e.sport === 5560 || e.dport === 5560))).toBe(true);
  });

  it('interface and namespace filters keep to their interface and namespace', async () => {
    const t = await PacketTracer.start({ filter: { iface: rb.b.ifname, netns: b.netnsPath, proto: 'udp' }, points: ['receive', 'drop'], idleMs: 200 });
    const { events } = await collect(
      t,
      () => a.sendUdp(B, 5557, { count: 3 }),
      () => false,
      (ev) => ev.length >= 6,
    );
    expect(events.length).toBeGreaterThanOrEqual(6);
    expect(events.every((e) => e.netns === ino.b && e.ifindex === rb.b.ifindex)).toBe(true);
  });

  it('bad filters are ERR_INVALID_ARGUMENT naming the field, before anything is loaded', async () => {
    const bad: [unknown, string][] = [
      [{ host: '198.18.0.1/33' }, 'filter.host'],
      [{ host: ['198.18.0.1', '198.18.0.2'] }, 'filter.host'],
      [{ proto: 'udpp' }, 'filter.proto'],
      [{ port: 0 }, 'filter.port'],
      [{ iface: 'no-such-if0' }, 'filter.iface'],
      [{ mark: -1 }, 'filter.mark'],
      [{ netns: 'no-such-netns-here' }, 'filter.netns'],
      [{ colour: 'red' }, 'filter.colour'],
    ];
    for (const [filter, field] of bad) {
      await expect(PacketTracer.start({ filter: filter as never }), JSON.stringify(filter)).rejects.toMatchObject({
        field: expect.stringMatching(new RegExp(`^${field.replace('.', '\\.')}`)),
      });
    }
    await expect(PacketTracer.start({ points: ['teleport' as never] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'points' });
    await expect(PacketTracer.start({ ringBytes: 5000 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'ringBytes' });
  });
});

describe('tunnels', () => {
  it('with tunnels: true, a VXLAN-encapsulated packet is matched by its inner headers before decapsulation too', async () => {
    for (const [h, local, remote, addr] of [
      [a, '198.18.10.1', '198.18.10.2', '198.18.12.1/24'],
      [r, '198.18.10.2', '198.18.10.1', '198.18.12.2/24'],
    ] as const) {
      const dev = h === a ? ar.a.ifname : ar.b.ifname;
      await h.ip(['link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', local, 'remote', remote, 'dstport', '4789', 'dev', dev]);
      await h.ip(['addr', 'add', addr, 'dev', 'vx0']);
      await h.ip(['link', 'set', 'vx0', 'up']);
    }
    try {
      expect((await a.ping('198.18.12.2', { count: 1 })).received).toBe(1);
      const filter = { host: '198.18.12.2', proto: 'udp', port: 5563 } as const;
      const t = await PacketTracer.start({ filter: { ...filter, tunnels: true }, points: ['receive', 'drop'], idleMs: 200 });
      const { packets } = await collect(
        t,
        () => a.sendUdp('198.18.12.2', 5563, { count: 1 }),
        (p) => p.dropReason === 'NO_SOCKET',
      );
      const p = packets.find((x) => x.dropReason === 'NO_SOCKET')!;
      expect(p.events.map((e) => `${e.ifname}:${e.point}`)).toEqual([`${ar.b.ifname}:receive`, 'vx0:receive', 'vx0:drop']);
      expect(p.events[0]).toMatchObject({
        src: '198.18.10.1',
        dst: '198.18.10.2',
        proto: 'udp',
        dport: 4789,
        inner: { tunnel: 'vxlan', src: '198.18.12.1', dst: '198.18.12.2', proto: 'udp', dport: 5563 },
      });
      expect(p.events[2]).toMatchObject({ dst: '198.18.12.2', dport: 5563 });
      // without it, the encapsulated packet on the underlay is not followed
      const plain = await PacketTracer.start({ filter, points: ['receive', 'drop'], idleMs: 200 });
      const got = await collect(
        plain,
        () => a.sendUdp('198.18.12.2', 5563, { count: 1 }),
        (x) => x.dropReason === 'NO_SOCKET',
      );
      expect(got.events.map((e) => `${e.ifname}:${e.point}`)).toEqual(['vx0:receive', 'vx0:drop']);
    } finally {
      await a.ip(['link', 'del', 'vx0']);
      await r.ip(['link', 'del', 'vx0']);
    }
  });
});

describe('tunnels: Geneve', () => {
  it('a crafted Geneve packet (with options) is matched by its inner headers', async () => {
    // this kernel has no geneve module: the packet is crafted with scapy; nobody listens on 6081 in r
    const t = await PacketTracer.start({ filter: { host: '198.18.13.2', port: 5564, tunnels: true }, points: ['receive', 'drop'], idleMs: 200 });
    const cfg = {
      iface: ar.a.ifname,
      srcMac: ar.a.mac,
      dstMac: ar.b.mac,
      outerSrc: A,
      outerDst: '198.18.10.2',
      vni: 7,
      count: 1,
      innerSrc: '198.18.13.1',
      innerDst: '198.18.13.2',
      dport: 5564,
      innerDstMac: '02:00:00:00:aa:02',
      prefix: 'trace',
      options: true,
    };
    const script = join(packageRoot(), 'test/fixtures/decap/send_geneve.py');
    const { events } = await collect(
      t,
      () => a.exec(['/usr/bin/python3', script, JSON.stringify(cfg)]),
      () => false,
      (ev) => ev.some((e) => e.point === 'drop'),
    );
    expect(events.map((e) => [e.point, e.netns])).toEqual([
      ['receive', ino.r],
      ['drop', ino.r],
    ]);
    expect(events[1]).toMatchObject({
      dropReason: 'NO_SOCKET',
      dport: 6081,
      inner: { tunnel: 'geneve', src: '198.18.13.1', dst: '198.18.13.2', proto: 'udp', sport: 40000, dport: 5564 },
    });
  });
});

describe('events without a packet', () => {
  it('neighbour updates: the ARP entry a resolves for its router, with states and the MAC', async () => {
    const t = await PacketTracer.start({ filter: { host: '198.18.10.2', netns: a.netnsPath }, points: ['neigh_update'], idleMs: 200 });
    const { events } = await collect(
      t,
      // flushed once the tracer runs: traffic of an earlier test may resolve the entry again
      // while the tracer loads, and then the ping finds it REACHABLE and changes nothing
      async () => {
        await a.ip(['neigh', 'flush', 'dev', ar.a.ifname]);
        await a.ping('198.18.10.2', { count: 1 });
      },
      () => false,
      (ev) => ev.some((e) => e.neigh?.to === 'REACHABLE'),
    );
    const reachable = events.find((e) => e.neigh?.to === 'REACHABLE');
    expect(reachable).toMatchObject({
      point: 'neigh_update',
      skb: '',
      netns: ino.a,
      ifindex: ar.a.ifindex,
      family: 4,
      dst: '198.18.10.2',
      neigh: { lladdr: ar.b.mac },
    });
    expect(events.every((e) => e.dst === '198.18.10.2')).toBe(true);
  });

  it('XDP exceptions: a program that aborts shows its action on its interface', async () => {
    const obj = await BpfObject.load(testObject('tracer_xdp'));
    try {
      using link = obj.xdpProgram('xdp_abort').attach(rb.b.ifname, { netns: b.netns });
      void link;
      const t = await PacketTracer.start({ filter: { netns: b.netnsPath }, points: ['xdp_exception'], idleMs: 200 });
      const { events } = await collect(
        t,
        () => a.sendUdp(B, 5562, { count: 3 }),
        () => false,
        (ev) => ev.length >= 3,
      );
      expect(events.length).toBeGreaterThanOrEqual(3);
      expect(events[0]).toMatchObject({ point: 'xdp_exception', netns: ino.b, ifindex: rb.b.ifindex, ifname: rb.b.ifname, xdp: { action: 'aborted' } });
    } finally {
      obj.close();
    }
  });
});

describe('losses', () => {
  it('events that do not fit in the ring are counted and reported, not lost silently', async () => {
    const t = await PacketTracer.start({ filter: { host: B, port: 5561 }, ringBytes: 4096, idleMs: 200 });
    const losses: number[] = [];
    t.on('lost', (l) => losses.push(l.count));
    try {
      // the event loop is blocked while a sends: nobody reads the 4 KiB ring (34 records)
      const py = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(300): s.sendto(b'x', ('${B}', 5561))`;
      execFileSync('ip', ['netns', 'exec', a.netns, 'python3', '-c', py]);
      // the loss report (a timer) can come before the ring's records are drained: wait for both
      for (let i = 0; i < 150 && (losses.length === 0 || t.stats().events === 0); i++) await sleep(20);
      const s = t.stats();
      expect(s.lost).toBeGreaterThan(0);
      expect(losses.reduce((x, y) => x + y, 0)).toBe(s.lost);
      // every matched event was delivered, lost, or is still in the ring
      expect(s.events).toBeGreaterThan(0);
      expect(s.events + s.lost!).toBeLessThanOrEqual(s.matched);
    } finally {
      await t.stop();
    }
  });
});

describe('delivery', () => {
  it('with no listener, events are counted without being decoded: the same count as a listener sees; a listener added later gets objects', async () => {
    const filter = { host: B, proto: 'udp' as const, port: 5562 };
    // every point but neigh_update: a neighbour entry for B changes state on its own timers
    // (an earlier test's traffic left it), and such an event between the two starts reached
    // only the tracer started first (441 vs 440 in about one run in four)
    const points = TRACE_POINTS.filter((p) => p !== 'neigh_update');
    const counting = await PacketTracer.start({ filter, points, idleMs: 200 });
    const seeing = await PacketTracer.start({ filter, points, idleMs: 200 });
    const events: TraceEvent[] = [];
    seeing.on('event', (e) => events.push(e));
    const later: TraceEvent[] = [];
    try {
      await a.sendUdp(B, 5562, { count: 40 });
      const drops = () => events.filter((e) => e.point === 'drop' && e.netns === ino.b).length;
      // both tracers get every event, each from its own ring: wait until both have them all
      // (either may be one read ahead of the other at any moment)
      // (the assertion checks the count the loop saw equal, not a second read)
      let counted = -1;
      for (let i = 0; i < 150 && (drops() < 40 || (counted = counting.stats().events) !== events.length); i++) await sleep(20);
      expect(drops()).toBe(40);
      expect(counted).toBe(events.length);
      expect(counting.stats().packets).toBe(0); // no 'packet' listener: no timelines assembled
      counting.on('event', (e) => later.push(e));
      await sleep(20);
      await a.sendUdp(B, 5562, { count: 3 });
      for (let i = 0; i < 150 && later.filter((e) => e.point === 'drop').length < 3; i++) await sleep(20);
      expect(later.filter((e) => e.point === 'drop' && e.netns === ino.b && e.dropReason === 'NO_SOCKET').length).toBe(3);
      const rx = later.filter((e) => e.point === 'receive');
      expect(rx.length).toBeGreaterThanOrEqual(3);
      expect(rx.every((e) => e.dst === B && e.dport === 5562 && /^0x[0-9a-f]{16}$/.test(e.skb))).toBe(true);
    } finally {
      await Promise.all([counting.stop(), seeing.stop()]);
    }
    // (stop() reads what is left in each ring: before it did, an event one tracer had not
    // read yet when the loop above ended was lost there, 441 vs 440 under load)
    expect(counting.stats().events).toBe(seeing.stats().events);
    expect(counting.stats().lost).toBe(0);
  });
});

describe('stop()', () => {
  it('delivers the events the points wrote before it: none is left in the ring', async () => {
    const t = await PacketTracer.start({ filter: { host: B, proto: 'udp', port: 5565 }, idleMs: 200 });
    const drops: TraceEvent[] = [];
    t.on('event', (e) => {
      if (e.point === 'drop' && e.netns === ino.b) drops.push(e);
    });
    // 40 datagrams sent while this thread is blocked, so the tracer's ring is not read
    // before stop() (which reads it, synchronously, in its first step)
    const script = `for i in $(seq 40); do echo x > /dev/udp/${B}/5565; done`;
    execFileSync('ip', ['netns', 'exec', a.netns, 'bash', '-c', script], { timeout: 30_000 });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // the forwarding, still without the event loop
    await t.stop();
    expect(drops.length).toBe(40);
    expect(drops.every((e) => e.dropReason === 'NO_SOCKET' && e.dport === 5565)).toBe(true);
    expect(t.stats()).toMatchObject({ lost: 0 });
    expect(t.stats().events).toBeGreaterThanOrEqual(80); // a receive and a drop each, at least
  });
});

describe('streams', () => {
  it('JSON lines and the async iterator give the same timelines, and end at stop()', async () => {
    const t = await PacketTracer.start({ filter: { host: B, port: 5558 }, points: ['receive', 'drop'], idleMs: 200 });
    const lines: string[] = [];
    const stream = t.toJSONLines();
    stream.on('data', (c: Buffer) => lines.push(...String(c).split('\n').filter(Boolean)));
    const ended = new Promise((res) => stream.on('end', res));
    const iterated: TracePacket[] = [];
    const iterating = (async () => {
      for await (const p of t) iterated.push(p);
    })();
    await a.sendUdp(B, 5558, { count: 2 });
    for (let i = 0; i < 100 && iterated.length < 2; i++) await sleep(20);
    await t.stop();
    await iterating;
    await ended;
    expect(iterated.length).toBeGreaterThanOrEqual(2);
    const parsed = lines.map((l) => JSON.parse(l) as { skb: string; dropReason: string; start: string });
    expect(parsed.map((p) => p.skb)).toEqual(iterated.map((p) => p.skb));
    expect(parsed[0]!.dropReason).toBe('NO_SOCKET');
    expect(typeof parsed[0]!.start).toBe('string');
  });
});

describe('nothing stays loaded', () => {
  it('stop() unloads every program', async () => {
    const t = await PacketTracer.start({ filter: { host: B } });
    const ids = t.programs.map((p) => p.id);
    expect(ids.length).toBeGreaterThanOrEqual(9);
    expect(ids.every(bpftoolProgExists)).toBe(true);
    await t.stop();
    await t.stop(); // twice is fine
    expect(t.programs).toEqual([]);
    expect(await progsStillLoaded(ids)).toEqual([]);
  });

  it('SIGKILL of the tracing process leaves no program loaded', async () => {
    const c = nodeChild(`
      const t = await m.PacketTracer.start({ filter: { host: '${B}' } });
      say(JSON.stringify(t.programs.map((p) => p.id)));
      await wait();
    `);
    try {
      const ids = JSON.parse((await c.next())!) as number[];
      expect(ids.length).toBeGreaterThanOrEqual(9);
      expect(ids.every(bpftoolProgExists)).toBe(true);
      c.p.kill('SIGKILL');
      await c.exited;
      expect(await progsStillLoaded(ids)).toEqual([]);
    } finally {
      c.p.kill('SIGKILL');
    }
  });
});
