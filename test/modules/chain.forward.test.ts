/**
 * ServiceChainer with forward: 'xdp': the XDP program routes the packets it marks itself
 * (bpf_fib_lookup with the mark, MAC rewrite, TTL - 1, redirect) through the same policy
 * routes the stack would use, and hands the rest to the stack, marked.
 *
 *   C ==cr== R ==rs==> S            S forwards what it receives on rs back on sr
 *            R <==sr== S            (ip_forward=1, a route back through sr)
 *            R ==ru==> U            the destination address lives on U
 *
 * R's main table routes the destination straight to U: only the mark takes a packet
 * through S. Witnesses independent of bpfkit: nftables counters by TTL / hop limit at S's
 * and U's ingress (C sends with 64: through S a datagram reaches U with 61, straight with
 * 63), and R's own forwarding counters (/proc/net/snmp ForwDatagrams, /proc/net/snmp6
 * Ip6OutForwDatagrams), which count what the stack forwarded: nothing XDP redirected.
 * The veth peers XDP redirects into (S's and U's ends) run GRO, so they take XDP frames.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceChainer, type ChainAttachOptions, type ChainStats } from '../../lib/index.js';
import type { Lab, LabHost, LabLink } from '../../lib/lab/index.js';
import { chainLab, chainOptions, countedByTtl as counted, DST, SRC, TTLS, type ChainLab, type Fam } from './chain.topology.js';

const PORT = 7100;
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

/** What R's stack forwarded so far (its own SNMP counters). */
async function stackForwarded(): Promise<Record<Fam, number>> {
  const snmp = (await r.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip: '));
  const names = snmp[0]!.split(/\s+/);
  const values = snmp[1]!.split(/\s+/);
  const v6 = /Ip6OutForwDatagrams\s+(\d+)/.exec((await r.exec(['cat', '/proc/net/snmp6'])).stdout);
  return { v4: Number(values[names.indexOf('ForwDatagrams')]), v6: Number(v6![1]) };
}

const diff = (a: Record<number, number>, b: Record<number, number>) =>
  Object.fromEntries(TTLS.map((t) => [t, (a[t] ?? 0) - (b[t] ?? 0)]).filter(([, n]) => n !== 0));
const fwd = (st: ChainStats) => st.forward!;

beforeAll(async () => {
  // the links R redirects into: their far ends need NAPI to take XDP frames (GRO gives it)
  t = await chainLab('chain-fwd', { port: PORT, gro: true });
  ({ lab, c, r, s, u, cr, rs, sr, ru } = t);
});
afterAll(async () => {
  await lab?.close();
});

const opts = (): ChainAttachOptions => chainOptions(t, { forward: 'xdp', egress: [rs.a.ifname, ru.a.ifname] });

/** Waits (bounded) until U has counted `want` datagrams of `fam` in all. */
async function untilUpstream(fam: Fam, want: number): Promise<void> {
  const total = async () => Object.values((await counted(u))[fam]).reduce((a, b) => a + b, 0);
  for (let i = 0; i < 100 && (await total()) < want; i++) await new Promise((res) => setTimeout(res, 50));
}

/** Sends N datagrams from `src` (neighbours resolved first unless `cold`); what S, U and R's stack counted. */
async function send(fam: Fam, src: string, n = N, cold = false) {
  if (!cold) await c.ping(DST[fam], { count: 1, src, timeoutMs: 3000 });
  const s0 = (await counted(s))[fam];
  const u0 = (await counted(u))[fam];
  const f0 = (await stackForwarded())[fam];
  const uTotal0 = Object.values(u0).reduce((a, b) => a + b, 0);
  const sent = await c.sendUdp(DST[fam], PORT, { count: n, src });
  expect(sent).toEqual({ sent: n, failed: 0 });
  await untilUpstream(fam, uTotal0 + n);
  await new Promise((res) => setTimeout(res, 100)); // a duplicate would show up here
  return { s: diff((await counted(s))[fam], s0), u: diff((await counted(u))[fam], u0), stack: (await stackForwarded())[fam] - f0 };
}

describe("ServiceChainer forward: 'xdp'", () => {
  it('routes marked traffic in XDP through the policy routes: via the service, then upstream (IPv4 and IPv6), TTL decremented, the stack idle', async () => {
    // without the chainer: the stack forwards straight to U (one hop: TTL 63)
    expect(await send('v4', SRC.v4[0])).toEqual({ s: {}, u: { 63: N }, stack: N });
    const chain = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts());
    try {
      expect(chain.status).toMatchObject({ forward: 'xdp', marksSkb: true, routes: 2 });
      for (const fam of ['v4', 'v6'] as const) {
        const before = fwd(chain.stats());
        // through S: R (XDP) 63 at S; S (stack) 62; R (XDP) 61 at U; R's stack forwarded none
        expect(await send(fam, SRC[fam][0]), `${fam} via the service`).toEqual({ s: { 63: N }, u: { 61: N }, stack: 0 });
        // classified upstream: straight to U by XDP
        expect(await send(fam, SRC[fam][1]), `${fam} straight upstream`).toEqual({ s: {}, u: { 63: N }, stack: 0 });
        const after = fwd(chain.stats());
        // each datagram via S passes R twice, each straight one once (plus the pings' frames)
        expect(after.redirected.packets - before.redirected.packets).toBeGreaterThanOrEqual(BigInt(3 * N));
      }
      const st = chain.stats();
      expect(st.forward!.fallback.error.packets).toBe(0n);
      expect(st.forward!.fallback.notEgress.packets).toBe(0n);
    } finally {
      await chain.close();
    }
    // and after close() the stack does it again
    expect(await send('v6', SRC.v6[0])).toEqual({ s: {}, u: { 63: N }, stack: N });
  });

  it('falls back to the stack, marked, when the next hop has no neighbour entry; counts it', async () => {
    const chain = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts());
    try {
      for (const fam of ['v4', 'v6'] as const) {
        await send(fam, SRC[fam][0]); // warm: every neighbour resolved
        await r.ip(['neigh', 'flush', 'dev', rs.a.ifname]);
        const before = fwd(chain.stats()).fallback.noNeighbour.packets;
        // one datagram, cold: R's XDP finds no neighbour for S and hands it to the stack,
        // which resolves S and forwards it along the same policy route (through S)
        const one = await send(fam, SRC[fam][0], 1, true);
        expect(one.s, fam).toEqual({ 63: 1 });
        expect(one.u, fam).toEqual({ 61: 1 });
        expect(one.stack, `${fam}: the stack forwarded the fallback`).toBeGreaterThanOrEqual(1);
        expect(fwd(chain.stats()).fallback.noNeighbour.packets - before, fam).toBeGreaterThanOrEqual(1n);
        // the neighbour is back: XDP routes again
        expect(await send(fam, SRC[fam][0], N, true)).toEqual({ s: { 63: N }, u: { 61: N }, stack: 0 });
      }
    } finally {
      await chain.close();
    }
  });

  it('bad forward options are refused naming the field, before any kernel change', async () => {
    const rules = async () => (await r.ip(['rule', 'show'])) + (await r.ip(['-6', 'rule', 'show']));
    const before = await rules();
    const { egress: _e, ...noEgress } = opts();
    await expect(ServiceChainer.attach(cr.b.ifname, noEgress)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'egress' });
    await expect(ServiceChainer.attach(cr.b.ifname, { ...opts(), forward: 'stack' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'egress' });
    await expect(ServiceChainer.attach(cr.b.ifname, { ...opts(), forward: 'tc' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      field: 'forward',
    });
    await expect(ServiceChainer.attach(cr.b.ifname, { ...opts(), egress: [rs.a.ifname, rs.a.ifindex] })).rejects.toMatchObject({ field: 'egress[1]' });
    await expect(ServiceChainer.attach(cr.b.ifname, { ...opts(), egress: ['nosuch0'] })).rejects.toMatchObject({ code: 'ERR_NO_SUCH_INTERFACE' });
    expect(await rules()).toBe(before);
  });
});
