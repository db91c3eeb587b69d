/**
 * The four-host lab the ServiceChainer path tests share:
 *
 *   C ==cr== R ==rs==> S            S forwards what it receives on rs back on sr
 *            R <==sr== S            (ip_forward=1, a route back through sr)
 *            R ==ru==> U            the destination address lives on U
 *
 * R's main table routes the destination straight to U: only a mark takes a packet through
 * S. The witnesses are nftables counters (netdev ingress, independent of bpfkit) at S's and
 * U's ends, per family and TTL / hop limit (C sends with 64: through S a datagram reaches U
 * with 61, straight with 63); U drops what it counted.
 */
import type { ChainAttachOptions } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';

export const DST = { v4: '198.18.20.1', v6: '2001:db8:20::1' } as const;
/** C's two sources: the first goes through the service, the second straight upstream. */
export const SRC = { v4: ['198.18.10.1', '198.18.10.3'], v6: ['2001:db8:10::1', '2001:db8:10::3'] } as const;
export const TTLS = [61, 62, 63, 64] as const;
export type Fam = 'v4' | 'v6';
export type TtlCounts = Record<Fam, Record<number, number>>;

export interface ChainLab {
  lab: Lab;
  /** Built with IPv6 addresses and routes. */
  v6: boolean;
  c: LabHost;
  r: LabHost;
  s: LabHost;
  u: LabHost;
  cr: LabLink;
  rs: LabLink;
  sr: LabLink;
  ru: LabLink;
}

export interface ChainLabOptions {
  /** UDP destination port the witnesses count. */
  port: number;
  /** IPv6 addresses and routes too (default true). */
  v6?: boolean;
  /** GRO on the veths R redirects into (their far ends need NAPI to take XDP frames). */
  gro?: boolean;
}

const TABLE = 'chainwit';

async function witnessTable(h: LabHost, dev: string, port: number, drop: boolean): Promise<void> {
  const verdict = drop ? ' drop' : '';
  const lines: string[] = [];
  const counters: string[] = [];
  for (const t of TTLS) {
    counters.push(`counter v4_${t} {}`, `counter v6_${t} {}`);
    lines.push(`ip daddr ${DST.v4} udp dport ${port} ip ttl ${t} counter name "v4_${t}"${verdict}`);
    lines.push(`ip6 daddr ${DST.v6} udp dport ${port} ip6 hoplimit ${t} counter name "v6_${t}"${verdict}`);
  }
  const ruleset = `table netdev ${TABLE} {
  ${counters.join('\n  ')}
  chain in {
    type filter hook ingress device "${dev}" priority 0;
    ${lines.join('\n    ')}
  }
}
`;
  await h.exec(['nft', '-f', '-'], { input: ruleset });
}

/** Builds the lab (hosts, links, addresses, routes, witnesses). The caller closes `lab`. */
export async function chainLab(name: string, o: ChainLabOptions): Promise<ChainLab> {
  const v6 = o.v6 ?? true;
  const gro = o.gro ?? false;
  const addrs = (four: string[], six: string[]) => (v6 ? [...four, ...six] : four);
  const lab = await Lab.create({ name });
  const c = await lab.host('c');
  const r = await lab.host('r', { forwarding: true });
  const s = await lab.host('s', { forwarding: true });
  const u = await lab.host('u');
  const cr = await lab.link(c, r, {
    aAddrs: addrs(['198.18.10.1/24', '198.18.10.3/24'], ['2001:db8:10::1/64', '2001:db8:10::3/64']),
    bAddrs: addrs(['198.18.10.2/24'], ['2001:db8:10::2/64']),
  });
  const rs = await lab.link(r, s, { aAddrs: addrs(['198.18.11.2/24'], ['2001:db8:11::2/64']), bAddrs: addrs(['198.18.11.1/24'], ['2001:db8:11::1/64']), gro });
  const sr = await lab.link(s, r, { aAddrs: addrs(['198.18.12.1/24'], ['2001:db8:12::1/64']), bAddrs: addrs(['198.18.12.2/24'], ['2001:db8:12::2/64']) });
  const ru = await lab.link(r, u, { aAddrs: addrs(['198.18.13.2/24'], ['2001:db8:13::2/64']), bAddrs: addrs(['198.18.13.1/24'], ['2001:db8:13::1/64']), gro });
  await u.addAddr('lo', `${DST.v4}/32`);
  await c.addRoute('198.18.20.0/24 via 198.18.10.2');
  await r.addRoute('198.18.20.0/24 via 198.18.13.1'); // R's main table: straight to U
  await s.addRoute('198.18.20.0/24 via 198.18.12.2'); // S: back to R through its second link
  await u.addRoute('198.18.10.0/24 via 198.18.13.2');
  if (v6) {
    await u.addAddr('lo', `${DST.v6}/128`);
    await c.addRoute('2001:db8:20::/64 via 2001:db8:10::2');
    await r.addRoute('2001:db8:20::/64 via 2001:db8:13::1');
    await s.addRoute('2001:db8:20::/64 via 2001:db8:12::2');
    await u.addRoute('2001:db8:10::/64 via 2001:db8:13::2');
  }
  await witnessTable(s, rs.b.ifname, o.port, false);
  await witnessTable(u, ru.b.ifname, o.port, true);
  return { lab, v6, c, r, s, u, cr, rs, sr, ru };
}

/** Datagrams a witness counted, per family and TTL / hop limit: { v4: { 61: n, ... }, v6: {...} }. */
export async function countedByTtl(h: LabHost): Promise<TtlCounts> {
  const out = await h.exec(['nft', '-j', 'list', 'counters']);
  const j = JSON.parse(out.stdout) as { nftables: { counter?: { table: string; name: string; packets: number } }[] };
  const n: TtlCounts = { v4: {}, v6: {} };
  for (const e of j.nftables) {
    const m = e.counter?.table === TABLE ? /^(v4|v6)_(\d+)$/.exec(e.counter.name) : null;
    if (m && e.counter!.packets) n[m[1] as Fam][Number(m[2])] = e.counter!.packets;
  }
  return n;
}

/** The same, summed over TTLs: { v4: n, v6: n }. */
export async function counted(h: LabHost): Promise<Record<Fam, number>> {
  const n = await countedByTtl(h);
  const sum = (x: Record<number, number>) => Object.values(x).reduce((a, b) => a + b, 0);
  return { v4: sum(n.v4), v6: sum(n.v6) };
}

/** The chainer the tests attach on R: clients through service `fw`, what S returns and C's second source upstream. */
export function chainOptions(t: ChainLab, extra: Partial<ChainAttachOptions> = {}): ChainAttachOptions {
  const hops = (four: string, six: string) => (t.v6 ? [{ via: four }, { via: six }] : [{ via: four }]);
  return {
    services: [{ name: 'fw', mark: 0x10, table: 110, nexthops: hops('198.18.11.1', '2001:db8:11::1') }],
    upstream: { mark: 0x20, table: 120, nexthops: hops('198.18.13.1', '2001:db8:13::1') },
    rules: [
      { id: 'back-from-fw', iface: t.sr.b.ifname, action: 'upstream', priority: 10 },
      { id: 'second-v4', src: `${SRC.v4[1]}/32`, action: 'upstream', priority: 20 },
      { id: 'second-v6', src: `${SRC.v6[1]}/128`, action: 'upstream', priority: 20 },
      { id: 'clients', iface: t.cr.b.ifname, action: 'fw' },
    ],
    netns: t.r.netns,
    ...extra,
  };
}
