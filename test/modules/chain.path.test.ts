/**
 * ServiceChainer end to end on four hosts: client C -> router R -> service host S -> R ->
 * upstream host U. The chainer runs on R's client-facing interface and on the interface
 * S hands traffic back on; its XDP program writes the mark into the metadata, its TC
 * ingress program (tc_chain_mark) copies it into skb->mark, and R's policy routes send
 * marked traffic on. R's main table routes the destination straight to U, so only the
 * mark can take a packet through S.
 *
 *   C ==cr== R ==rs==> S            S forwards what it receives on rs back on sr,
 *            R <==sr== S            unmodified (ip_forward=1, a route back through sr)
 *            R ==ru==> U            the destination address lives on U
 *
 * Witnesses independent of bpfkit: nftables counters at S's and U's ingress (netdev
 * hook, `nft -j list counters`); iproute2, bpftool and tc for what stays behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceChainer, TcLink, XdpPipeline, type ChainAttachOptions } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';

const PORT = 7000;
const N = 40;
const DST = { v4: '198.18.20.1', v6: '2001:db8:20::1' } as const;
/** C's two sources: the first goes through the service, the second straight upstream. */
const SRC = { v4: ['198.18.10.1', '198.18.10.3'], v6: ['2001:db8:10::1', '2001:db8:10::3'] } as const;

let lab: Lab;
let c: LabHost;
let r: LabHost;
let s: LabHost;
let u: LabHost;
let cr: LabLink;
let rs: LabLink;
let sr: LabLink;
let ru: LabLink;

/** A netdev-ingress table counting our datagrams to DST per family (and dropping them on U). */
async function witnessTable(h: LabHost, dev: string, drop: boolean): Promise<void> {
  const verdict = drop ? ' drop' : '';
  const ruleset = `table netdev chainwit {
  counter v4 {}
  counter v6 {}
  chain in {
    type filter hook ingress device "${dev}" priority 0;
    ip daddr ${DST.v4} udp dport ${PORT} counter name "v4"${verdict}
    ip6 daddr ${DST.v6} udp dport ${PORT} counter name "v6"${verdict}
  }
}
`;
  await h.exec(['nft', '-f', '-'], { input: ruleset });
}

async function counted(h: LabHost): Promise<{ v4: number; v6: number }> {
  const out = await h.exec(['nft', '-j', 'list', 'counters']);
  const j = JSON.parse(out.stdout) as { nftables: { counter?: { table: string; name: string; packets: number } }[] };
  const n = { v4: 0, v6: 0 };
  for (const e of j.nftables)
    if (e.counter?.table === 'chainwit' && (e.counter.name === 'v4' || e.counter.name === 'v6')) n[e.counter.name] = e.counter.packets;
  return n;
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'chain-path' });
  c = await lab.host('c');
  r = await lab.host('r', { forwarding: true });
  s = await lab.host('s', { forwarding: true });
  u = await lab.host('u');
  cr = await lab.link(c, r, {
    aAddrs: ['198.18.10.1/24', '198.18.10.3/24', '2001:db8:10::1/64', '2001:db8:10::3/64'],
    bAddrs: ['198.18.10.2/24', '2001:db8:10::2/64'],
  });
  rs = await lab.link(r, s, { aAddrs: ['198.18.11.2/24', '2001:db8:11::2/64'], bAddrs: ['198.18.11.1/24', '2001:db8:11::1/64'] });
  sr = await lab.link(s, r, { aAddrs: ['198.18.12.1/24', '2001:db8:12::1/64'], bAddrs: ['198.18.12.2/24', '2001:db8:12::2/64'] });
  ru = await lab.link(r, u, { aAddrs: ['198.18.13.2/24', '2001:db8:13::2/64'], bAddrs: ['198.18.13.1/24', '2001:db8:13::1/64'] });
  await u.addAddr('lo', `${DST.v4}/32`);
  await u.addAddr('lo', `${DST.v6}/128`);
  await c.addRoute('198.18.20.0/24 via 198.18.10.2');
  await c.addRoute('2001:db8:20::/64 via 2001:db8:10::2');
  // R's main table: the destination straight to U
  await r.addRoute('198.18.20.0/24 via 198.18.13.1');
  await r.addRoute('2001:db8:20::/64 via 2001:db8:13::1');
  // S: what it receives goes back to R through its second link
  await s.addRoute('198.18.20.0/24 via 198.18.12.2');
  await s.addRoute('2001:db8:20::/64 via 2001:db8:12::2');
  await u.addRoute('198.18.10.0/24 via 198.18.13.2');
  await u.addRoute('2001:db8:10::/64 via 2001:db8:13::2');
  await witnessTable(s, rs.b.ifname, false);
  await witnessTable(u, ru.b.ifname, true);
});
afterAll(async () => {
  await lab?.close();
});

