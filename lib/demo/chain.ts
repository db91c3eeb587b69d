/**
 * Demo section "chain": a ServiceChainer on router R steers client traffic through a
 * service host S before it goes upstream to U. R's main table routes the destination
 * straight to U; only the chainer's mark (XDP metadata, copied into skb->mark at TC
 * ingress) and its policy routes take a packet through S, which forwards it back to R
 * unmodified on a second link, where the chainer marks it for upstream.
 *
 *   C ==cr==> R ==rs==> S ==sr==> R ==ru==> U
 *
 * C sends UDP from two sources. Every second: the chainer's packets per path
 * (`stats()`: per service, upstream) and, as witnesses independent of bpfkit, nftables
 * counters per source of what S forwarded and what reached U. Half-way one live
 * `update()` adds a rule sending the second source straight upstream: S stops
 * forwarding it, U still receives it.
 * The same four-host topology is the proof in test/modules/chain.path.test.ts.
 */
import { ServiceChainer, type ChainRule } from '../modules/chain/index.js';
import type { LabHost } from '../lab/index.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

const PORT = 7000;
const DST = '198.18.20.1';
const SRC = ['198.18.10.1', '198.18.10.3'] as const;
const RATE = 100; // datagrams per second per source

/**
 * An nftables table counting our datagrams per source: on S at the forward hook (what it
 * forwarded), on U at its interface's ingress (what arrived).
 */
async function witness(h: LabHost, hook: { forward: true } | { ingress: string }): Promise<void> {
  const [family, chain] =
    'forward' in hook ? ['inet', 'type filter hook forward priority 0;'] : ['netdev', `type filter hook ingress device "${hook.ingress}" priority 0;`];
  await h.exec(['nft', '-f', '-'], {
    input: `table ${family} demowit {
  counter s0 {}
  counter s1 {}
  chain count {
    ${chain}
    ip saddr ${SRC[0]} ip daddr ${DST} udp dport ${PORT} counter name "s0"
    ip saddr ${SRC[1]} ip daddr ${DST} udp dport ${PORT} counter name "s1"
  }
}
`,
  });
}

async function counted(h: LabHost): Promise<[number, number]> {
  const out = await h.exec(['nft', '-j', 'list', 'counters']);
  const j = JSON.parse(out.stdout) as { nftables: { counter?: { table: string; name: string; packets: number } }[] };
  const n: [number, number] = [0, 0];
  for (const e of j.nftables)
    if (e.counter?.table === 'demowit' && (e.counter.name === 's0' || e.counter.name === 's1')) n[e.counter.name === 's0' ? 0 : 1] = e.counter.packets;
  return n;
}

export const chainSection: DemoSection = {
  name: 'chain',
  title: 'chain: ServiceChainer steers clients through a service host, packets per path live, live update()',
  async run({ lab, seconds, print, signal }) {
    const c = await lab.host('c');
    const r = await lab.host('r', { forwarding: true });
    const s = await lab.host('s', { forwarding: true });
    const u = await lab.host('u');
    const cr = await lab.link(c, r, { aAddrs: [`${SRC[0]}/24`, `${SRC[1]}/24`], bAddrs: ['198.18.10.2/24'] });
    await lab.link(r, s, { aAddrs: ['198.18.11.2/24'], bAddrs: ['198.18.11.1/24'] });
    const sr = await lab.link(s, r, { aAddrs: ['198.18.12.1/24'], bAddrs: ['198.18.12.2/24'] });
    const ru = await lab.link(r, u, { aAddrs: ['198.18.13.2/24'], bAddrs: ['198.18.13.1/24'] });
    await u.addAddr('lo', `${DST}/32`);
    await c.addRoute('198.18.20.0/24 via 198.18.10.2');
    await r.addRoute('198.18.20.0/24 via 198.18.13.1'); // R's main table: straight to U
    await s.addRoute('198.18.20.0/24 via 198.18.12.2'); // S hands everything back on its second link
    await u.addRoute('198.18.10.0/24 via 198.18.13.2');
    await witness(s, { forward: true });
    await witness(u, { ingress: ru.b.ifname });

    const base: ChainRule[] = [
      { id: 'back-from-fw', iface: sr.b.ifname, action: 'upstream', priority: 10 },
      { id: 'clients', iface: cr.b.ifname, action: 'fw' },
    ];
    const chainer = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], {
      services: [{ name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.11.1' }] }],
      upstream: { mark: 0x20, table: 120, nexthops: [{ via: '198.18.13.1' }] },
      rules: base,
      netns: r.netns,
    });
    try {
      const st0 = chainer.status;
      print(
        `R: ServiceChainer on ${cr.b.ifname} (from C) and ${sr.b.ifname} (back from S): XDP prog id ${chainer.program.info.id}, TC mark copier ${st0.marksSkb ? 'on' : 'off'}, ${st0.routes} policy routes, rules ${base.map((x) => `${x.id}->${x.action}`).join(', ')}`,
      );
      print(`C sends ${RATE} UDP datagrams/s from ${SRC[0]} and from ${SRC[1]} to ${DST}:${PORT} (on U); R's main table alone would go straight to U`);
      for (const src of SRC) await c.ping(DST, { count: 1, src, timeoutMs: 3000 });
      let lastS = await counted(s);
      let lastU = await counted(u);
      for (let t = 1; t <= seconds && !signal.aborted; t++) {
        // one second of traffic per step, so an abort never waits for more than that
        await Promise.all(SRC.map((src) => c.sendUdp(DST, PORT, { count: RATE, src, intervalMs: 1000 / RATE })));
        const st = chainer.stats();
        const [sNow, uNow] = [await counted(s), await counted(u)];
        const per = SRC.map((src, i) => `${src}: via S +${sNow[i]! - lastS[i]!}, at U +${uNow[i]! - lastU[i]!}`).join(' | ');
        print(`  t=${t}s  chainer: ${st.services.map((x) => `${x.name} ${x.packets}`).join(', ')}, upstream ${st.upstream.packets} pkts | ${per}`);
        lastS = sNow;
        lastU = uNow;
        if (t === Math.ceil(seconds / 2)) {
          await chainer.update({ rules: [...base, { id: 'direct', src: `${SRC[1]}/32`, action: 'upstream', priority: 20 }] });
          print(`  update(): rule 'direct' sends ${SRC[1]} straight upstream (the whole rule set swapped atomically)`);
        }
      }
      await sleep(200);
      const st = chainer.stats();
      const [sEnd, uEnd] = [await counted(s), await counted(u)];
      print(
        `chainer marked ${st.services.map((x) => `${x.packets} packets for service ${x.name}`).join(', ')}, ${st.upstream.packets} for upstream; unclassified ${st.unclassified.packets}`,
      );
      SRC.forEach((src, i) => print(`${src}: the service host forwarded ${sEnd[i]} datagrams, U received ${uEnd[i]}`));
    } finally {
      await chainer.close();
    }
  },
};
