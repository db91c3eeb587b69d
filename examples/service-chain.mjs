// ServiceChainer: send a client's traffic through a service (here a plain forwarding host
// standing in for a firewall) and then upstream, chosen by how it arrived, not by its header.
// Router r routes the destination straight to the upstream host u; the chainer on r marks
// what arrives from the client (ingress interface) for the service s and what s hands back
// for upstream, and owns the policy routes (fwmark rules, tables) that act on the marks.
//
//   c ==== r ====> s      s forwards what it gets back to r on its second link,
//          r <==== s      unmodified
//          r ====> u      the destination address lives on u
//
// The witness is s's own kernel: the IPv4/IPv6 datagrams it forwarded (/proc/net/snmp,
// snmp6 in s's namespace), before and while the chainer is attached.
//
//   node examples/service-chain.mjs          (as root)
import { ServiceChainer } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const PORT = 7000;
const COUNT = 30; // datagrams per family and phase
const DST = { v4: '198.18.20.1', v6: '2001:db8:20::1' };

/** Datagrams s's kernel forwarded so far, per family. */
async function forwardedBy(h) {
  const snmp = (await h.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip: '));
  const v4 = Number(snmp[1].split(' ')[snmp[0].split(' ').indexOf('ForwDatagrams')]);
  const v6 = Number(/^Ip6OutForwDatagrams\s+(\d+)$/m.exec((await h.exec(['cat', '/proc/net/snmp6'])).stdout)[1]);
  return { v4, v6 };
}

const lab = await Lab.create({ name: 'example-chain' });
let chain;
try {
  const c = await lab.host('c');
  const r = await lab.host('r', { forwarding: true });
  const s = await lab.host('s', { forwarding: true });
  const u = await lab.host('u');
  const cr = await lab.link(c, r, { aAddrs: ['198.18.10.1/24', '2001:db8:10::1/64'], bAddrs: ['198.18.10.2/24', '2001:db8:10::2/64'] });
  await lab.link(r, s, { aAddrs: ['198.18.11.2/24', '2001:db8:11::2/64'], bAddrs: ['198.18.11.1/24', '2001:db8:11::1/64'] });
  const sr = await lab.link(s, r, { aAddrs: ['198.18.12.1/24', '2001:db8:12::1/64'], bAddrs: ['198.18.12.2/24', '2001:db8:12::2/64'] });
  await lab.link(r, u, { aAddrs: ['198.18.13.2/24', '2001:db8:13::2/64'], bAddrs: ['198.18.13.1/24', '2001:db8:13::1/64'] });
  await u.addAddr('lo', `${DST.v4}/32`);
  await u.addAddr('lo', `${DST.v6}/128`);
  for (const [host, v4, v6] of [
    [c, '198.18.20.0/24 via 198.18.10.2', '2001:db8:20::/64 via 2001:db8:10::2'],
    [r, '198.18.20.0/24 via 198.18.13.1', '2001:db8:20::/64 via 2001:db8:13::1'], // r's main table: straight to u
    [s, '198.18.20.0/24 via 198.18.12.2', '2001:db8:20::/64 via 2001:db8:12::2'], // s: back to r on its second link
    [u, '198.18.10.0/24 via 198.18.13.2', '2001:db8:10::/64 via 2001:db8:13::2'],
  ]) {
    await host.addRoute(v4);
    await host.addRoute(v6);
  }
  const sinks = await Promise.all([u.udpSink(DST.v4, PORT), u.udpSink(DST.v6, PORT)]);
  for (const fam of ['v4', 'v6']) await c.ping(DST[fam], { count: 1, timeoutMs: 3000 }); // neighbours on the path

  /** Sends COUNT datagrams per family; returns what s forwarded and u received of them. */
  const send = async () => {
    const before = await forwardedBy(s);
    const got = sinks.map((x) => x.received());
    for (const fam of ['v4', 'v6']) await c.sendUdp(DST[fam], PORT, { count: COUNT });
    for (let i = 0; i < 100 && sinks.some((x, k) => x.received() < got[k] + COUNT); i++) await new Promise((res) => setTimeout(res, 20));
    const after = await forwardedBy(s);
    return { s: { v4: after.v4 - before.v4, v6: after.v6 - before.v6 }, u: { v4: sinks[0].received() - got[0], v6: sinks[1].received() - got[1] } };
  };
  const show = (when, x) => console.log(`${when}: u received ${x.u.v4} + ${x.u.v6} datagrams (IPv4 + IPv6), s forwarded ${x.s.v4} + ${x.s.v6}`);

  const direct = await send();
  show('without the chainer', direct);

  chain = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], {
    netns: r.netns,
    services: [{ name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.11.1' }, { via: '2001:db8:11::1' }] }],
    upstream: { mark: 0x20, table: 120, nexthops: [{ via: '198.18.13.1' }, { via: '2001:db8:13::1' }] },
    rules: [
      { id: 'back-from-fw', iface: sr.b.ifname, action: 'upstream', priority: 10 },
      { id: 'clients', iface: cr.b.ifname, action: 'fw' },
    ],
  });
  console.log(`r: ServiceChainer on ${cr.b.ifname} and ${sr.b.ifname}, ${chain.status.rules} rules, ${chain.status.routes} policy routes:`);
  for (const fam of ['-4', '-6']) {
    for (const l of (await r.ip([fam, 'rule', 'show'])).split('\n').filter((x) => x.includes('fwmark'))) console.log(`  ip ${fam} rule: ${l.trim()}`);
  }
  const chained = await send();
  show('with the chainer', chained);
  const st = chain.stats();
  for (const rule of st.rules) console.log(`rule ${rule.id.padEnd(12)} ${rule.packets} packets`);

  await chain.close();
  chain = undefined;
  let rules = 0;
  for (const fam of ['-4', '-6']) rules += (await r.ip([fam, 'rule', 'show'])).split('\n').filter((l) => l.includes('fwmark')).length;
  console.log(`closed: ${rules} fwmark rules left on r`);
  for (const x of sinks) await x.close();

  const all = (x) => x.v4 === COUNT && x.v6 === COUNT;
  if (!all(direct.u) || direct.s.v4 + direct.s.v6 !== 0) throw new Error('without the chainer, traffic should go straight upstream');
  if (!all(chained.u) || !all(chained.s)) throw new Error('with the chainer, every datagram should pass the service once, then go upstream');
  if (rules !== 0) throw new Error('close() should remove the policy routes');
  console.log('ok: chained traffic passed the service exactly once on its way upstream; close() restored r');
} finally {
  await chain?.close();
  await lab.close();
}
