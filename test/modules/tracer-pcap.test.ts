/**
 * PacketTracer's pcap-filter expressions on the real kernel, with tcpdump as the witness:
 * one mix of packets (UDP, TCP, ICMP, IPv4 and IPv6) goes from a to b while tcpdump
 * captures what b's interface receives and one tracer per expression reports its
 * 'receive' events there. For each expression, the packets the tracer matched in the
 * kernel must be exactly those `tcpdump -r capture EXPR` selects from the capture (same
 * headers, same counts), and neither none nor all of them. Then: a packet that never
 * reaches a device (dropped by iptables on output: no link header) matched through the
 * pseudo Ethernet view, verdicts remembered across a packet's points (and reused where it
 * enters a device again only while the bytes the expression reads are the same: a
 * forwarded packet's TTL), and bad expressions refused with libpcap's message before
 * anything loads.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketTracer, type TraceEvent } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { formatIPv4, formatIPv6 } from '../../lib/core/codecs.js';
import { ipProtocolNumber } from '../../lib/core/net/protocols.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const A4 = '198.18.20.1';
const B4 = '198.18.20.2';
const A6 = '2001:db8:20::1';
const B6 = '2001:db8:20::2';

let lab: Lab;
let a: LabHost;
let b: LabHost;
let ab: LabLink;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-pcap-'));
  lab = await Lab.create({ name: 'mod-tracer-pcap' });
  [a, b] = await Promise.all([lab.host('a'), lab.host('b')]);
  ab = await lab.link(a, b, { aAddrs: [`${A4}/24`, `${A6}/64`], bAddrs: [`${B4}/24`, `${B6}/64`] });
  expect((await a.ping(B4, { count: 1 })).received).toBe(1);
});
afterAll(async () => {
  await lab?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A packet as both sides can name it: family, protocol number, addresses, ports; 'other' when not IP. */
function eventKey(e: TraceEvent): string {
  if (e.family === undefined) return 'other';
  const p = typeof e.proto === 'number' ? e.proto : ipProtocolNumber(String(e.proto));
  return `${e.family}|${p}|${e.src}|${e.dst}|${e.sport ?? ''}|${e.dport ?? ''}`;
}

/** The same key from an Ethernet frame's bytes (no VLAN, no IPv6 extension headers here). */
function frameKey(f: Buffer): string {
  const type = f.readUInt16BE(12);
  let family: number, proto: number, src: string, dst: string, l4: number;
  if (type === 0x0800) {
    family = 4;
    proto = f[23]!;
    src = formatIPv4(f, 26);
    dst = formatIPv4(f, 30);
    l4 = 14 + (f[14]! & 0xf) * 4;
  } else if (type === 0x86dd) {
    family = 6;
    proto = f[20]!;
    src = formatIPv6(f, 22);
    dst = formatIPv6(f, 38);
    l4 = 54;
  } else {
    return 'other';
  }
  const ports = proto === 6 || proto === 17 || proto === 132;
  return `${family}|${proto}|${src}|${dst}|${ports ? f.readUInt16BE(l4) : ''}|${ports ? f.readUInt16BE(l4 + 2) : ''}`;
}

