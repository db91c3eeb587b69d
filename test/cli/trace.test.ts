/**
 * `bpfkit trace` as a child process against two lab hosts: a datagram dropped by an
 * iptables rule shows up in --json output as a drop with the netfilter reason; a filter on
 * another port prints nothing for it (and does print the packet it asks for, which ends
 * the run through --count), and so does a pcap-filter expression given after the options;
 * SIGINT exits 0 with no tracer program left (bpftool as
 * witness); --seconds ends a run; bad options exit 2 naming the option.
 */
import { statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { bpftoolProgExists, progsStillLoaded } from '../helpers/bpftool.js';
import { cli, CliProcess } from './cli-helpers.js';

const C = '198.18.14.1';
const S = '198.18.14.2';
const DROPPED = 5555;
const OPEN = 6000;
const IPT = ['INPUT', '-p', 'udp', '--dport', String(DROPPED), '-j', 'DROP'];

let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let running: CliProcess | undefined;

beforeAll(async () => {
  lab = await Lab.create({ name: 'cli-trace' });
  client = await lab.host('client');
  server = await lab.host('server');
  link = await lab.link(client, server, { aAddrs: [`${C}/24`, '2001:db8:14::1/64'], bAddrs: [`${S}/24`, '2001:db8:14::2/64'] });
  expect((await client.ping(S, { count: 1 })).received).toBe(1); // neighbours resolved
  await server.exec(['iptables', '-A', ...IPT]);
}, 60_000);
afterEach(async () => {
  await running?.stop('SIGKILL');
  running = undefined;
});
afterAll(async () => {
  await server?.exec(['iptables', '-D', ...IPT]).catch(() => undefined);
  await lab?.close();
});

function trace(args: string[]): CliProcess {
  running = new CliProcess(['trace', ...args]);
  return running;
}

describe('bpfkit trace', () => {
  it('--json: a datagram dropped by iptables is a drop with the netfilter reason, in the server namespace', async () => {
    const t = trace(['--host', S, '--proto', 'udp', '--port', String(DROPPED), '--json']);
    await t.waitFor(/"type":"started"/);
    await client.sendUdp(S, DROPPED, { count: 3 });
    await t.waitFor(/"type":"packet".*"verdict":"dropped"/);
    expect(await t.stop('SIGINT')).toEqual({ code: 0, signal: null });

    const packets = t.records(['packet']);
    const dropped = packets.filter((p) => p.verdict === 'dropped');
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    const p = dropped[0] as { dropReason: string; namespaceNames: string[]; namespaces: number[]; events: Record<string, unknown>[] };
    expect(p.dropReason).toBe('NETFILTER_DROP');
    const last = p.events[p.events.length - 1]!;
    expect(last).toMatchObject({
      point: 'drop',
      netns: statSync(server.netnsPath).ino,
      src: C,
      dst: S,
      proto: 'udp',
      dport: DROPPED,
      dropReason: 'NETFILTER_DROP',
    });
    expect(p.namespaceNames[p.namespaceNames.length - 1]).toBe(server.netns);
    expect(typeof last.dtNs).toBe('number');
    // every line is JSON with a type; every packet is the filtered one
    for (const l of t.out) expect(JSON.parse(l)).toHaveProperty('type');
    for (const x of packets as { events: { dport?: number; sport?: number }[] }[]) {
      expect(x.events.some((e) => e.dport === DROPPED || e.sport === DROPPED)).toBe(true);
    }
    expect(t.records(['stopped'])[0]).toMatchObject({ reason: 'SIGINT' });
  });

  it('a filter on another port prints no line for the dropped datagrams, and --count ends the run', async () => {
    const sink = await server.udpSink(S, OPEN);
    try {
      const t = trace(['--host', S, '--proto', 'udp', '--port', String(OPEN), '--count', '1', '--seconds', '60']);
      await t.waitFor(/^bpfkit trace: tracing host 198\.18\.14\.2, proto udp, port 6000 at /);
      // first the datagrams the filter must not show, then the one it must (its timeline ends idle, or at a consume)
      await client.sendUdp(S, DROPPED, { count: 3 });
      await client.sendUdp(S, OPEN, { count: 1 });
      expect(await sink.waitFor(1, 5000)).toBe(1);
      const exit = await t.exited; // --count 1
      expect(exit).toEqual({ code: 0, signal: null });
      const headers = t.out.filter((l) => l.startsWith('packet '));
      expect(headers).toHaveLength(1);
      expect(headers[0]).toMatch(new RegExp(`^packet 0x[0-9a-f]+ \\w+.* udp ${C.replace(/\./g, '\\.')}:\\d+ -> ${S.replace(/\./g, '\\.')}:${OPEN} `));
      expect(t.out.join('\n')).not.toContain(`:${DROPPED}`);
      expect(t.out.some((l) => /^ +\+\d+\.\d{3}us +\S+ +\S+ +(receive|queue|transmit|consume) /.test(l))).toBe(true);
      expect(t.out[t.out.length - 1]).toMatch(/^bpfkit trace: count: stopped; 1 packets shown/);
    } finally {
      await sink.close();
    }
  });

  it('--netns and --iface keep the events of that interface in that namespace only', async () => {
    const t = trace(['--netns', server.netns, '--iface', link.b.ifname, '--port', String(DROPPED), '--json']);
    await t.waitFor(/"type":"started"/);
    await client.sendUdp(S, DROPPED, { count: 2 });
    await t.waitFor(/"type":"packet".*"dropReason":"NETFILTER_DROP"/);
    expect(await t.stop('SIGINT')).toEqual({ code: 0, signal: null });
    const events = (t.records(['packet']) as { events: { netns: number; ifindex: number }[] }[]).flatMap((p) => p.events);
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(e).toMatchObject({ netns: statSync(server.netnsPath).ino, ifindex: link.b.ifindex });
  });

  it('a pcap-filter expression after the options shows the packets it names, not the others', async () => {
    const sink = await server.udpSink(S, OPEN);
    try {
      const t = trace(['--json', '--count', '1', '--seconds', '60', 'udp', 'and', 'dst', 'port', String(OPEN), 'and', 'dst', 'host', S]);
      const started = JSON.parse(await t.waitFor(/"type":"started"/)) as { filter: { pcap?: string } };
      expect(started.filter).toEqual({ pcap: `udp and dst port ${OPEN} and dst host ${S}` });
      await client.sendUdp(S, DROPPED, { count: 3 });
      await client.sendUdp(S, OPEN, { count: 1 });
      expect(await sink.waitFor(1, 5000)).toBe(1);
      expect(await t.exited).toEqual({ code: 0, signal: null }); // --count 1
      const packets = t.records(['packet']) as { events: { dport?: number; dst?: string }[] }[];
      expect(packets).toHaveLength(1);
      for (const e of packets[0]!.events) expect(e).toMatchObject({ dport: OPEN, dst: S });
      // where the kernel has no kprobes or fentry, the per-function mode says so once
      const { tracingSupport } = await import('../../lib/index.js');
      const perFunction = !tracingSupport().kprobe || !tracingSupport().fentry;
      expect(t.err.filter((l) => /warning: per-function tracing \(kprobes, fentry\) is unavailable/.test(l))).toHaveLength(perFunction ? 1 : 0);
    } finally {
      await sink.close();
    }
  });

  it('SIGINT exits 0 and leaves no tracer program loaded', async () => {
    const t = trace(['--json', '--points', 'receive,drop', '--port', '1']);
    const started = JSON.parse(await t.waitFor(/"type":"started"/)) as { programs: number[]; points: string[] };
    expect(started.points).toEqual(['receive', 'drop']);
    expect(started.programs.length).toBeGreaterThanOrEqual(2);
    for (const id of started.programs) expect(bpftoolProgExists(id), `prog ${id} while tracing`).toBe(true);
    expect(await t.stop('SIGINT')).toEqual({ code: 0, signal: null });
    expect(await progsStillLoaded(started.programs), 'programs after SIGINT').toEqual([]);
    // warnings, if this kernel has any, are said once
    expect(new Set(t.err).size).toBe(t.err.length);
  });
});

describe('bpfkit trace --seconds', () => {
  it('ends the run by itself, exit 0, with a stopped notice', async () => {
    const r = await cli(['trace', '--json', '--points', 'receive', '--port', '1', '--seconds', '1']);
    expect(r.code).toBe(0);
    const types = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; reason?: string });
    expect(types[0]!.type).toBe('started');
    expect(types[types.length - 1]).toMatchObject({ type: 'stopped', reason: 'seconds' });
  });
});

