/**
 * PolicyRoute (rule + routes as one unit) against the real kernel,
 * inside lab namespaces only, with iproute2 run in the same namespace as the independent
 * witness (route.helpers.ts). The root namespace's rules are compared before and after.
 */
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BPFKIT_ROUTE_PROTOCOL, IpRoute, IpRule, PolicyRoute } from '../../lib/index.js';
import type { LabHost } from '../../lib/lab/index.js';
import * as helpers from './route.helpers.js';
import { rejects, rootNs, threadNamespaces, useRouteLab } from './route.helpers.js';

const P = BPFKIT_ROUTE_PROTOCOL;
const fx = useRouteLab('route-policy');
let a: LabHost;
let b: LabHost;
beforeAll(() => {
  ({ a, b } = fx);
});
const ipRoutes = (table: number | string, h: LabHost = a) => helpers.ipRoutes(table, h);
const state = (h: LabHost = a) => helpers.routingState(h);

describe('PolicyRoute', () => {
  const spec = {
    priority: 1000,
    fwmark: 0x10,
    table: 100,
    routes: [
      { dst: '0.0.0.0/0', via: '198.18.2.2' },
      { dst: '198.18.50.0/24', via: '198.18.1.2' },
      { dst: '2001:db8:50::/48', via: 'fd00:2::2' },
    ],
  };

  it('apply is idempotent, remove leaves no trace (witness: ip rule / ip route)', async () => {
    const ns = { netns: a.netns };
    const before = await state();
    const pr = await PolicyRoute.apply(spec, ns);
    expect(pr.changes).toEqual({ rulesAdded: 2, rulesDeleted: 0, rulesUnchanged: 0, routesAdded: 3, routesReplaced: 0, routesDeleted: 0, routesUnchanged: 0 });
    expect(await a.ip(['-4', 'rule', 'show'])).toContain(`1000:\tfrom all fwmark 0x10 lookup 100 proto ${P}`);
    expect(await a.ip(['-6', 'rule', 'show'])).toContain(`1000:\tfrom all fwmark 0x10 lookup 100 proto ${P}`);
    const routes = await ipRoutes(100);
    expect(routes).toBe(
      `default via 198.18.2.2 dev eth1 proto ${P} \n198.18.50.0/24 via 198.18.1.2 dev eth0 proto ${P} \n--\n` +
        `2001:db8:50::/48 via fd00:2::2 dev eth1 proto ${P} metric 1024 pref medium\n`,
    );
    const applied = await state();

    const again = await PolicyRoute.apply(spec, ns);
    expect(again.changes).toEqual({
      rulesAdded: 0,
      rulesDeleted: 0,
      rulesUnchanged: 2,
      routesAdded: 0,
      routesReplaced: 0,
      routesDeleted: 0,
      routesUnchanged: 3,
    });
    expect(await state()).toBe(applied);

    expect(await pr.remove()).toEqual({
      rulesAdded: 0,
      rulesDeleted: 2,
      rulesUnchanged: 0,
      routesAdded: 0,
      routesReplaced: 0,
      routesDeleted: 3,
      routesUnchanged: 0,
    });
    expect(await state()).toBe(before);
    expect((await PolicyRoute.remove(spec, ns)).rulesDeleted).toBe(0);
    expect(await state()).toBe(before);
  });

  it('apply converges a changed spec: replaces, prunes and re-keys only bpfkit objects', async () => {
    const ns = { netns: a.netns };
    const before = await state();
    await PolicyRoute.apply(
      {
        priority: 1010,
        fwmark: 0x30,
        table: 110,
        routes: [
          { dst: '0.0.0.0/0', via: '198.18.1.2' },
          { dst: '198.18.60.0/24', via: '198.18.1.2' },
        ],
      },
      ns,
    );
    // someone else's route in the same table is left alone
    await a.ip(['route', 'add', '198.18.61.0/24', 'via', '198.18.1.2', 'table', '110', 'proto', 'static']);
    const changed = await PolicyRoute.apply({ priority: 1010, fwmark: 0x31, table: 110, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] }, ns);
    expect(changed.changes).toEqual({
      rulesAdded: 1,
      rulesDeleted: 1,
      rulesUnchanged: 0,
      routesAdded: 0,
      routesReplaced: 1,
      routesDeleted: 1,
      routesUnchanged: 0,
    });
    const rules = await a.ip(['-4', 'rule', 'show']);
    expect(rules).toContain(`1010:\tfrom all fwmark 0x31 lookup 110 proto ${P}`);
    expect(rules).not.toContain('fwmark 0x30');
    expect(await a.ip(['-4', 'route', 'show', 'table', '110'])).toBe(
      `default via 198.18.2.2 dev eth1 proto ${P} \n198.18.61.0/24 via 198.18.1.2 dev eth0 proto static \n`,
    );
    // a route bpfkit did not create at a key the spec wants: ERR_EXISTS, nothing changes
    const snap = await state();
    const e = await rejects(PolicyRoute.apply({ priority: 1010, fwmark: 0x31, table: 110, routes: [{ dst: '198.18.61.0/24', via: '198.18.2.2' }] }, ns));
    expect(e).toMatchObject({ code: 'ERR_EXISTS', field: 'routes[0]' });
    expect(await state()).toBe(snap);

    await PolicyRoute.remove({ priority: 1010, fwmark: 0x31, table: 110 }, ns);
    await a.ip(['route', 'del', '198.18.61.0/24', 'table', '110']);
    expect(await state()).toBe(before);
  });

  it('a failing apply undoes its own changes', async () => {
    const ns = { netns: a.netns };
    const before = await state();
    const e = await rejects(
      PolicyRoute.apply(
        {
          priority: 1020,
          fwmark: 0x40,
          table: 120,
          routes: [
            { dst: '0.0.0.0/0', via: '198.18.2.2' },
            { dst: '198.18.70.0/24', via: '198.19.9.9' },
          ],
        },
        ns,
      ),
    );
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', errno: 101, field: 'routes[1]' });
    expect(await state()).toBe(before);
  });

  it('list() finds bpfkit objects after a "crash", cleanup() removes only those', async () => {
    const ns = { netns: a.netns };
    const before = await state();
    await PolicyRoute.applyAll(
      [
        { priority: 1030, fwmark: 0x50, table: 130, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] },
        { priority: 1031, iif: 'eth0', action: 'blackhole' },
        { priority: 1032, src: '2001:db8:1::/48', table: 131, routes: [{ dst: '::/0', via: 'fd00:1::2' }] },
      ],
      ns,
    );
    await IpRoute.add({ dst: '198.18.80.0/24', via: '198.18.1.2', table: 132 }, ns); // orphan bpfkit route
    await a.ip(['rule', 'add', 'pref', '1033', 'fwmark', '0x51', 'lookup', '130', 'proto', 'static']);
    const list = await PolicyRoute.list(ns);
    expect(list.map((s) => [s.family, s.rule?.priority ?? null, s.table, s.routes.map((r) => r.dst)])).toEqual([
      [4, 1030, 130, ['0.0.0.0/0']],
      [4, 1031, null, []],
      [6, 1032, 131, ['::/0']],
      [4, null, 132, ['198.18.80.0/24']],
    ]);
    expect(await PolicyRoute.cleanup(ns)).toMatchObject({ rulesDeleted: 3, routesDeleted: 3 });
    expect(await a.ip(['-4', 'rule', 'show'])).toContain('1033:\tfrom all fwmark 0x51 lookup 130 proto static');
    expect(await PolicyRoute.list(ns)).toEqual([]);
    await a.ip(['rule', 'del', 'pref', '1033']);
    expect(await state()).toBe(before);
  });

  it('targets a namespace by name, path or fd; no thread of the process changes namespace', async () => {
    const byName = await IpRule.list({ netns: b.netns });
    const byPath = await IpRule.list({ netns: b.netnsPath });
    const fd = openSync(b.netnsPath, 'r');
    try {
      expect(await IpRule.list({ netns: fd })).toEqual(byName);
    } finally {
      closeSync(fd);
    }
    expect(byPath).toEqual(byName);
    await PolicyRoute.apply({ priority: 1040, fwmark: 0x60, table: 140, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.1' }] }, { netns: b.netnsPath });
    expect(await b.ip(['-4', 'rule', 'show'])).toContain('1040:');
    expect(await a.ip(['-4', 'rule', 'show'])).not.toContain('1040:');
    await PolicyRoute.remove({ priority: 1040, fwmark: 0x60, table: 140, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.1' }] }, { netns: b.netns });
    expect(await b.ip(['-4', 'rule', 'show'])).not.toContain('1040:');
    expect(readlinkSync('/proc/self/ns/net')).toBe(rootNs);
    expect([...threadNamespaces()]).toEqual([rootNs]);
  });

  it('leaves no file descriptors behind, on success or failure', async () => {
    const ns = { netns: a.netns };
    const fds = () => readdirSync('/proc/self/fd').length;
    await IpRule.list(ns); // warm-up: lazily opened handles of the runtime
    const before = fds();
    for (let i = 0; i < 20; i++) {
      await PolicyRoute.apply({ priority: 1050, fwmark: 0x70, table: 150, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] }, ns);
      await PolicyRoute.remove({ priority: 1050, fwmark: 0x70, table: 150 }, ns);
      await rejects(IpRoute.add({ dst: '198.18.9.0/24', dev: 'nosuch0' }, ns));
      await rejects(IpRule.list({ netns: 'no-such-namespace-xyz' }));
      await rejects(IpRoute.add({ dst: '198.18.9.0/24', via: '198.19.7.7' }, ns));
    }
    expect(fds()).toBe(before);
  });

  it('dumps stay whole while the table changes underneath', async () => {
    const ns = { netns: a.netns };
    const routes = Array.from({ length: 2000 }, (_, i) => ({ dst: `198.18.${128 + (i >> 8)}.${i & 255}/32`, via: '198.18.1.2', table: 150 }));
    const adding = IpRoute.add(routes, ns);
    const lists = await Promise.all(Array.from({ length: 6 }, () => IpRoute.list({ ...ns, table: 150, family: 4 })));
    await adding;
    for (const l of lists) {
      expect(new Set(l.map((r) => r.dst)).size).toBe(l.length); // no duplicates from a torn dump
      expect(l.length).toBeLessThanOrEqual(2000);
    }
    expect((await IpRoute.list({ ...ns, table: 150 })).length).toBe(2000);
    expect((await a.ip(['-4', 'route', 'show', 'table', '150'])).trim().split('\n').length).toBe(2000);
    await IpRoute.delete(routes, ns);
    expect(await a.ip(['-4', 'route', 'show', 'table', '150'])).toBe('');
  });
});