/** The frames of a pcap file (classic format, microsecond or nanosecond, either byte order). */
function readPcap(path: string): Buffer[] {
  const b = readFileSync(path);
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${path}: not a pcap file`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const frames: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length && frames.length < 100_000; ) {
    const caplen = u32(off + 8);
    frames.push(b.subarray(off + 16, off + 16 + caplen));
    off += 16 + caplen;
  }
  return frames;
}

const counts = (keys: string[]) => {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return Object.fromEntries([...m].sort(([x], [y]) => (x < y ? -1 : 1)));
};

describe('pcap-filter expressions, against tcpdump on the same packets', () => {
  const EXPRESSIONS = [
    'udp and dst port 53',
    `host ${B4}`,
    `net 198.18.20.0/24 and not udp`,
    'tcp and (port 80 or port 22)',
    'tcp[tcpflags] & tcp-syn != 0 and dst port 80',
    'icmp or icmp6',
    'ip6 and not icmp6',
    `ip6 and dst host ${B6} and udp`,
    'greater 150',
    'not ip and not ip6',
  ];

  it('each expression matches in the kernel exactly what libpcap matches in the capture', async () => {
    const cap = join(dir, 'all.pcap');
    const tracers: PacketTracer[] = [];
    const seen = EXPRESSIONS.map(() => [] as TraceEvent[]);
    // UDP markers to ports 1 and 2 bound the window both sides compare (the link also
    // carries packets of its own, IPv6 MLD and ND, ARP, at any time)
    const marks: TraceEvent[] = [];
    let dump: ReturnType<LabHost['spawn']> | undefined;
    try {
      const mark = await PacketTracer.start({
        filter: { pcap: 'udp and src port 4000 and dst portrange 1-2', iface: ab.b.ifname, netns: b.netnsPath },
        points: ['receive'],
        idleMs: 200,
      });
      mark.on('event', (e) => marks.push(e));
      tracers.push(mark);
      for (const [i, pcap] of EXPRESSIONS.entries()) {
        const t = await PacketTracer.start({ filter: { pcap, iface: ab.b.ifname, netns: b.netnsPath }, points: ['receive'], idleMs: 200 });
        t.on('event', (e) => seen[i]!.push(e));
        tracers.push(t);
      }
      dump = b.spawn(['tcpdump', '--immediate-mode', '-U', '-n', '-Z', 'root', '-Q', 'in', '-i', ab.b.ifname, '-w', cap]);
      await dump.waitForStderr('listening on', 10_000);
      await a.sendUdp(B4, 1, { count: 1, sport: 4000 });
      await a.sendUdp(B4, 53, { count: 3, sport: 4001 });
      await a.sendUdp(B4, 5353, { count: 2, sport: 4002, payload: Buffer.alloc(200, 7) });
      await a.sendUdp(B6, 53, { count: 2, sport: 4003 });
      await a.sendUdp(B6, 9000, { count: 1, sport: 4004 });
      await a.tcpConnect(B4, 80, 1000);
      await a.tcpConnect(B4, 22, 1000);
      await a.tcpConnect(B4, 8080, 1000);
      await a.tcpConnect(B6, 80, 1000);
      await a.ping(B4, { count: 2, intervalMs: 20 });
      await a.ping(B6, { count: 2, intervalMs: 20 });
      await a.exec(['ip', 'neigh', 'flush', 'dev', ab.a.ifname]); // ARP again: frames that are not IP
      await a.ping(B4, { count: 1 });
      await a.sendUdp(B4, 2, { count: 1, sport: 4000 });
      for (let i = 0; i < 100 && marks.length < 2; i++) await sleep(20);
      await sleep(300);
    } finally {
      await dump?.kill('SIGTERM');
      for (const t of tracers) await t.stop();
    }
    expect(marks.map((e) => e.dport)).toEqual([1, 2]);
    const [t0, t1] = [marks[0]!.time, marks[1]!.time];
    const isMark = (k: string) => k.endsWith('|4000|1') || k.endsWith('|4000|2');
    const between = (keys: string[]) => {
      const i0 = keys.findIndex((k) => k.endsWith('|4000|1'));
      const i1 = keys.findIndex((k) => k.endsWith('|4000|2'));
      expect(i0).toBeGreaterThanOrEqual(0);
      expect(i1).toBeGreaterThan(i0);
      return keys.slice(i0 + 1, i1);
    };
    const all = between(readPcap(cap).map(frameKey));
    expect(all.length).toBeGreaterThanOrEqual(15);
    for (const [i, expr] of EXPRESSIONS.entries()) {
      const out = join(dir, `m${i}.pcap`);
      execFileSync('tcpdump', ['-r', cap, '-w', out, `(${expr}) or (udp and src port 4000 and dst portrange 1-2)`], { stdio: 'ignore' });
      const witness = between(readPcap(out).map(frameKey));
      const kernel = seen[i]!.filter((e) => e.point === 'receive' && e.time > t0 && e.time < t1)
        .map(eventKey)
        .filter((k) => !isMark(k));
      expect({ expr, kernel: counts(kernel) }).toEqual({ expr, kernel: counts(witness) });
      expect(witness.length, expr).toBeGreaterThan(0);
      expect(witness.length, expr).toBeLessThan(all.length);
    }
  });
});

describe('the pseudo link header, remembered verdicts, bad expressions', () => {
  it('matches a packet with no link header yet (dropped on output) as IP after a pseudo Ethernet header', async () => {
    await a.exec(['iptables', '-A', 'OUTPUT', '-p', 'udp', '--dport', '5557:5558', '-j', 'DROP']);
    try {
      const t = await PacketTracer.start({ filter: { pcap: `udp and dst port 5557 and dst host ${B4}` }, points: ['drop'], idleMs: 200 });
      const other = await PacketTracer.start({ filter: { pcap: 'udp and dst port 5559' }, points: ['drop'], idleMs: 200 });
      const events: TraceEvent[] = [];
      const foreign: TraceEvent[] = [];
      t.on('event', (e) => events.push(e));
      other.on('event', (e) => foreign.push(e));
      try {
        await a.sendUdp(B4, 5557, { count: 2 }).catch(() => undefined); // EPERM: every send refused
        await a.sendUdp(B4, 5558, { count: 2 }).catch(() => undefined);
        for (let i = 0; i < 100 && events.length < 2; i++) await sleep(20);
      } finally {
        await t.stop();
        await other.stop();
      }
      expect(events.length).toBeGreaterThanOrEqual(2);
      expect(events.every((e) => e.point === 'drop' && e.dport === 5557 && e.dst === B4 && e.dropReason === 'NETFILTER_DROP')).toBe(true);
      expect(foreign.filter((e) => e.dport === 5557 || e.dport === 5558)).toEqual([]);
    } finally {
      await a.exec(['iptables', '-D', 'OUTPUT', '-p', 'udp', '--dport', '5557:5558', '-j', 'DROP']);
    }
  });

  it("remembers a packet's verdict from its receive for its drop", async () => {
    const t = await PacketTracer.start({ filter: { pcap: `udp and dst port 5560 and dst host ${B4}` }, points: ['queue', 'receive', 'drop'], idleMs: 200 });
    const events: TraceEvent[] = [];
    t.on('event', (e) => events.push(e));
    try {
      await a.sendUdp(B4, 5560, { count: 5 }); // nothing listens: queued in a, received and dropped in b
      for (let i = 0; i < 100 && events.filter((e) => e.point === 'drop').length < 5; i++) await sleep(20);
    } finally {
      await t.stop();
    }
    const drops = events.filter((e) => e.point === 'drop');
    expect(drops.length).toBe(5);
    expect(drops.every((e) => e.dropReason === 'NO_SOCKET')).toBe(true);
    // each packet: queue in a (runs), receive in b (the same bytes: the queue's run
    // replays), drop in b (remembered from the receive, though b queued an ICMP error in
    // between: veth hands the packet to b on the sending CPU)
    const s = t.stats();
    expect(s.pcap).toBeDefined();
    expect(s.pcap!.remembered).toBeGreaterThanOrEqual(2 * 5);
    expect(s.pcap!.runs).toBeGreaterThanOrEqual(5);
  });

  it('reuses a verdict where the packet enters a device again only while the bytes the expression reads are the same', async () => {
    // a -> r -> c: r's forwarding lowers the TTL between its receive and its queue
    const fwd = await Lab.create({ name: 'mod-tracer-pcap-fwd' });
    try {
      const [fa, fr, fc] = await Promise.all([fwd.host('a'), fwd.host('r', { forwarding: true }), fwd.host('c')]);
      await fwd.link(fa, fr, { aAddrs: ['198.18.21.1/24'], bAddrs: ['198.18.21.2/24'] });
      await fwd.link(fr, fc, { aAddrs: ['198.18.22.1/24'], bAddrs: ['198.18.22.2/24'] });
      await fa.addRoute('198.18.22.0/24 via 198.18.21.2');
      await fc.addRoute('198.18.21.0/24 via 198.18.22.1');
      expect((await fa.ping('198.18.22.2', { count: 1 })).received).toBe(1); // neighbours resolved
      const ns = Object.fromEntries([fa, fr, fc].map((h) => [statSync(h.netnsPath).ino, h.name]));
      const where = (ev: TraceEvent[]) => [...new Set(ev.filter((e) => e.dport === 5570).map((e) => `${e.point}@${ns[e.netns] ?? '?'}`))].sort();
      const sent = `udp and dst port 5570 and ip[8] = 64`; // a's TTL: a's queue, r's receive
      const forwarded = `udp and dst port 5570 and ip[8] = 63`; // r's queue, c's receive
      const t64 = await PacketTracer.start({ filter: { pcap: sent }, points: ['queue', 'receive'], idleMs: 200 });
      const t63 = await PacketTracer.start({ filter: { pcap: forwarded }, points: ['queue', 'receive'], idleMs: 200 });
      const e64: TraceEvent[] = [];
      const e63: TraceEvent[] = [];
      t64.on('event', (e) => e64.push(e));
      t63.on('event', (e) => e63.push(e));
      let s64, s63;
      try {
        await fa.sendUdp('198.18.22.2', 5570, { count: 3 }); // the default TTL, 64
        for (let i = 0; i < 100 && (e64.length < 6 || e63.length < 6); i++) await sleep(20);
        await sleep(100);
      } finally {
        s64 = t64.stats();
        s63 = t63.stats();
        await t64.stop();
        await t63.stop();
      }
      expect(where(e64)).toEqual(['queue@a', 'receive@r']);
      expect(where(e63)).toEqual(['queue@r', 'receive@c']);
      expect(e64.filter((e) => e.dport === 5570).length).toBe(6);
      expect(e63.filter((e) => e.dport === 5570).length).toBe(6);
      // r's receive replays a's queue, c's receive r's queue: verdicts were reused
      expect(s64.pcap!.remembered).toBeGreaterThanOrEqual(3);
      expect(s63.pcap!.remembered).toBeGreaterThanOrEqual(3);
    } finally {
      await fwd.close();
    }
  });

  it("a bad expression is ERR_INVALID_ARGUMENT naming the expression and libpcap's message", async () => {
    const err = await PacketTracer.start({ filter: { pcap: 'tcp and dts port 80' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'filter.pcap' });
    expect((err as Error).message).toContain("'tcp and dts port 80'");
    expect((err as Error).message).toMatch(/syntax error/);
    await expect(PacketTracer.start({ filter: { pcap: 'port 99999' } })).rejects.toMatchObject({
      field: 'filter.pcap',
      message: expect.stringMatching(/'port 99999'.*illegal port number/),
    });
    await expect(PacketTracer.start({ filter: { pcap: '  ' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'filter.pcap' });
    await expect(PacketTracer.start({ filter: { pcap: 80 as unknown as string } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      field: 'filter.pcap',
    });
  });
});
