/**
 * Demo section "decap": host A sends UDP through three kernel VXLAN tunnels (VNI 100 and
 * 300 over IPv4, VNI 200 over IPv6); host B has no tunnel device, only the Decapsulator
 * on its veth, with an allowlist of VNIs 100 and 200. Per-VNI counters print every
 * second; half-way VNI 300 is added to the allowlist (an atomic update) and its traffic,
 * passed to the stack until then, starts being decapsulated.
 */
import { Decapsulator, type DecapStats } from '../modules/decap/index.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

const WORLD_MAC = '02:00:00:00:bb:02'; // the remote side's idea of the inner destination
const RATE = 200; // datagrams per second per tunnel
const PORT = 7777;

const TUNNELS = [
  { vni: 100, dev: 'vx100', outer: ['198.18.30.1', '198.18.30.2'], net: '198.19.1' },
  { vni: 200, dev: 'vx200', outer: ['2001:db8:30::1', '2001:db8:30::2'], net: '198.19.2' },
  { vni: 300, dev: 'vx300', outer: ['198.18.30.1', '198.18.30.2'], net: '198.19.3' },
] as const;

function vniLine(s: DecapStats): string {
  const parts = s.vnis.map((v) => `VNI ${v.vni} ${v.protocol} ${v.packets} pkts/${v.bytes} B`);
  return parts.length ? parts.join(' | ') : 'nothing decapsulated yet';
}

export const decapSection: DemoSection = {
  name: 'decap',
  title: 'decap: VXLAN stripped at XDP on a host with no tunnel device, per-VNI counters live',
  async run({ lab, seconds, print, signal }) {
    const a = await lab.host('a');
    const b = await lab.host('b');
    await lab.link(a, b, { aAddrs: ['198.18.30.1/24', '2001:db8:30::1/64'], bAddrs: ['198.18.30.2/24', '2001:db8:30::2/64'] });
    const cmds: string[] = [];
    for (const t of TUNNELS) {
      cmds.push(
        `link add ${t.dev} type vxlan id ${t.vni} local ${t.outer[0]} remote ${t.outer[1]} dstport 4789 dev eth0`,
        `link set ${t.dev} addrgenmode none`,
        `addr add ${t.net}.1/24 dev ${t.dev}`,
        `link set ${t.dev} up`,
        `neigh add ${t.net}.2 lladdr ${WORLD_MAC} dev ${t.dev} nud permanent`,
      );
    }
    await a.batch(cmds);
    await b.batch(TUNNELS.map((t) => `addr add ${t.net}.2/32 dev lo`));
    await a.ping('198.18.30.2', { count: 1 });
    await a.ping('2001:db8:30::2', { count: 1 });

    using decap = await Decapsulator.attach('eth0', { netns: b.netns, vnis: [100, 200] });
    print(
      `B: no tunnel device; Decapsulator on eth0 (${decap.link?.mode} XDP, prog id ${decap.program.info.id}), VNI allowlist [100, 200], inner MAC rewritten to ${decap.settings.interfaceMac}`,
    );
    print(
      `A: kernel vxlan devices ${TUNNELS.map((t) => `${t.dev} (VNI ${t.vni}, outer ${t.outer[0].includes(':') ? 'IPv6' : 'IPv4'})`).join(', ')}; ${RATE} UDP datagrams/s through each`,
    );
    const sinks = await Promise.all(TUNNELS.map((t) => b.udpSink(`${t.net}.2`, PORT)));
    const count = Math.max(1, seconds) * RATE;
    const senders = TUNNELS.map((t) => a.sendUdp(`${t.net}.2`, PORT, { count, intervalMs: 1000 / RATE }));
    try {
      for (let s = 1; s <= seconds && !signal.aborted; s++) {
        await sleep(1000, signal);
        if (s === Math.ceil(seconds / 2)) {
          await decap.update({ vnis: [100, 200, 300] });
          print(`  update: VNI 300 added to the allowlist (atomic swap of the whole configuration)`);
        }
        const st = decap.stats();
        print(`  t=${s}s  ${vniLine(st)}  | passed, VNI not allowed: ${st.passed.vniNotAllowed.packets}`);
      }
    } finally {
      const sent = await Promise.all(senders);
      await sleep(200);
      const st = decap.stats();
      TUNNELS.forEach((t, i) => {
        print(`VNI ${t.vni}: A sent ${sent[i]!.sent}, B's server on ${t.net}.2 received ${sinks[i]!.received()}`);
      });
      print(
        `decapsulated ${st.decapsulated.packets} packets (${st.protocols.vxlan.ipv4.packets} over IPv4, ${st.protocols.vxlan.ipv6.packets} over IPv6); ` +
          `${st.passedTotal.packets} passed to the stack unchanged (VNI 300 before the update: nothing listens on UDP 4789 there)`,
      );
      await Promise.all(sinks.map((k) => k.close()));
    }
  },
};
