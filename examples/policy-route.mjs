// PolicyRoute: steer marked traffic to a second next hop. Host h has two uplinks, to r1
// (its default route) and to r2. One PolicyRoute sends packets carrying firewall mark 0x10
// to table 100, whose default routes (IPv4 and IPv6) go via r2. The kernel's own route
// lookup (`ip route get`) shows the decision before, with and after it; applying again
// changes nothing; remove() takes away exactly what it added.
//
//   node examples/policy-route.mjs          (as root)
import { PolicyRoute } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const spec = {
  priority: 1000,
  fwmark: 0x10,
  table: 100,
  routes: [
    { dst: '0.0.0.0/0', via: '198.18.2.2' },
    { dst: '::/0', via: '2001:db8:2::2' },
  ],
};

const lab = await Lab.create({ name: 'example-policy-route' });
let pr;
try {
  const h = await lab.host('h');
  const r1 = await lab.host('r1');
  const r2 = await lab.host('r2');
  await lab.link(h, r1, { aAddrs: ['198.18.1.1/24', '2001:db8:1::1/64'], bAddrs: ['198.18.1.2/24', '2001:db8:1::2/64'] });
  await lab.link(h, r2, { aAddrs: ['198.18.2.1/24', '2001:db8:2::1/64'], bAddrs: ['198.18.2.2/24', '2001:db8:2::2/64'] });
  await h.addRoute('default via 198.18.1.2');
  await h.addRoute('default via 2001:db8:1::2');
  const opts = { netns: h.netns }; // every bpfkit routing call takes the namespace

  // what the kernel would do with a packet to an address beyond the routers
  const routeGet = async (dst, mark) => {
    const args = [dst.includes(':') ? '-6' : '-4', 'route', 'get', dst, ...(mark ? ['mark', String(mark)] : [])];
    const line = (await h.ip(args)).split('\n')[0].trim();
    return line.match(/via (\S+)/)?.[1] ?? line;
  };
  const show = async (when) => {
    const hops = {
      v4: await routeGet('198.19.9.9'),
      v4mark: await routeGet('198.19.9.9', 0x10),
      v6: await routeGet('2001:db8:99::9'),
      v6mark: await routeGet('2001:db8:99::9', 0x10),
    };
    console.log(`${when.padEnd(7)} unmarked -> ${hops.v4} / ${hops.v6}; mark 0x10 -> ${hops.v4mark} / ${hops.v6mark}`);
    return hops;
  };

  const before = await show('before');
  pr = await PolicyRoute.apply(spec, opts);
  console.log(`apply:  ${JSON.stringify(pr.changes)}`);
  const during = await show('applied');
  const again = await PolicyRoute.apply(spec, opts); // idempotent
  console.log(`again:  ${JSON.stringify(again.changes)}`);
  for (const s of await PolicyRoute.list(opts)) {
    console.log(
      `listed: IPv${s.family} rule priority ${s.rule?.priority} fwmark 0x${s.rule?.fwmark?.toString(16)} -> table ${s.table}, ${s.routes.length} route(s)`,
    );
  }
  const removed = await pr.remove();
  pr = undefined;
  console.log(`remove: ${JSON.stringify(removed)}`);
  const after = await show('removed');

  const ok =
    before.v4mark === '198.18.1.2' &&
    during.v4mark === '198.18.2.2' &&
    during.v4 === '198.18.1.2' &&
    during.v6mark === '2001:db8:2::2' &&
    during.v6 === '2001:db8:1::2' &&
    after.v4mark === '198.18.1.2' &&
    after.v6mark === '2001:db8:1::2' &&
    again.changes.rulesUnchanged === 2 &&
    again.changes.routesUnchanged === 2;
  if (!ok) throw new Error('the routing decisions are not the expected ones');
  console.log('ok: marked traffic went via r2 while the policy route was in place');
} finally {
  await pr?.remove();
  await lab.close();
}