describe('bpfkit trace usage', () => {
  it.each([
    [['--port', '0'], /--port <n>.*expected an integer in 1\.\.65535/],
    [['--proto', 'bogus'], /--proto <proto>.*unknown protocol 'bogus'/],
    [['--host', '198.18.0.0/15'], /--host <addr>.*is an address, not a CIDR/],
    [['--cidr', '198.18.300.0/24'], /--cidr <cidr>.*not start with a valid IPv4 address/],
    [['--host', '198.18.0.1', '--host', '198.18.0.2'], /option '--host\/--cidr': at most one IPv4 host or CIDR/],
    [['--points', 'receive,nowhere'], /--points <list>.*unknown 'nowhere'/],
    [['--mark', '0x1/zz'], /--mark <n\[\/mask\]>.*expected N or N\/MASK/],
    [['--count', '0'], /--count <n>.*1\.\.1000000/],
    [['--seconds', 'soon'], /--seconds <n>.*expected an integer/],
    [['--netns', 'a/b'], /'a\/b' is not a name/],
    [['--bogus'], /unknown option '--bogus'/],
    [['--pcap', 'tcp and dts port 80'], /option '--pcap': libpcap cannot compile 'tcp and dts port 80': .*syntax error/],
    [['udp', 'port', '70000'], /option '--pcap': libpcap cannot compile 'udp port 70000': illegal port number/],
    [['--pcap', 'udp', 'tcp'], /give the pcap-filter expression once/],
  ])('bpfkit trace %j exits 2', async (args, message) => {
    const r = await cli(['trace', ...(args as string[])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).not.toMatch(/started/);
  });

  it('--help names every option', async () => {
    const r = await cli(['trace', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: bpfkit trace');
    for (const o of [
      '--host',
      '--cidr',
      '--port',
      '--proto',
      '--iface',
      '--netns',
      '--mark',
      '--points',
      '--tunnels',
      '--pcap',
      'expression',
      '--json',
      '--count',
      '--seconds',
    ])
      expect(r.stdout).toContain(o);
  });
});
