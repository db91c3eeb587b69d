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
import type { Lab, LabHost, LabLink } from '../../lib/lab/index.js';
import { chainLab, chainOptions, counted, DST, SRC, type ChainLab } from './chain.topology.js';

const PORT = 7000;
const N = 40;

let lab: Lab;
let c: LabHost;
let r: LabHost;
let s: LabHost;
let u: LabHost;
let cr: LabLink;
let rs: LabLink;
let sr: LabLink;
let ru: LabLink;
let t: ChainLab;

beforeAll(async () => {
  t = await chainLab('chain-path', { port: PORT });
  ({ lab, c, r, s, u, cr, rs, sr, ru } = t);
});
afterAll(async () => {
  await lab?.close();
});

const opts = (): ChainAttachOptions => chainOptions(t);

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
