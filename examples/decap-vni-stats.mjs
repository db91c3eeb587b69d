// Decapsulator with per-VNI statistics: host a sends UDP through three kernel VXLAN
// tunnels (VNI 100 and 300 over IPv4, VNI 200 over IPv6); host b has no tunnel device at
// all, only the Decapsulator on its interface, allowing VNIs 100 and 200. The inner packets
// of allowed VNIs reach b's UDP servers; VNI 300 is passed to the stack unchanged (and
// counted). Prints the per-VNI counters.
//
//   node examples/decap-vni-stats.mjs          (as root)
import { Decapsulator } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const PORT = 7777;
const COUNT = 20; // datagrams per tunnel
const TUNNELS = [
  { vni: 100, dev: 'vx100', outer: ['198.18.30.1', '198.18.30.2'], inner: '198.19.1' },
  { vni: 200, dev: 'vx200', outer: ['2001:db8:30::1', '2001:db8:30::2'], inner: '198.19.2' },
  { vni: 300, dev: 'vx300', outer: ['198.18.30.1', '198.18.30.2'], inner: '198.19.3' },
];
const ALLOWED = [100, 200];

const lab = await Lab.create({ name: 'example-decap' });
let decap;
try {
  const a = await lab.host('a');
  const b = await lab.host('b');
  await lab.link(a, b, { aAddrs: ['198.18.30.1/24', '2001:db8:30::1/64'], bAddrs: ['198.18.30.2/24', '2001:db8:30::2/64'] });
  // a: one VXLAN device per tunnel; the inner next hop's MAC is made up (b's
  // Decapsulator rewrites unicast inner destinations to its interface's MAC)
  await a.batch(
    TUNNELS.flatMap((t) => [
      `link add ${t.dev} type vxlan id ${t.vni} local ${t.outer[0]} remote ${t.outer[1]} dstport 4789 dev eth0`,
      `link set ${t.dev} addrgenmode none`, // no IPv6 link-local chatter through the tunnels
      `addr add ${t.inner}.1/24 dev ${t.dev}`,
      `link set ${t.dev} up`,
      `neigh add ${t.inner}.2 lladdr 02:00:00:00:bb:02 dev ${t.dev} nud permanent`,
    ]),
  );
  // b: the inner destinations, and no tunnel device
  await b.batch(TUNNELS.map((t) => `addr add ${t.inner}.2/32 dev lo`));
  await a.ping('198.18.30.2', { count: 1 }); // resolve the outer neighbours
  await a.ping('2001:db8:30::2', { count: 1 });

  decap = await Decapsulator.attach('eth0', { netns: b.netns, protocols: ['vxlan'], vnis: ALLOWED });
  console.log(`b: Decapsulator on eth0 (${decap.link?.mode} XDP), VNI allowlist [${ALLOWED}], no tunnel device`);

  const sinks = await Promise.all(TUNNELS.map((t) => b.udpSink(`${t.inner}.2`, PORT)));
  const sent = await Promise.all(TUNNELS.map((t) => a.sendUdp(`${t.inner}.2`, PORT, { count: COUNT })));
  const received = await Promise.all(sinks.map((s, i) => (ALLOWED.includes(TUNNELS[i].vni) ? s.waitFor(COUNT) : s.waitFor(1, 500))));
  TUNNELS.forEach((t, i) => console.log(`VNI ${t.vni}: a sent ${sent[i].sent}, b's server on ${t.inner}.2 received ${received[i]}`));
  await Promise.all(sinks.map((s) => s.close()));

  const st = decap.stats();
  console.log('per-VNI counters (inner packets and bytes handed to the stack):');
  for (const v of st.vnis) console.log(`  VNI ${v.vni} ${v.protocol}: ${v.packets} packets, ${v.bytes} bytes`);
  console.log(
    `decapsulated ${st.decapsulated.packets} packets (${st.protocols.vxlan.ipv4.packets} with an IPv4 outer header, ${st.protocols.vxlan.ipv6.packets} IPv6)`,
  );
  console.log(`passed unchanged, VNI not allowed: ${st.passed.vniNotAllowed.packets} packets`);

  for (const vni of ALLOWED) {
    const v = st.vnis.find((x) => x.vni === vni);
    if (!v || v.packets < BigInt(COUNT)) throw new Error(`VNI ${vni}: expected at least ${COUNT} decapsulated packets`);
  }
  if (st.vnis.some((x) => x.vni === 300) || st.passed.vniNotAllowed.packets < BigInt(COUNT)) {
    throw new Error('VNI 300 should have been passed unchanged');
  }
  console.log('ok: allowed VNIs decapsulated and counted per VNI; VNI 300 passed unchanged');
} finally {
  decap?.close(); // detaches
  await lab.close();
}
