/**
 * ServiceChainer's routing side in a namespace of its own: `ip rule` and
 * `ip route show table all` (iproute2, an independent witness) show the chainer's
 * policy routes while it lives and none after close(); a table some foreign rule already
 * uses makes attach fail with nothing changed; a failure after the routes went in takes
 * them out again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceChainer, XdpPipeline, type ChainAttachOptions } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';

interface RuleJson {
  priority: number;
  fwmark?: string;
  table?: string;
  protocol?: string;
}
interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

let lab: Lab;
let host: LabHost;
let l: LabLink;
let svc: LabLink;
beforeAll(async () => {
  lab = await Lab.create({ name: 'chain-lab' });
  host = await lab.host('h');
  const peer = await lab.host('p');
  const fw = await lab.host('fw');
  l = await lab.link(peer, host, { aAddrs: ['198.18.0.1/24', '2001:db8::1/64'], bAddrs: ['198.18.0.2/24', '2001:db8::2/64'] });
  svc = await lab.link(fw, host, { aAddrs: ['198.18.1.1/24', '2001:db8:1::1/64'], bAddrs: ['198.18.1.2/24', '2001:db8:1::2/64'] });
});
afterAll(async () => {
  await lab?.close();
});

/** bpfkit's rules and routes (protocol 165) in the host's namespace, for exact comparisons. */
async function witness(): Promise<{ rules: string[]; routes: string[] }> {
  const rules: string[] = [];
  for (const fam of ['-4', '-6']) {
    for (const r of await host.ipJson<RuleJson[]>([fam, 'rule', 'show'])) {
      if (r.protocol !== undefined && r.protocol !== 'boot' && r.protocol !== 'kernel' && r.protocol !== 'unspec' && r.protocol !== '0')
        rules.push(`${fam} ${r.priority} fwmark ${r.fwmark} table ${r.table} proto ${r.protocol}`);
    }
  }
  const routes: string[] = [];
  for (const fam of ['-4', '-6']) {
    for (const r of await host.ipJson<RouteJson[]>([fam, 'route', 'show', 'table', 'all'])) {
      if (r.protocol === '165') {
        const via = r.nexthops ? r.nexthops.map((h) => h.gateway ?? h.dev).join('+') : (r.gateway ?? r.dev);
        routes.push(`${fam} table ${r.table} ${r.dst} via ${via}`);
      }
    }
  }
  return { rules: rules.sort(), routes: routes.sort() };
}

async function xdpOn(ifname: string): Promise<boolean> {
  const [info] = await host.ipJson<{ xdp?: unknown }[]>(['-d', 'link', 'show', 'dev', ifname]);
  return info?.xdp !== undefined;
}

const opts = (): ChainAttachOptions => ({
  services: [
    { name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.1.1' }, { via: '2001:db8:1::1' }] },
    { name: 'ids', mark: 0x11, table: 111, nexthops: [{ dev: svc.b.ifname }] },
  ],
  upstream: { mark: 0x20, table: 120, nexthops: [{ via: '198.18.0.1' }, { via: '2001:db8::1' }] },
  rules: [
    { iface: svc.b.ifname, action: 'upstream', priority: 10 },
    { src: '198.18.0.0/24', action: 'fw' },
    { src: '2001:db8::/64', action: 'fw' },
  ],
  netns: host.netns,
  rulePriority: 2000,
});

describe('ServiceChainer policy routes', () => {
  it('exist while the chainer lives, follow update(), and are gone after close()', async () => {
    expect(await witness()).toEqual({ rules: [], routes: [] });
    const chain = await ServiceChainer.attach(l.b.ifname, opts());
    try {
      expect(await xdpOn(l.b.ifname)).toBe(true);
      expect(chain.status).toMatchObject({ attached: 'interface', marksSkb: true, routes: 3, rules: 3 });
      expect(await witness()).toEqual({
        rules: [
          '-4 2000 fwmark 0x10 table 110 proto 165',
          '-4 2001 fwmark 0x11 table 111 proto 165',
          '-4 2002 fwmark 0x20 table 120 proto 165',
          '-6 2000 fwmark 0x10 table 110 proto 165',
          '-6 2001 fwmark 0x11 table 111 proto 165',
          '-6 2002 fwmark 0x20 table 120 proto 165',
        ].sort(),
        routes: [
          '-4 table 110 default via 198.18.1.1',
          '-6 table 110 default via 2001:db8:1::1',
          `-4 table 111 default via ${svc.b.ifname}`,
          `-6 table 111 default via ${svc.b.ifname}`,
          '-4 table 120 default via 198.18.0.1',
          '-6 table 120 default via 2001:db8::1',
        ].sort(),
      });

      // replace 'ids' by 'dpi' (new mark, new table): the old one's rule and table go
      await chain.update({
        services: [opts().services[0]!, { name: 'dpi', mark: 0x12, table: 112, nexthops: [{ via: '198.18.1.1' }] }],
      });
      const w = await witness();
      expect(w.rules.filter((r) => r.includes('table 111'))).toEqual([]);
      expect(w.routes.filter((r) => r.includes('table 111'))).toEqual([]);
      expect(w.rules).toContain('-4 2001 fwmark 0x12 table 112 proto 165');
      expect(w.routes).toContain('-4 table 112 default via 198.18.1.1');
      expect(w.rules.filter((r) => r.startsWith('-6 2001'))).toEqual([]); // dpi has no IPv6 next hop
      expect(chain.services.map((s) => s.name)).toEqual(['fw', 'dpi']);

      // new next hops for 'fw' only: its table's routes change, its rules stay
      const fw = { ...opts().services[0]!, nexthops: [{ via: '198.18.1.3' }] };
      await chain.update({ services: [fw, chain.services[1]!] });
      const w2 = await witness();
      expect(w2.routes.filter((r) => r.includes('table 110'))).toEqual(['-4 table 110 default via 198.18.1.3']);
      expect(w2.rules.filter((r) => r.includes('table 110'))).toEqual(['-4 2000 fwmark 0x10 table 110 proto 165']);
      expect(w2.rules).toContain('-4 2001 fwmark 0x12 table 112 proto 165');
    } finally {
      await chain.close();
    }
    expect(await witness()).toEqual({ rules: [], routes: [] });
    expect(await xdpOn(l.b.ifname)).toBe(false);
    await chain.close(); // idempotent
  });

  it('a table a foreign ip rule uses: attach fails, naming it, and nothing changes', async () => {
    await host.ip(['rule', 'add', 'fwmark', '0x99', 'table', '111', 'pref', '500']);
    try {
      const before = await host.ip(['rule', 'show']);
      await expect(ServiceChainer.attach(l.b.ifname, opts())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'services[1].table' });
      expect(await host.ip(['rule', 'show'])).toBe(before);
      expect(await witness()).toEqual({ rules: [], routes: [] });
      expect(await xdpOn(l.b.ifname)).toBe(false);
    } finally {
      await host.ip(['rule', 'del', 'pref', '500']);
    }
  });

  it('a failure after the routes went in (the interface is taken) takes them out again', async () => {
    const other = await XdpPipeline.attach(l.b.ifname, { netns: host.netns });
    try {
      await expect(ServiceChainer.attach(l.b.ifname, opts())).rejects.toBeDefined();
      expect(await witness()).toEqual({ rules: [], routes: [] });
    } finally {
      other.close();
    }
    expect(await xdpOn(l.b.ifname)).toBe(false);
  });
});
