/**
 * AclFirewall on odd packets (BPF_PROG_TEST_RUN): fragments, IPv6 extension headers up
 * to and beyond the walk bound, truncated L4 headers, VLAN tags, ICMP type/code, non-IP
 * and malformed frames. Some frames are built by scapy (an independent encoder); the
 * others byte by byte in acl.helpers.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { AclFirewall, type AclEvent, type AclRule, type AclStats } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { frame, v4, v6, testRunHost } from './acl.helpers.js';

let lab: Lab;
let fw: AclFirewall;
const events: AclEvent[] = [];

const RULES: AclRule[] = [
  { id: 'tcp22', action: 'deny', proto: 'tcp', dstPort: 22 },
  { id: 'echo', action: 'deny', proto: 'icmp', icmpType: 8 },
  { id: 'echo6', action: 'log', proto: 'icmpv6', icmpType: 128, icmpCode: 0 },
  { id: 'udp-from-5', action: 'deny', src: '198.18.5.0/24', proto: 'udp' },
  { id: 'v6-any-from-5', action: 'deny', src: 'fd00:5::/32' },
  { id: 'v6-tcp-from-6', action: 'deny', src: 'fd00:6::/32', proto: 'tcp' },
  { id: 'udp53', action: 'deny', proto: 'udp', dstPort: 53 },
];

/** Frames built by scapy, as hex, one per line. */
function scapy(code: string): Buffer[] {
  const out = execFileSync('/usr/bin/python3', ['-c', `from scapy.all import *\nfor f in (${code}):\n    print(bytes(f).hex())`], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((h) => Buffer.from(h, 'hex'));
}

async function verdict(f: Buffer): Promise<string> {
  return (await fw.testRun(f)).action;
}

async function delta(fn: () => Promise<void>): Promise<(pick: (s: AclStats) => number) => number> {
  const a = await fw.stats();
  await fn();
  const b = await fw.stats();
  return (pick) => pick(b) - pick(a);
}

const rule = (s: AclStats, id: string) => s.rules.find((r) => r.id === id)!.packets;
const ip4 = (o: Partial<Parameters<typeof frame>[0]> & { proto: number }) => frame({ src: v4('198.18.0.9'), dst: v4('198.18.0.2'), ...o });
const ip6 = (o: Partial<Parameters<typeof frame>[0]> & { proto: number }) => frame({ src: v6('fd00:1::9'), dst: v6('fd00:1::2'), ...o });

beforeAll(async () => {
  const t = await testRunHost('acl-packets');
  lab = t.lab;
  fw = await AclFirewall.attach(t.ifname, { netns: t.host.netns, maxRules: 64, rules: RULES, eventIntervalMs: 0 });
  fw.on('event', (e) => events.push(e));
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('fragments', () => {
  it('a first IPv4 fragment has ports; later fragments match only rules without port selectors', async () => {
    const d = await delta(async () => {
      expect(await verdict(ip4({ proto: 6, dport: 22, moreFragments: true }))).toBe('drop');
      // a later fragment whose payload happens to look like port 22: not read as ports
      expect(await verdict(ip4({ proto: 6, dport: 22, fragOffset: 100 }))).toBe('pass');
      expect(await verdict(ip4({ src: v4('198.18.5.1'), proto: 17, dport: 9, fragOffset: 100 }))).toBe('drop');
    });
    expect(d((s) => rule(s, 'tcp22'))).toBe(1);
    expect(d((s) => rule(s, 'udp-from-5'))).toBe(1);
    expect(d((s) => s.fragments.packets)).toBe(2);
  });

  it('scapy-fragmented UDP to port 53: first fragment dropped by udp53, the rest pass', async () => {
    const frags = scapy("fragment(Ether()/IP(src='198.18.0.9', dst='198.18.0.2')/UDP(sport=5000, dport=53)/Raw(b'x'*3000), fragsize=1000)");
    expect(frags.length).toBe(4);
    const d = await delta(async () => {
      expect(await Promise.all(frags.map(verdict))).toEqual(['drop', 'pass', 'pass', 'pass']);
    });
    expect(d((s) => rule(s, 'udp53'))).toBe(1);
    expect(d((s) => s.fragments.packets)).toBe(3);
  });

  it('IPv6 fragment header: offset 0 has ports, a later fragment does not', async () => {
    const d = await delta(async () => {
      expect(await verdict(ip6({ proto: 6, dport: 22, ext: [44], moreFragments: true }))).toBe('drop');
      expect(await verdict(ip6({ proto: 6, dport: 22, ext: [44], fragOffset: 10 }))).toBe('pass');
      const [sf] = scapy("[Ether()/IPv6(src='fd00:1::9', dst='fd00:1::2')/IPv6ExtHdrFragment(offset=0, m=1, nh=6)/TCP(dport=22)]");
      expect(await verdict(sf!)).toBe('drop');
    });
    expect(d((s) => s.fragments.packets)).toBe(1);
    expect(d((s) => rule(s, 'tcp22'))).toBe(2);
  });
});

describe('IPv6 extension headers', () => {
  it('are walked (hop-by-hop, routing, destination options) up to the bound of 8', async () => {
    expect(await verdict(ip6({ proto: 6, dport: 22, ext: [0, 60] }))).toBe('drop');
    expect(await verdict(ip6({ proto: 6, dport: 22, ext: [0, 43, 60, 60, 60, 60, 60, 60] }))).toBe('drop');
    const [sf] = scapy("[Ether()/IPv6(src='fd00:1::9', dst='fd00:1::2')/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/TCP(dport=22)]");
    expect(await verdict(sf!)).toBe('drop');
  });

  it('beyond the bound: protocol unknown, matched as no L4, counted as unparsed', async () => {
    const nine = [0, 60, 60, 60, 60, 60, 60, 60, 60];
    const d = await delta(async () => {
      // port 22 is not visible: tcp22 cannot match
      expect(await verdict(ip6({ proto: 6, dport: 22, ext: nine }))).toBe('pass');
      // a rule with a protocol selector does not match an unknown protocol ...
      expect(await verdict(ip6({ src: v6('fd00:6::1'), proto: 6, ext: nine }))).toBe('pass');
      // ... an address-only rule does
      expect(await verdict(ip6({ src: v6('fd00:5::1'), proto: 6, ext: nine }))).toBe('drop');
    });
    expect(d((s) => s.unparsed.packets)).toBe(3);
    expect(d((s) => rule(s, 'v6-any-from-5'))).toBe(1);
    expect(d((s) => rule(s, 'v6-tcp-from-6'))).toBe(0);
  });
});

describe('truncated, non-IP, VLAN, malformed', () => {
  it('an L4 header cut short is matched as no L4 and counted', async () => {
    const d = await delta(async () => {
      expect(await verdict(ip4({ proto: 6, dport: 22, l4Bytes: 2 }))).toBe('pass');
      expect(await verdict(ip4({ src: v4('198.18.5.7'), proto: 17, l4Bytes: 3 }))).toBe('drop'); // no ports needed
    });
    expect(d((s) => s.unparsed.packets)).toBe(2);
  });

  it('ARP passes and is counted as non-IP', async () => {
    const [arp] = scapy("[Ether(dst='ff:ff:ff:ff:ff:ff')/ARP(pdst='198.18.0.2')]");
    const d = await delta(async () => {
      expect(await verdict(arp!)).toBe('pass');
    });
    expect(d((s) => s.nonIp.packets)).toBe(1);
  });

  it('VLAN-tagged frames are classified by their IP header', async () => {
    expect(await verdict(ip4({ proto: 6, dport: 22, vlan: 100 }))).toBe('drop');
    const [qinq] = scapy("[Ether()/Dot1AD(vlan=10)/Dot1Q(vlan=20)/IP(src='198.18.0.9', dst='198.18.0.2')/TCP(dport=22)]");
    expect(await verdict(qinq!)).toBe('drop');
  });

  it('a broken IPv4 header gets the default action and is counted', async () => {
    const bad = ip4({ proto: 6, dport: 22 });
    bad[14] = 0x44; // IHL 4
    const d = await delta(async () => {
      expect(await verdict(bad)).toBe('pass');
      await fw.configure({ defaultAction: 'deny' });
      expect(await verdict(bad)).toBe('drop');
      await fw.configure({ defaultAction: 'allow' });
    });
    expect(d((s) => s.malformed.packets)).toBe(2);
  });
});

describe('ICMP type and code', () => {
  it('icmpType / icmpCode select ICMP and ICMPv6 messages; log rules pass and report', async () => {
    events.length = 0;
    expect(await verdict(ip4({ proto: 1, type: 8 }))).toBe('drop');
    expect(await verdict(ip4({ proto: 1, type: 0 }))).toBe('pass');
    expect(await verdict(ip6({ proto: 58, type: 128, code: 0 }))).toBe('pass');
    expect(await verdict(ip6({ proto: 58, type: 128, code: 1 }))).toBe('pass');
    const [ping6] = scapy("[Ether()/IPv6(src='fd00:1::9', dst='fd00:1::2')/ICMPv6EchoRequest()]");
    expect(await verdict(ping6!)).toBe('pass');
    for (let i = 0; i < 50 && events.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    expect(events.map((e) => [e.ruleId, e.action, e.icmpType, e.icmpCode, e.srcPort])).toEqual([
      ['echo', 'deny', 8, 0, null],
      ['echo6', 'log', 128, 0, null],
      ['echo6', 'log', 128, 0, null],
    ]);
    expect(events[1]).toMatchObject({ family: 6, proto: 58, src: 'fd00:1::9', dst: 'fd00:1::2', fragment: false });
  });
});
