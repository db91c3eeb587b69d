/**
 * AclFirewall end to end in a namespace lab: a client and a protected server joined by
 * a veth, the firewall on the server's end (native XDP). Real TCP handshakes and UDP
 * datagrams, IPv4 and IPv6; an iptables rule on the server keeps dropping what the ACL
 * allows (coexistence); deny/log events arrive with the right rule ids and 5-tuples.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';

let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let fw: AclFirewall;
const events: AclEvent[] = [];

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'acl-lab' });
  client = await lab.host('client');
  server = await lab.host('server');
  link = await lab.link(client, server, { aAddrs: ['198.18.0.1/24', 'fd00::1/64'], bAddrs: ['198.18.0.2/24', 'fd00::2/64'] });
  fw = await AclFirewall.attach(link.b.ifname, {
    netns: server.netns,
    rules: [
      { id: 'ssh', action: 'deny', src: ['198.18.0.0/24', 'fd00::/64'], proto: 'tcp', dstPort: 22 },
      { id: 'web', action: 'log', proto: 'tcp', dstPort: 80 },
      { id: 'mdns', action: 'deny', proto: 'udp', dstPort: 5353 },
    ],
  });
  fw.on('event', (e) => events.push(e));
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('AclFirewall in a lab', () => {
  it('deny rules stop TCP connections, other ports connect (IPv4 and IPv6)', async () => {
    const l22 = await server.tcpListen('::', 22);
    const l80 = await server.tcpListen('::', 80);
    const l81 = await server.tcpListen('::', 8081);
    expect(await client.tcpConnect('198.18.0.2', 22, 1500)).toBe(false);
    expect(await client.tcpConnect('fd00::2', 22, 1500)).toBe(false);
    expect(await client.tcpConnect('198.18.0.2', 80)).toBe(true);
    expect(await client.tcpConnect('fd00::2', 80)).toBe(true);
    expect(await client.tcpConnect('198.18.0.2', 8081)).toBe(true);
    expect(l22.accepted()).toBe(0);
    expect(await l80.waitForAccepted(2)).toBe(2);
    expect(await l81.waitForAccepted(1)).toBe(1);
    const st = await fw.stats();
    const ssh = st.rules.find((r) => r.id === 'ssh')!;
    expect(ssh.packets).toBeGreaterThanOrEqual(2); // SYNs (and their retries), all dropped
    // events: one per flow per interval; SYN retries of a flow are suppressed and counted
    const denies = await waitFor('ssh deny events', () => {
      const d = events.filter((e) => e.ruleId === 'ssh');
      return d.length >= 2 ? d : undefined;
    });
    const v4ev = denies.find((e) => e.family === 4)!;
    expect(v4ev).toMatchObject({ action: 'deny', proto: 6, src: '198.18.0.1', dst: '198.18.0.2', dstPort: 22, ifindex: link.b.ifindex });
    expect(v4ev.srcPort).toBeGreaterThan(0);
    expect(Math.abs(v4ev.time.getTime() - Date.now())).toBeLessThan(30_000);
    expect(denies.find((e) => e.family === 6)).toMatchObject({ src: 'fd00::1', dst: 'fd00::2', dstPort: 22 });
    const logged = events.filter((e) => e.ruleId === 'web');
    expect(logged.length).toBeGreaterThanOrEqual(2); // one per connection (flow) at least
    expect(logged.every((e) => e.action === 'log' && e.dstPort === 80)).toBe(true);
    await Promise.all([l22.close(), l80.close(), l81.close()]);
  });

  it('deny rules stop UDP datagrams; allowed ones arrive; a flood gives one event with the suppressed count', async () => {
    const denied = await server.udpSink('198.18.0.2', 5353);
    const allowed = await server.udpSink('198.18.0.2', 9999);
    events.length = 0;
    const before = fw.ruleStats('mdns')!.packets;
    await client.sendUdp('198.18.0.2', 5353, { count: 50, sport: 40001 });
    await client.sendUdp('198.18.0.2', 9999, { count: 50, sport: 40002 });
    expect(await allowed.waitFor(50)).toBe(50);
    expect(await denied.waitFor(1, 500)).toBe(0);
    expect(fw.ruleStats('mdns')!.packets - before).toBe(50);
    const ev = await waitFor('mdns event', () => events.find((e) => e.ruleId === 'mdns'));
    expect(ev).toMatchObject({ action: 'deny', proto: 17, src: '198.18.0.1', srcPort: 40001, dstPort: 5353, suppressed: 0 });
    // the other 49 datagrams of the flow are in the interval: no more events yet
    await new Promise((r) => setTimeout(r, 200));
    expect(events.filter((e) => e.ruleId === 'mdns').length).toBe(1);
    // after the interval, the next packet's event carries the 49 suppressed ones
    await new Promise((r) => setTimeout(r, 1000));
    await client.sendUdp('198.18.0.2', 5353, { count: 1, sport: 40001 });
    const next = await waitFor('second mdns event', () => events.filter((e) => e.ruleId === 'mdns')[1]);
    expect(next.suppressed).toBe(49);
    const st = await fw.stats();
    expect(st.events.lost).toBe(0);
    await Promise.all([denied.close(), allowed.close()]);
  });

  it('coexists with iptables: traffic the ACL allows still meets the host rules', async () => {
    const sink = await server.udpSink('198.18.0.2', 7777);
    await server.exec(['iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '7777', '-j', 'DROP']);
    try {
      const st0 = await fw.stats();
      await client.sendUdp('198.18.0.2', 7777, { count: 30 });
      expect(await sink.waitFor(1, 500)).toBe(0);
      const st1 = await fw.stats();
      // the ACL let them through (default allow) ...
      expect(st1.default.allowed.packets - st0.default.allowed.packets).toBeGreaterThanOrEqual(30);
      // ... and iptables dropped them (its own counter is the witness)
      const out = (await server.exec(['iptables', '-L', 'INPUT', '-v', '-x', '-n'])).stdout;
      const line = out.split('\n').find((l) => l.includes('dpt:7777'))!;
      expect(Number(line.trim().split(/\s+/)[0])).toBe(30);
      // an ACL deny rule now takes the traffic before iptables sees it
      await fw.addRule({ id: 'seven', action: 'deny', proto: 'udp', dstPort: 7777 }, { before: 'ssh' });
      await client.sendUdp('198.18.0.2', 7777, { count: 10 });
      await new Promise((r) => setTimeout(r, 200));
      expect(fw.ruleStats('seven')!.packets).toBe(10);
      const out2 = (await server.exec(['iptables', '-L', 'INPUT', '-v', '-x', '-n'])).stdout;
      expect(
        Number(
          out2
            .split('\n')
            .find((l) => l.includes('dpt:7777'))!
            .trim()
            .split(/\s+/)[0],
        ),
      ).toBe(30);
    } finally {
      await server.exec(['iptables', '-F', 'INPUT']);
      await sink.close();
    }
  });

  it('events come through the async iterator too', async () => {
    const it = fw.events();
    await client.sendUdp('198.18.0.2', 5353, { count: 1, sport: 40111 });
    const first = await Promise.race([it.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no event')), 5000))]);
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ ruleId: 'mdns', srcPort: 40111, dstPort: 5353 });
    await it.return!();
    expect((await it.next()).done).toBe(true);
  });
});

describe('AclFirewall on two interfaces', () => {
  it('one firewall on two veths; the iface selector limits a rule to one of them', async () => {
    const lab2 = await Lab.create({ name: 'acl-lab-2if' });
    try {
      const c1 = await lab2.host('c1');
      const c2 = await lab2.host('c2');
      const srv = await lab2.host('srv');
      const l1 = await lab2.link(c1, srv, { aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'], bName: 'in1' });
      const l2 = await lab2.link(c2, srv, { aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'], bName: 'in2' });
      const fw2 = await AclFirewall.attach(['in1', 'in2'], {
        netns: srv.netns,
        rules: [
          { id: 'udp-in1', action: 'deny', proto: 'udp', dstPort: 5000, iface: 'in1' },
          { id: 'udp-all', action: 'log', proto: 'udp', dstPort: 5000 },
        ],
      });
      try {
        expect([...fw2.ifindexes].sort()).toEqual([l1.b.ifindex, l2.b.ifindex].sort());
        const evs: AclEvent[] = [];
        fw2.on('event', (e) => evs.push(e));
        const sink = await srv.udpSink('0.0.0.0', 5000);
        await c1.sendUdp('198.18.1.2', 5000, { count: 10 });
        await c2.sendUdp('198.18.2.2', 5000, { count: 10 });
        expect(await sink.waitFor(10)).toBe(10);
        await new Promise((r) => setTimeout(r, 300));
        expect(sink.received()).toBe(10); // only c2's arrived
        expect(sink.datagrams().every((d) => d.from.address === '198.18.2.1')).toBe(true);
        expect(fw2.ruleStats('udp-in1')!.packets).toBe(10);
        expect(fw2.ruleStats('udp-all')!.packets).toBe(10);
        await waitFor('events from both interfaces', () => (evs.length >= 2 ? true : undefined));
        expect(evs.find((e) => e.ruleId === 'udp-in1')).toMatchObject({ action: 'deny', ifindex: l1.b.ifindex, src: '198.18.1.1' });
        expect(evs.find((e) => e.ruleId === 'udp-all')).toMatchObject({ action: 'log', ifindex: l2.b.ifindex, src: '198.18.2.1' });
        await sink.close();
      } finally {
        fw2.close();
      }
    } finally {
      await lab2.close();
    }
  });
});

describe('AclFirewall: the end of a session', () => {
  // Datagrams sent while this thread is blocked, so the firewall's ring is not read before
  // detach() / close(), which read it first: each new source port is a flow, one event each.
  const sendBlocked = (to: string, port: number, n: number): void => {
    const script = `for i in $(seq ${n}); do echo x > /dev/udp/${to}/${port}; done`;
    execFileSync('ip', ['netns', 'exec', server.netns, 'bash', '-c', script], { timeout: 30_000 });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  };
  for (const end of ['detach', 'close'] as const) {
    it(`${end}() delivers the events written before it: none is left in the ring`, async () => {
      const fw3 = await AclFirewall.attach(link.a.ifname, {
        netns: client.netns,
        rules: [{ id: 'blocked', action: 'deny', proto: 'udp', dstPort: 5399 }],
      });
      const evs: AclEvent[] = [];
      try {
        fw3.on('event', (e) => evs.push(e));
        await new Promise((r) => setTimeout(r, 20)); // reading started
        sendBlocked('198.18.0.1', 5399, 20);
        expect(evs).toEqual([]);
      } finally {
        if (end === 'detach') fw3.detach();
        else fw3.close();
      }
      expect(evs.length).toBe(20);
      expect(new Set(evs.map((e) => e.srcPort)).size).toBe(20);
      expect(evs.every((e) => e.ruleId === 'blocked' && e.action === 'deny' && e.dstPort === 5399)).toBe(true);
    });
  }
});
