/**
 * Demo section "acl": a firewall between two lab hosts. The AclFirewall sits on the
 * server's veth (XDP); the client tries SSH (denied), HTTP (allowed and logged) and a
 * UDP flood to a denied port; deny/log events are printed live as they arrive, one per
 * flow per second with the count of packets suppressed in between. Half-way the rule set
 * is swapped atomically (SSH becomes allowed). Ends with the per-rule counters.
 */
import { AclFirewall } from '../modules/acl/index.js';
import type { AclEvent } from '../modules/acl/index.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

function describe(e: AclEvent): string {
  const port = (p: number | null) => (p === null ? '' : `:${p}`);
  const proto = e.proto === 6 ? 'tcp' : e.proto === 17 ? 'udp' : e.proto === 1 ? 'icmp' : e.proto === 58 ? 'icmpv6' : `proto ${e.proto ?? '?'}`;
  const sup = e.suppressed ? ` (+${e.suppressed} suppressed)` : '';
  return `  ${e.time.toISOString().slice(11, 23)}  ${e.action.padEnd(4)}  ${(e.ruleId ?? '(default)').padEnd(10)} ${proto} ${e.src}${port(e.srcPort)} -> ${e.dst}${port(e.dstPort)}  ${e.length} B${sup}`;
}

export const aclSection: DemoSection = {
  name: 'acl',
  title: 'acl: XDP firewall between two hosts, deny/log events live, atomic rule swap',
  async run({ lab, seconds, print, signal }) {
    const client = await lab.host('client');
    const server = await lab.host('server');
    const link = await lab.link(client, server, { aAddrs: ['198.18.0.1/24', 'fd00::1/64'], bAddrs: ['198.18.0.2/24', 'fd00::2/64'] });
    const rules = [
      { id: 'no-ssh', action: 'deny' as const, src: ['198.18.0.0/24', 'fd00::/64'], proto: 'tcp' as const, dstPort: 22 },
      { id: 'web', action: 'log' as const, proto: 'tcp' as const, dstPort: [80, 443] as [number, number] },
      { id: 'no-mdns', action: 'deny' as const, proto: 'udp' as const, dstPort: 5353 },
    ];
    const fw = await AclFirewall.attach(link.b.ifname, { netns: server.netns, rules, eventIntervalMs: 1000 });
    try {
      print(`AclFirewall on ${server.name}:${link.b.ifname} (${fw.variant}, generation ${fw.generation}), default allow; rules:`);
      for (const r of fw.rules()) print(`  ${JSON.stringify(r)}`);
      fw.on('event', (e) => print(describe(e)));
      const listeners = await Promise.all([server.tcpListen('::', 22), server.tcpListen('::', 80)]);
      const sink = await server.udpSink('198.18.0.2', 5353);
      const half = Math.max(1, Math.ceil(seconds / 2));
      for (let s = 1; s <= seconds && !signal.aborted; s++) {
        const ssh = await client.tcpConnect(s % 2 ? '198.18.0.2' : 'fd00::2', 22, 400);
        const web = await client.tcpConnect('198.18.0.2', 80, 1000);
        await client.sendUdp('198.18.0.2', 5353, { count: 200, sport: 45353 });
        print(`t=${s}s  ssh ${ssh ? 'connected' : 'blocked'}, http ${web ? 'connected' : 'blocked'}, 200 datagrams to udp/5353`);
        if (s === half) {
          await fw.removeRule('no-ssh');
          print(`  rule 'no-ssh' removed: atomic swap to generation ${fw.generation}`);
        }
        await sleep(300, signal);
      }
      await sleep(200, signal);
      const st = await fw.stats();
      print('per-rule counters:');
      for (const r of st.rules) print(`  ${r.id.padEnd(8)} ${r.action.padEnd(5)} ${r.packets} packets, ${r.bytes} bytes`);
      print(`  default allowed ${st.default.allowed.packets} packets; udp/5353 received by the server: ${sink.received()}`);
      print(`  classified: ${st.classified.cached} packets by the verdict cache, ${st.classified.walked} by a tree walk`);
      print(`  events: ${st.events.emitted} emitted, ${st.events.suppressed} suppressed (counted in later events), ${st.events.lost} lost`);
      await Promise.all([...listeners.map((l) => l.close()), sink.close()]);
    } finally {
      fw.close();
    }
  },
};
