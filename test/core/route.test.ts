/**
 * IpRule and IpRoute against the real kernel,
 * inside lab namespaces only, with iproute2 run in the same namespace as the independent
 * witness (route.helpers.ts). The root namespace's rules are compared before and after.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BPFKIT_ROUTE_PROTOCOL, IpRoute, IpRule, PolicyRoute, type IpRuleSpec } from '../../lib/index.js';
import type { LabHost } from '../../lib/lab/index.js';
import * as helpers from './route.helpers.js';
import { rejects, useRouteLab } from './route.helpers.js';

const P = BPFKIT_ROUTE_PROTOCOL;
const fx = useRouteLab('route-test');
let a: LabHost;
beforeAll(() => {
  ({ a } = fx);
});
const ipRules = (h: LabHost = a) => helpers.ipRules(h);
const ipRoutes = (table: number | string, h: LabHost = a) => helpers.ipRoutes(table, h);
const state = (h: LabHost = a) => helpers.routingState(h);

describe('IpRule', () => {
  it('adds, lists and deletes IPv4 and IPv6 rules with every selector (witness: ip rule)', async () => {
    const ns = { netns: a.netns };
    const before = await ipRules();
    const specs: IpRuleSpec[] = [
      { priority: 1000, fwmark: 0x10, table: 100 },
      { priority: 1001, fwmark: 0x100, fwmask: 0xff00, iif: 'eth0', table: 101 },
      { priority: 1002, src: '198.18.0.0/16', dst: '198.18.128.0/17', tos: 0x10, table: 'main' },
      { priority: 1003, ipProto: 'tcp', sport: [1000, 2000], dport: 443, oif: 'eth1', table: 102 },
      { priority: 1004, src: '198.18.3.0/24', invert: true, action: 'blackhole' },
      { priority: 1005, ipProto: 17, action: 'unreachable' },
      { priority: 1006, fwmark: 7, action: 'prohibit', protocol: 'static' },
      { priority: 2000, src: '2001:db8::/32', dport: [53, 53], ipProto: 'udp', table: 200 },
      { priority: 2001, family: 6, fwmark: 0x20, table: 201 },
    ];
    await IpRule.add(specs, ns);
    const v4 = await a.ip(['-4', 'rule', 'show']);
    expect(v4).toContain(`1000:\tfrom all fwmark 0x10 lookup 100 proto ${P}`);
    expect(v4).toContain(`1001:\tfrom all fwmark 0x100/0xff00 iif eth0 lookup 101 proto ${P}`);
    expect(v4).toContain(`1002:\tfrom 198.18.0.0/16 to 198.18.128.0/17 tos 0x10 lookup main proto ${P}`);
    expect(v4).toContain(`1003:\tfrom all oif eth1 ipproto tcp sport 1000-2000 dport 443 lookup 102 proto ${P}`);
    expect(v4).toContain(`1004:\tnot from 198.18.3.0/24 blackhole proto ${P}`);
    expect(v4).toContain(`1005:\tfrom all ipproto udp unreachable proto ${P}`);
    expect(v4).toContain('1006:\tfrom all fwmark 0x7 prohibit proto static');
    const v6 = await a.ip(['-6', 'rule', 'show']);
    expect(v6).toContain(`2000:\tfrom 2001:db8::/32 ipproto udp dport 53 lookup 200 proto ${P}`);
    expect(v6).toContain(`2001:\tfrom all fwmark 0x20 lookup 201 proto ${P}`);

    const mine = await IpRule.list({ ...ns, protocol: 'bpfkit' });
    expect(mine).toEqual([
      { family: 4, priority: 1000, action: 'table', table: 100, fwmark: 0x10, fwmask: 0xffffffff, invert: false, protocol: P },
      { family: 4, priority: 1001, action: 'table', table: 101, fwmark: 0x100, fwmask: 0xff00, iif: 'eth0', invert: false, protocol: P },
      { family: 4, priority: 1002, action: 'table', table: 254, src: '198.18.0.0/16', dst: '198.18.128.0/17', tos: 0x10, invert: false, protocol: P },
      { family: 4, priority: 1003, action: 'table', table: 102, oif: 'eth1', ipProto: 6, sport: [1000, 2000], dport: [443, 443], invert: false, protocol: P },
      { family: 4, priority: 1004, action: 'blackhole', src: '198.18.3.0/24', invert: true, protocol: P },
      { family: 4, priority: 1005, action: 'unreachable', ipProto: 17, invert: false, protocol: P },
      { family: 6, priority: 2000, action: 'table', table: 200, src: '2001:db8::/32', ipProto: 17, dport: [53, 53], invert: false, protocol: P },
      { family: 6, priority: 2001, action: 'table', table: 201, fwmark: 0x20, fwmask: 0xffffffff, invert: false, protocol: P },
    ]);
    // the kernel's own rules are listed too, in evaluation order
    const all = await IpRule.list({ ...ns, family: 4 });
    expect(all.map((r) => r.priority)).toEqual([0, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 32766, 32767]);
    expect(all[0]).toEqual({ family: 4, priority: 0, action: 'table', table: 255, invert: false, protocol: 2 });

    // one alone, the rest as a batch
    await IpRule.delete(specs[6], ns);
    await IpRule.delete(
      specs.filter((_, i) => i !== 6),
      ns,
    );
    expect(await ipRules()).toBe(before);
  });

  it('duplicate add is ERR_EXISTS (errno 17) and a failed batch leaves nothing behind', async () => {
    const ns = { netns: a.netns };
    const before = await ipRules();
    await IpRule.add({ priority: 1100, fwmark: 0x11, table: 110 }, ns);
    const withOne = await ipRules();
    const e = await rejects(IpRule.add({ priority: 1100, fwmark: 0x11, table: 110 }, ns));
    expect(e).toMatchObject({ code: 'ERR_EXISTS', errno: 17, syscall: 'netlink(RTM_NEWRULE)' });
    expect(await ipRules()).toBe(withOne);
    // batch: two new rules then the duplicate -> the two are taken back
    const e2 = await rejects(
      IpRule.add(
        [
          { priority: 1101, fwmark: 0x12, table: 111 },
          { priority: 1102, fwmark: 0x13, table: 112 },
          { priority: 1100, fwmark: 0x11, table: 110 },
        ],
        ns,
      ),
    );
    expect(e2).toMatchObject({ code: 'ERR_EXISTS', errno: 17, field: 'rules[2]' });
    expect(await ipRules()).toBe(withOne);
    await IpRule.delete({ priority: 1100, fwmark: 0x11, table: 110 }, ns);
    expect(await ipRules()).toBe(before);
    // deleting what is not there
    const e3 = await rejects(IpRule.delete({ priority: 1100, fwmark: 0x11, table: 110 }, ns));
    expect(e3.code).toBe('ERR_NOT_FOUND');
  });

  it('bad input is refused before the kernel changes, naming the field', async () => {
    const ns = { netns: a.netns };
    const before = await state();
    const cases: [() => Promise<unknown>, string, string][] = [
      [() => IpRule.add({ priority: 1, src: '10.0.0.0/33', table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'src'],
      [() => IpRule.add({ priority: 1, dport: 70000, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'dport'],
      [() => IpRule.add({ priority: 1, sport: [10, 5], table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'sport'],
      [() => IpRule.add({ priority: 1, fwmark: 2 ** 32, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'fwmark'],
      [() => IpRule.add({ priority: 1, fwmark: 0x10, fwmask: 0x0f, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'fwmark'],
      [() => IpRule.add({ priority: 1, fwmark: 0, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'fwmark'],
      [() => IpRule.add({ priority: 1, tos: 0x11, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'tos'],
      [() => IpRule.add({ priority: 1, src: '198.18.0.0/16', dst: '2001:db8::/32', table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'dst'],
      [() => IpRule.add({ fwmark: 1, table: 100 } as never, ns), 'ERR_INVALID_ARGUMENT', 'priority'],
      [() => IpRule.add({ priority: -1, table: 100 }, ns), 'ERR_INVALID_ARGUMENT', 'priority'],
      [() => IpRule.add({ priority: 1 }, ns), 'ERR_INVALID_ARGUMENT', 'table'],
      [() => IpRule.add({ priority: 1, action: 'blackhole', table: 5 }, ns), 'ERR_INVALID_ARGUMENT', 'table'],
      [() => IpRule.add({ priority: 1, table: 100, bogus: 1 } as never, ns), 'ERR_INVALID_ARGUMENT', 'bogus'],
      [
        () =>
          IpRule.add(
            [
              { priority: 5, table: 5 },
              { priority: 1, table: 100, ipProto: 'tcpx' as never },
            ],
            ns,
          ),
        'ERR_INVALID_ARGUMENT',
        'rules[1].ipProto',
      ],
      [() => IpRule.add({ priority: 1, iif: 'nosuch0', table: 100 }, ns), 'ERR_NO_SUCH_INTERFACE', ''],
      [() => IpRoute.add({ dst: '198.18.0.0/33', dev: 'eth0' }, ns), 'ERR_INVALID_ARGUMENT', 'dst'],
      [() => IpRoute.add({ dst: '198.18.9.1/24', dev: 'eth0' }, ns), 'ERR_INVALID_ARGUMENT', 'dst'],
      [() => IpRoute.add({ dst: '198.18.9.0/24', via: 'fd00::1' }, ns), 'ERR_INVALID_ARGUMENT', 'via'],
      [() => IpRoute.add({ dst: '198.18.9.0/24', dev: 'nosuch0' }, ns), 'ERR_NO_SUCH_INTERFACE', ''],
      [() => IpRoute.add({ dst: '198.18.9.0/24' }, ns), 'ERR_INVALID_ARGUMENT', 'route'],
      [() => IpRoute.add({ dst: '198.18.9.0/24', via: '198.18.1.2', metric: 2 ** 32 }, ns), 'ERR_INVALID_ARGUMENT', 'metric'],
      [
        () => IpRoute.add({ dst: '198.18.9.0/24', nexthops: [{ via: '198.18.1.2', weight: 0 }, { via: '198.18.2.2' }] }, ns),
        'ERR_INVALID_ARGUMENT',
        'nexthops[0].weight',
      ],
      [() => IpRoute.add({ dst: '198.18.9.0/24', type: 'blackhole', via: '198.18.1.2' }, ns), 'ERR_INVALID_ARGUMENT', 'type'],
      [() => IpRoute.add({ dst: '198.18.9.0/24', via: '198.18.1.2', table: 0 }, ns), 'ERR_INVALID_ARGUMENT', 'table'],
      [
        () => PolicyRoute.apply({ priority: 10, fwmark: 1, table: 100, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2', table: 5 } as never] }, ns),
        'ERR_INVALID_ARGUMENT',
        'routes[0].table',
      ],
      [
        () => PolicyRoute.apply({ priority: 10, fwmark: 1, table: 254, routes: [{ dst: '0.0.0.0/0', via: '198.18.2.2' }] }, ns),
        'ERR_INVALID_ARGUMENT',
        'table',
      ],
      [
        () => PolicyRoute.apply({ priority: 10, src: '198.18.0.0/16', table: 100, routes: [{ dst: '::/0', via: 'fd00:2::2' }] }, ns),
        'ERR_INVALID_ARGUMENT',
        'routes[0].dst',
      ],
      [() => IpRule.list({ netns: 'no-such-namespace-xyz' }), 'ERR_NOT_FOUND', ''],
      [() => IpRule.list({ netns: '../etc' }), 'ERR_INVALID_ARGUMENT', 'netns'],
    ];
    for (const [p, code, field] of cases) {
      const e = await rejects(p());
      expect({ code: e.code, field: e.field ?? '' }, e.message).toEqual({ code, field });
    }
    const dev = await rejects(IpRoute.add({ dst: '198.18.9.0/24', dev: 'nosuch0' }, ns));
    expect(dev).toMatchObject({ errno: 19, syscall: 'netlink(RTM_GETLINK)' });
    expect(dev.message).toContain("'nosuch0'");
    expect(await state()).toBe(before);
  });

  it('refuses a delete the kernel would apply to a different rule', async () => {
    const ns = { netns: a.netns };
    const before = await ipRules();
    // same priority: the first rule has every field of the second plus a fwmark
    await IpRule.add(
      [
        { priority: 1200, fwmark: 0x20, table: 120 },
        { priority: 1200, table: 120 },
      ],
      ns,
    );
    const both = await ipRules();
    const e = await rejects(IpRule.delete({ priority: 1200, table: 120 }, ns));
    expect(e.code).toBe('ERR_BUSY');
    expect(await ipRules()).toBe(both);
    // deleting them in kernel order works
    await IpRule.delete(
      [
        { priority: 1200, fwmark: 0x20, table: 120 },
        { priority: 1200, table: 120 },
      ],
      ns,
    );
    expect(await ipRules()).toBe(before);
  });
});

describe('IpRoute', () => {
  it('adds, replaces, lists and deletes IPv4/IPv6 routes of every type (witness: ip route)', async () => {
    const ns = { netns: a.netns };
    await IpRoute.add(
      [
        { dst: '198.18.10.0/24', via: '198.18.1.2', table: 300 },
        { dst: '198.18.11.0/24', dev: 'eth1', table: 300, metric: 50, src: '198.18.2.1' },
        {
          dst: '198.18.12.0/24',
          table: 300,
          nexthops: [
            { via: '198.18.1.2', weight: 3 },
            { via: '198.18.2.2', dev: 'eth1' },
          ],
        },
        { dst: '198.18.13.0/24', type: 'blackhole', table: 300 },
        { dst: '198.18.14.0/24', type: 'unreachable', table: 300 },
        { dst: '198.18.15.0/24', type: 'prohibit', table: 300, tos: 0x10 },
        { dst: '198.18.16.1/32', type: 'local', dev: 'lo', table: 300 },
        { dst: '198.18.17.0/24', via: '198.18.99.1', dev: 'eth0', onlink: true, table: 300 },
        { dst: 'default', via: '198.18.2.2', table: 300, protocol: 'static' },
        { dst: '2001:db8:10::/48', via: 'fd00:1::2', table: 300 },
        {
          dst: '2001:db8:11::/48',
          table: 300,
          nexthops: [
            { via: 'fd00:1::2', dev: 'eth0' },
            { via: 'fd00:2::2', dev: 'eth1', weight: 2 },
          ],
        },
        { dst: '2001:db8:12::/48', type: 'blackhole', table: 300, metric: 7 },
        { dst: '::/0', dev: 'eth0', table: 300 },
      ],
      ns,
    );
    const v4 = await a.ip(['-4', 'route', 'show', 'table', '300']);
    expect(
      v4
        .trim()
        .split('\n')
        .map((l) => l.trim()),
    ).toEqual([
      'default via 198.18.2.2 dev eth1 proto static',
      `198.18.10.0/24 via 198.18.1.2 dev eth0 proto ${P}`,
      `198.18.11.0/24 dev eth1 proto ${P} scope link src 198.18.2.1 metric 50`,
      `198.18.12.0/24 proto ${P}`,
      'nexthop via 198.18.1.2 dev eth0 weight 3',
      'nexthop via 198.18.2.2 dev eth1 weight 1',
      `blackhole 198.18.13.0/24 proto ${P}`,
      `unreachable 198.18.14.0/24 proto ${P}`,
      `prohibit 198.18.15.0/24 tos 0x10 proto ${P}`,
      `local 198.18.16.1 dev lo proto ${P} scope host`,
      `198.18.17.0/24 via 198.18.99.1 dev eth0 proto ${P} onlink`,
    ]);
    const v6 = await a.ip(['-6', 'route', 'show', 'table', '300']);
    expect(
      v6
        .trim()
        .split('\n')
        .map((l) => l.trim()),
    ).toEqual([
      `2001:db8:10::/48 via fd00:1::2 dev eth0 proto ${P} metric 1024 pref medium`,
      `2001:db8:11::/48 proto ${P} metric 1024 pref medium`,
      'nexthop via fd00:1::2 dev eth0 weight 1',
      'nexthop via fd00:2::2 dev eth1 weight 2',
      `blackhole 2001:db8:12::/48 dev lo proto ${P} metric 7 pref medium`,
      `default dev eth0 proto ${P} metric 1024 pref medium`,
    ]);
    const listed = await IpRoute.list({ ...ns, table: 300, family: 4 });
    expect(listed.find((r) => r.dst === '198.18.12.0/24')).toEqual({
      family: 4,
      table: 300,
      dst: '198.18.12.0/24',
      type: 'unicast',
      protocol: P,
      scope: 'global',
      metric: 0,
      nexthops: [
        { via: '198.18.1.2', dev: 'eth0', ifindex: expect.any(Number), weight: 3, onlink: false },
        { via: '198.18.2.2', dev: 'eth1', ifindex: expect.any(Number), weight: 1, onlink: false },
      ],
    });
    expect(listed.find((r) => r.dst === '198.18.11.0/24')).toMatchObject({ dev: 'eth1', scope: 'link', src: '198.18.2.1', metric: 50 });
    expect((await IpRoute.list({ ...ns, table: 300, protocol: 'static' })).map((r) => r.dst)).toEqual(['0.0.0.0/0']);

    // add again: ERR_EXISTS, unchanged
    const snap = await ipRoutes(300);
    const e = await rejects(IpRoute.add({ dst: '198.18.10.0/24', via: '198.18.2.2', table: 300 }, ns));
    expect(e).toMatchObject({ code: 'ERR_EXISTS', errno: 17 });
    expect(await ipRoutes(300)).toBe(snap);

    // replace: existing route changes, a new one is created
    await IpRoute.replace(
      [
        { dst: '198.18.10.0/24', via: '198.18.2.2', table: 300 },
        { dst: '198.18.18.0/24', via: '198.18.2.2', table: 300 },
        { dst: '2001:db8:10::/48', via: 'fd00:2::2', dev: 'eth1', table: 300 },
      ],
      ns,
    );
    const after = await ipRoutes(300);
    expect(after).toContain(`198.18.10.0/24 via 198.18.2.2 dev eth1 proto ${P}`);
    expect(after).toContain(`198.18.18.0/24 via 198.18.2.2 dev eth1 proto ${P}`);
    expect(after).toContain(`2001:db8:10::/48 via fd00:2::2 dev eth1 proto ${P} metric 1024`);

    // delete by identity, and with contents that must match
    const mismatch = await rejects(IpRoute.delete({ dst: '198.18.10.0/24', via: '198.18.1.2', table: 300 }, ns));
    expect(mismatch.code).toBe('ERR_NOT_FOUND');
    await IpRoute.delete(
      [
        { dst: '198.18.10.0/24', via: '198.18.2.2', table: 300 },
        { dst: '198.18.11.0/24', table: 300, metric: 50 },
        { dst: '198.18.12.0/24', table: 300 },
        { dst: '198.18.13.0/24', table: 300 },
        { dst: '198.18.14.0/24', table: 300 },
        { dst: '198.18.15.0/24', table: 300, tos: 0x10 },
        { dst: '198.18.16.1/32', table: 300, type: 'local' },
        { dst: '198.18.17.0/24', table: 300 },
        { dst: '198.18.18.0/24', table: 300 },
        { dst: '0.0.0.0/0', table: 300, protocol: 'static' },
        { dst: '2001:db8:10::/48', table: 300 },
        { dst: '2001:db8:11::/48', table: 300 },
        { dst: '2001:db8:12::/48', table: 300, metric: 7 },
        { dst: '::/0', table: 300 },
      ],
      ns,
    );
    expect(await ipRoutes(300)).toBe('--\n');
    const gone = await rejects(IpRoute.delete({ dst: '198.18.10.0/24', table: 300 }, ns));
    expect(gone.code).toBe('ERR_NOT_FOUND');
  });

  it('a batch with a failing route is undone: the kernel error (errno, text) names the route', async () => {
    const ns = { netns: a.netns };
    await IpRoute.add({ dst: '198.18.20.0/24', via: '198.18.1.2', table: 301 }, ns);
    const before = await ipRoutes(301);
    const e = await rejects(
      IpRoute.add(
        [
          { dst: '198.18.21.0/24', via: '198.18.1.2', table: 301 },
          { dst: '198.18.22.0/24', via: '198.18.2.2', table: 301 },
          { dst: '198.18.23.0/24', via: '198.19.7.7', table: 301 }, // no route to the gateway
        ],
        ns,
      ),
    );
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', errno: 101, field: 'routes[2]', syscall: 'netlink(RTM_NEWROUTE)' });
    expect(e.message).toContain('Nexthop has invalid gateway');
    expect(await ipRoutes(301)).toBe(before);

    // replace batch: the replaced route gets its old contents back
    const e2 = await rejects(
      IpRoute.replace(
        [
          { dst: '198.18.20.0/24', via: '198.18.2.2', table: 301 },
          { dst: '198.18.24.0/24', via: '198.19.7.7', table: 301 },
        ],
        ns,
      ),
    );
    expect(e2).toMatchObject({ errno: 101, field: 'routes[1]' });
    expect(await ipRoutes(301)).toBe(before);
    await IpRoute.delete({ dst: '198.18.20.0/24', table: 301 }, ns);
  });
});
