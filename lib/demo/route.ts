/**
 * Demo section "route": policy routing through libnl. Host `src` reaches 198.18.100.1
 * through `nh1` (main table) or `nh2` (table 100); an iptables mangle rule marks UDP to
 * port 5001 with 0x10 and a PolicyRoute (fwmark rule + table) sends exactly the marked
 * traffic to nh2 — the mechanism service chaining builds on.
 */
import { PolicyRoute } from '../route/index.js';
import type { UdpSink } from '../lab/index.js';
import type { DemoSection } from './context.js';

export const routeSection: DemoSection = {
  name: 'route',
  title: 'route: fwmark policy routing (PolicyRoute over libnl) steering marked traffic',
  async run({ lab, print }) {
    const [src, nh1, nh2] = await Promise.all([lab.host('src'), lab.host('nh1'), lab.host('nh2')]);
    await lab.link(src, nh1, { aName: 'to-nh1', bName: 'eth0', aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'] });
    await lab.link(src, nh2, { aName: 'to-nh2', bName: 'eth0', aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'] });
    const sinks: { at: string; sink: UdpSink }[] = [];
    for (const nh of [nh1, nh2]) {
      await nh.addAddr('lo', '198.18.100.1/32');
      for (const port of [5001, 5002]) sinks.push({ at: `${nh.name}:${port}`, sink: await nh.udpSink('198.18.100.1', port) });
    }
    await src.addRoute('default via 198.18.1.2');
    await src.exec(['iptables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '--dport', '5001', '-j', 'MARK', '--set-mark', '0x10']);
    const burst = async (label: string) => {
      const before = sinks.map((s) => s.sink.received());
      for (const port of [5001, 5002]) await src.sendUdp('198.18.100.1', port, { count: 50, intervalMs: 1 });
      await new Promise((r) => setTimeout(r, 300));
      print(`  ${label}: ${sinks.map((s, i) => `${s.at} ${s.sink.received() - before[i]!}`).join('  ')}`);
    };
    print('src marks UDP to port 5001 with 0x10 (iptables mangle); 50 datagrams to each port:');
    await burst('main table only        ');
    const pr = await PolicyRoute.apply({ priority: 1000, fwmark: 0x10, table: 100, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] }, { netns: src.netns });
    print(`applied: ${(await src.ip(['-4', 'rule', 'show', 'pref', '1000'])).trim()} ; table 100: ${(await src.ip(['route', 'show', 'table', '100'])).trim()}`);
    await burst('with the PolicyRoute   ');
    await pr.remove();
    await burst('after remove()         ');
  },
};