const opts = (): ChainAttachOptions => ({
  services: [{ name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.11.1' }, { via: '2001:db8:11::1' }] }],
  upstream: { mark: 0x20, table: 120, nexthops: [{ via: '198.18.13.1' }, { via: '2001:db8:13::1' }] },
  rules: [
    { id: 'back-from-fw', iface: sr.b.ifname, action: 'upstream', priority: 10 },
    { id: 'second-v4', src: `${SRC.v4[1]}/32`, action: 'upstream', priority: 20 },
    { id: 'second-v6', src: `${SRC.v6[1]}/128`, action: 'upstream', priority: 20 },
    { id: 'clients', iface: cr.b.ifname, action: 'fw' },
  ],
  netns: r.netns,
});

/** What R's kernel holds that the chainer could leave behind. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const fam of ['-4', '-6']) {
    out[`rule${fam}`] = await r.ip([fam, 'rule', 'show']);
    out[`route${fam}`] = await r.ip([fam, 'route', 'show', 'table', 'all']);
  }
  out.bpftool = (await r.exec(['bpftool', 'net', 'show'])).stdout;
  for (const dev of [cr.b.ifname, sr.b.ifname, rs.a.ifname, ru.a.ifname]) {
    out[`tc ${dev}`] = (await r.exec(['tc', 'filter', 'show', 'dev', dev, 'ingress'])).stdout;
    // tcx hooks: bpftool 7.1 and tc do not show them, so ask the kernel (BPF_PROG_QUERY)
    out[`tcx ${dev}`] = JSON.stringify(TcLink.query(dev, { direction: 'ingress', netns: r.netns }).programs);
  }
  return out;
}

/** bpf_links (of any namespace) that run one of these programs, as bpftool lists them. */
async function linksOf(progIds: number[]): Promise<{ id: number; type: string | number; prog_id: number }[]> {
  const out = await r.exec(['bpftool', '-j', 'link', 'show']);
  const all = JSON.parse(out.stdout || '[]') as { id: number; type: string | number; prog_id: number }[];
  return all.filter((l) => progIds.includes(l.prog_id));
}

/** Waits (bounded) until U has counted `want` more datagrams of `fam` than in `base`. */
async function untilUpstream(fam: 'v4' | 'v6', want: number): Promise<void> {
  for (let i = 0; i < 100 && (await counted(u))[fam] < want; i++) await new Promise((res) => setTimeout(res, 50));
}

/** Sends N datagrams from `src`; returns how many S and U counted for them. */
async function send(fam: 'v4' | 'v6', src: string): Promise<{ s: number; u: number }> {
  const s0 = (await counted(s))[fam];
  const u0 = (await counted(u))[fam];
  // resolve every neighbour on the path first (not counted: ICMP, not our UDP port)
  await c.ping(DST[fam], { count: 1, src, timeoutMs: 3000 });
  const sent = await c.sendUdp(DST[fam], PORT, { count: N, src });
  expect(sent).toEqual({ sent: N, failed: 0 });
  await untilUpstream(fam, u0 + N);
  // one more bounded wait: a packet duplicated on the way would show up here
  await new Promise((res) => setTimeout(res, 100));
  return { s: (await counted(s))[fam] - s0, u: (await counted(u))[fam] - u0 };
}

describe('ServiceChainer on a four-host path', () => {
  it('sends unserviced traffic through the service exactly once, then upstream (IPv4 and IPv6); close() leaves R as before', async () => {
    const before = await snapshot();
    // without the chainer R routes straight to U: the service sees nothing
    expect(await send('v4', SRC.v4[0])).toEqual({ s: 0, u: N });

    const chain = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts());
    let progIds: number[] | undefined;
    try {
      expect(chain.status).toMatchObject({ attached: 'interface', marksSkb: true, routes: 2, rules: 4 });
      expect(chain.links.map((l) => l.ifindex)).toEqual([cr.b.ifindex, sr.b.ifindex]);
      expect(chain.tcLinks.map((l) => [l.ifindex, l.direction])).toEqual([
        [cr.b.ifindex, 'ingress'],
        [sr.b.ifindex, 'ingress'],
      ]);
      progIds = [chain.tcProgram.info.id, chain.program.info.id];
      for (const l of chain.tcLinks) expect(l.info.progId).toBe(progIds[0]);
      // bpftool (7.1 here) does not list tcx hooks under `net`; its link list does
      expect(await linksOf(progIds)).toHaveLength(4);

      for (const fam of ['v4', 'v6'] as const) {
        expect(await send(fam, SRC[fam][0]), `${fam} through the service`).toEqual({ s: N, u: N });
        expect(await send(fam, SRC[fam][1]), `${fam} straight upstream`).toEqual({ s: 0, u: N });
      }
      const st = chain.stats();
      const rule = (id: string) => st.rules.find((x) => x.id === id)!.packets;
      // the chainer's own view agrees (at least: pings and neighbour traffic count too)
      expect(rule('clients')).toBeGreaterThanOrEqual(2n * BigInt(N));
      expect(rule('back-from-fw')).toBeGreaterThanOrEqual(2n * BigInt(N));
      expect(rule('second-v4')).toBeGreaterThanOrEqual(BigInt(N));
      expect(rule('second-v6')).toBeGreaterThanOrEqual(BigInt(N));
    } finally {
      await chain.close();
    }
    expect(chain.status).toMatchObject({ attached: 'none', marksSkb: false, routes: 0 });
    expect(await snapshot()).toEqual(before);
    expect(progIds).toBeDefined();
    expect(await linksOf(progIds!)).toEqual([]);
    // and traffic goes the plain way again
    expect(await send('v6', SRC.v6[0])).toEqual({ s: 0, u: N });
  });

  it("as an XdpPipeline stage: the copier goes on the pipeline's interface, and the path works the same", async () => {
    const before = await snapshot();
    const pipe = await XdpPipeline.attach(cr.b.ifname, { netns: r.netns });
    try {
      const { netns: _ns, ...rest } = opts();
      const chain = await ServiceChainer.attach(pipe, rest);
      try {
        expect(chain.status).toMatchObject({ attached: 'pipeline', marksSkb: true });
        expect(chain.links).toEqual([]);
        expect(chain.tcLinks.map((l) => l.ifindex)).toEqual([cr.b.ifindex]);
        // back from S on sr there is no chainer: R's main table sends it to U all the same
        expect(await send('v4', SRC.v4[0])).toEqual({ s: N, u: N });
        expect(await send('v6', SRC.v6[1])).toEqual({ s: 0, u: N });
      } finally {
        await chain.close();
      }
      expect(JSON.stringify(TcLink.query(cr.b.ifname, { direction: 'ingress', netns: r.netns }).programs)).toBe('[]');
    } finally {
      pipe.close();
    }
    expect(await snapshot()).toEqual(before);
  });

  it('a failure on the second interface (its XDP hook is taken) undoes everything', async () => {
    const before = await snapshot();
    const other = await XdpPipeline.attach(sr.b.ifname, { netns: r.netns });
    try {
      const taken = await snapshot();
      await expect(ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts())).rejects.toBeDefined();
      expect(await snapshot()).toEqual(taken);
    } finally {
      other.close();
    }
    expect(await snapshot()).toEqual(before);
  });

  it('bad interface lists are refused naming the field, before any kernel change', async () => {
    const before = await snapshot();
    await expect(ServiceChainer.attach([], opts())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'interface' });
    await expect(ServiceChainer.attach([cr.b.ifname, cr.b.ifindex], opts())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'interface[1]' });
    await expect(ServiceChainer.attach([cr.b.ifname, 'no/such'], opts())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'interface[1]' });
    await expect(ServiceChainer.attach([cr.b.ifname, 'nosuch0'], opts())).rejects.toMatchObject({ code: 'ERR_NO_SUCH_INTERFACE' });
    expect(await snapshot()).toEqual(before);
  });
});
