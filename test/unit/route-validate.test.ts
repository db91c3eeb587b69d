/**
 * Rule and route spec validation, name tables and the descriptions planned requests
 * carry, without the kernel: no root, no namespace, no addon. Everything imported here
 * reaches only lib/core/errors, codecs, netns and native.ts's module (which loads the
 * addon lazily, on first native() call); the last test checks it never was loaded.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import { netnsPath } from '../../lib/core/net/netns.js';
import { BPFKIT_ROUTE_PROTOCOL, PROTOCOL_NAMES, ROUTE_TYPES, RULE_ACTIONS, TABLE_NAMES, lookupName } from '../../lib/route/names.js';
import { opError } from '../../lib/route/netlink.js';
import { describeRoute, routeFamily, routeOp } from '../../lib/route/route.js';
import { describeRule, planRuleDeletes, ruleKey, ruleOp } from '../../lib/route/rule.js';
import type { IpRouteSpec, IpRuleSpec } from '../../lib/route/types.js';
import { normalizeRoute, normalizeRule, parsePrefix, parseProtocol, parseTable } from '../../lib/route/validate.js';

/** Run fn, expect an ERR_INVALID_ARGUMENT BpfkitError, return it. */
function invalid(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    expect((e as BpfkitError).code).toBe('ERR_INVALID_ARGUMENT');
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError, nothing was thrown');
}
const rule = (spec: Record<string, unknown>, field = '') => normalizeRule(spec as unknown as IpRuleSpec, field);
const route = (spec: Record<string, unknown>, field = '') => normalizeRoute(spec as unknown as IpRouteSpec, field);

describe('name tables', () => {
  it('maps names to the kernel numbers, own keys only', () => {
    expect(BPFKIT_ROUTE_PROTOCOL).toBe(165);
    expect([parseTable('main', 't'), parseTable('local', 't'), parseTable('default', 't'), parseTable(100, 't')]).toEqual([254, 255, 253, 100]);
    expect([parseProtocol('bpfkit', 'p'), parseProtocol('static', 'p'), parseProtocol('kernel', 'p'), parseProtocol(0, 'p')]).toEqual([165, 4, 2, 0]);
    expect(lookupName(ROUTE_TYPES, 'throw')).toBe(9);
    expect(lookupName(RULE_ACTIONS, 'prohibit')).toBe(8);
    // inherited properties of Object.prototype are not names
    for (const t of [TABLE_NAMES, PROTOCOL_NAMES, ROUTE_TYPES, RULE_ACTIONS]) {
      expect(lookupName(t, 'constructor')).toBeUndefined();
      expect(lookupName(t, 'toString')).toBeUndefined();
    }
    expect(lookupName(TABLE_NAMES, 5)).toBeUndefined();
  });

  it('refuses unknown names and out-of-range numbers, naming the field', () => {
    const cases: [() => unknown, string, RegExp][] = [
      [() => parseTable('nope', 'table'), 'table', /unknown table 'nope'/],
      [() => parseTable('constructor', 'table'), 'table', /unknown table/],
      [() => parseTable(0, 'table'), 'table', /integer in 1\.\.4294967295/],
      [() => parseTable(2 ** 32, 'table'), 'table', /integer in 1\.\.4294967295/],
      [() => parseTable(1.5, 'table'), 'table', /got 1.5/],
      [() => parseProtocol('toString', 'protocol'), 'protocol', /unknown route protocol/],
      [() => parseProtocol(256, 'protocol'), 'protocol', /0\.\.255/],
    ];
    for (const [fn, field, msg] of cases) {
      const e = invalid(fn);
      expect(e.field).toBe(field);
      expect(e.message).toMatch(msg);
    }
  });
});

describe('rule specs', () => {
  it('normalises a valid rule with bpfkit protocol and inferred family', () => {
    expect(rule({ priority: 1000, fwmark: 0x10, table: 100 })).toEqual({
      family: 4,
      priority: 1000,
      action: 1,
      table: 100,
      fwmark: 0x10,
      fwmask: 0xffffffff,
      protocol: 165,
    });
    const r6 = rule({ priority: 7, src: '2001:db8::/32', ipProto: 'udp', dport: [53, 54], invert: true, table: 'main', protocol: 'static' });
    expect(r6).toEqual({ family: 6, priority: 7, action: 1, table: 254, src: '2001:db8::', srcLen: 32, ipProto: 17, dport: [53, 54], flags: 2, protocol: 4 });
    // /0 selectors match everything and are dropped, as the kernel does
    expect(rule({ priority: 1, dst: '0.0.0.0/0', action: 'blackhole' })).toEqual({ family: 4, priority: 1, action: 6, protocol: 165 });
  });

  it('refuses bad CIDRs, priorities, tables, marks, masks, ports and names', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ priority: 1, table: 1, src: '198.18.0.1/24' }, 'src', /host bits|198\.18\.0\.1\/24/],
      [{ priority: 1, table: 1, dst: '198.18.0.0/33' }, 'dst', /prefix length/],
      [{ priority: 1, table: 1, src: '300.1.1.1/32' }, 'src', /valid IPv4/],
      [{ priority: 1, table: 1, dst: 'fd00::/129' }, 'dst', /prefix length/],
      [{ priority: 1, table: 1, src: 42 }, 'src', /CIDR/],
      [{ table: 100 }, 'priority', /is required/],
      [{ priority: -1, table: 1 }, 'priority', /0\.\.4294967295/],
      [{ priority: 2 ** 32, table: 1 }, 'priority', /0\.\.4294967295/],
      [{ priority: 1.5, table: 1 }, 'priority', /got 1.5/],
      [{ priority: 1 }, 'table', /required for action 'table'/],
      [{ priority: 1, table: 0 }, 'table', /integer in 1\.\./],
      [{ priority: 1, table: 'mian' }, 'table', /unknown table 'mian'/],
      [{ priority: 1, action: 'blackhole', table: 5 }, 'table', /not allowed with action 'blackhole'/],
      [{ priority: 1, action: 'goto', table: 5 }, 'action', /unknown action 'goto'/],
      [{ priority: 1, action: 'constructor', table: 5 }, 'action', /unknown action/],
      [{ priority: 1, table: 1, fwmark: 2 ** 32 }, 'fwmark', /4294967295/],
      [{ priority: 1, table: 1, fwmark: -1 }, 'fwmark', /0\.\.4294967295/],
      [{ priority: 1, table: 1, fwmark: 0x10, fwmask: 0 }, 'fwmask', /zero mask/],
      [{ priority: 1, table: 1, fwmark: 0 }, 'fwmark', /matches every packet/],
      [{ priority: 1, table: 1, fwmark: 0x1ff, fwmask: 0xff }, 'fwmark', /outside fwmask 0xff/],
      [{ priority: 1, table: 1, fwmask: 2 ** 32 }, 'fwmask', /4294967295/],
      [{ priority: 1, table: 1, tos: 0x11 }, 'tos', /ECN bits/],
      [{ priority: 1, table: 1, dport: 0 }, 'dport', /1 to 65534/],
      [{ priority: 1, table: 1, sport: 65535 }, 'sport', /1 to 65534/],
      [{ priority: 1, table: 1, dport: [90, 80] }, 'dport', /reversed/],
      [{ priority: 1, table: 1, dport: [80] }, 'dport', /\[from, to\]/],
      [{ priority: 1, table: 1, dport: [80, 70000] }, 'dport[1]', /1 to 65534/],
      [{ priority: 1, table: 1, ipProto: 'tcpp' }, 'ipProto', /unknown IP protocol/],
      [{ priority: 1, table: 1, ipProto: 0 }, 'ipProto', /1\.\.255/],
      [{ priority: 1, table: 1, iif: 'a/b' }, 'iif', /not a valid interface name/],
      [{ priority: 1, table: 1, oif: 'x'.repeat(16) }, 'oif', /not a valid interface name/],
      [{ priority: 1, table: 1, invert: 1 }, 'invert', /boolean/],
      [{ priority: 1, table: 1, protocol: 300 }, 'protocol', /0\.\.255/],
      [{ priority: 1, table: 1, fwmak: 1 }, 'fwmak', /unknown rule field/],
    ];
    for (const [spec, field, msg] of cases) {
      const e = invalid(() => rule(spec));
      expect([e.field, e.message], JSON.stringify(spec)).toEqual([field, expect.stringMatching(msg)]);
    }
    // in a batch the field carries the index
    expect(invalid(() => rule({ priority: 1, table: 1, dport: 0 }, 'rules[3]')).field).toBe('rules[3].dport');
    expect(invalid(() => rule(null as unknown as Record<string, unknown>, 'rules[0]')).field).toBe('rules[0]');
  });

  it('refuses family mismatches between family, src and dst', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ priority: 1, table: 1, src: '198.18.0.0/24', dst: '2001:db8::/32' }, 'dst'],
      [{ priority: 1, table: 1, family: 6, src: '198.18.0.0/24' }, 'src'],
      [{ priority: 1, table: 1, family: 4, dst: 'fd00::/8' }, 'dst'],
      [{ priority: 1, table: 1, family: 5 }, 'family'],
    ];
    for (const [spec, field] of cases) {
      const e = invalid(() => rule(spec));
      expect(e.field, JSON.stringify(spec)).toBe(field);
      expect(e.message).toMatch(/IPv|4 or 6/);
    }
  });
});

describe('route specs', () => {
  it('normalises defaults the way the kernel does', () => {
    expect(route({ dst: '198.18.10.0/24', via: '198.18.2.2', table: 100 })).toEqual({
      family: 4,
      table: 100,
      dst: '198.18.10.0',
      dstLen: 24,
      tos: 0,
      metric: 0,
      type: 1,
      scope: 0,
      protocol: 165,
      nexthops: [{ via: '198.18.2.2', weight: 1, flags: 0 }],
    });
    const v6 = route({ dst: 'default', via: 'fd00:2::2' });
    expect([v6.family, v6.dst, v6.dstLen, v6.metric, v6.table]).toEqual([6, '::', 0, 1024, 254]);
    expect(route({ dst: '198.18.3.0/24', dev: 'eth0' }).scope).toBe(253); // link: no gateway
    expect(route({ dst: '198.18.3.1/32', type: 'local', dev: 'eth0' }).scope).toBe(254); // host
    expect(route({ dst: '198.18.4.0/24', type: 'blackhole' }).nexthops).toEqual([]);
    expect(route({ dst: '2001:db8::/32', dev: 'eth0', metric: 0 }).metric).toBe(1024); // IPv6: 0 means the default
    const ecmp = route({
      dst: '198.18.5.0/24',
      nexthops: [
        { via: '198.18.1.2', weight: 3 },
        { via: '198.18.2.2', dev: 2, onlink: true },
      ],
    });
    expect(ecmp.nexthops).toEqual([
      { via: '198.18.1.2', weight: 3, flags: 0 },
      { via: '198.18.2.2', dev: 2, weight: 1, flags: 4 },
    ]);
  });

  it('refuses bad prefixes, gateways, next hops, metrics, scopes and types', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ dst: '198.18.10.1/24', via: '198.18.2.2' }, 'dst', /host bits|198\.18\.10\.1\/24/],
      [{ dst: '198.18.10.0/40', via: '198.18.2.2' }, 'dst', /prefix length/],
      [{ dst: 'nope', via: '198.18.2.2' }, 'dst', /valid IPv4/],
      [{ dst: '198.18.10.0/24', via: 'fd00::1' }, 'via', /expected an IPv4 address/],
      [{ dst: 'fd00:10::/64', via: '198.18.2.2' }, 'via', /expected an IPv6 address/],
      [{ dst: '198.18.10.0/24', family: 6, via: '198.18.2.2' }, 'dst', /is IPv4, not IPv6/],
      [{ dst: '198.18.10.0/24', family: 7 }, 'family', /4 or 6/],
      [{ dst: '198.18.10.0/24' }, 'route', /needs via, dev or nexthops/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', table: 0 }, 'table', /integer in 1\.\./],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', table: 'toString' }, 'table', /unknown table/],
      [{ dst: '198.18.10.0/24', type: 'nat' }, 'type', /unknown route type 'nat'/],
      [{ dst: '198.18.10.0/24', type: 'constructor' }, 'type', /unknown route type/],
      [{ dst: '198.18.10.0/24', type: 'blackhole', via: '198.18.2.2' }, 'type', /has no next hop/],
      [{ dst: '198.18.10.1/32', type: 'local', via: '198.18.2.2', dev: 'eth0' }, 'dev', /local route needs dev/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', weight: 2 }, 'weight', /unknown route field/],
      [{ dst: '198.18.10.0/24', nexthops: [{ via: '198.18.2.2', weight: 2 }] }, 'nexthops[0].weight', /only apply to multipath/],
      [{ dst: '198.18.10.0/24', nexthops: [{ via: '198.18.2.2', weight: 0 }, { via: '198.18.1.2' }] }, 'nexthops[0].weight', /1 to 256/],
      [{ dst: '198.18.10.0/24', nexthops: [] }, 'nexthops', /non-empty/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', nexthops: [{ via: '198.18.1.2' }] }, 'nexthops', /not both/],
      [{ dst: '198.18.10.0/24', nexthops: [{}] }, 'nexthops[0]', /needs via, dev or both/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', onlink: true }, 'onlink', /needs both via and dev/],
      [{ dst: '198.18.10.0/24', dev: 0 }, 'dev', /positive integer/],
      [{ dst: '198.18.10.0/24', dev: 'eth 0' }, 'dev', /not a valid interface name/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', metric: -1 }, 'metric', /0\.\.4294967295/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', scope: 'galaxy' }, 'scope', /global, site, link, host/],
      [{ dst: '198.18.10.0/24', via: '198.18.2.2', scope: 255 }, 'scope', /0-254/],
      [{ dst: 'fd00:10::/64', dev: 'eth0', scope: 'link' }, 'scope', /IPv6 routes have no scope/],
      [{ dst: 'fd00:10::/64', dev: 'eth0', tos: 4 }, 'tos', /cannot select on TOS/],
      [{ dst: '198.18.10.0/24', dev: 'eth0', tos: 1 }, 'tos', /ECN/],
      [{ dst: '198.18.10.0/24', dev: 'eth0', src: 'fd00::1' }, 'src', /expected an IPv4 address/],
      [{ dst: '198.18.10.0/24', dev: 'eth0', protocol: 'ospff' }, 'protocol', /unknown route protocol/],
    ];
    for (const [spec, field, msg] of cases) {
      const e = invalid(() => route(spec));
      expect([e.field, e.message], JSON.stringify(spec)).toEqual([field, expect.stringMatching(msg)]);
    }
    expect(invalid(() => route({ dst: '198.18.10.0/24', via: 'x' }, 'routes[4]')).field).toBe('routes[4].via');
  });

  it('lets PolicyRoute own table and protocol, and pins the family', () => {
    const forced = { table: 100, protocol: 165, family: 4 as const };
    expect(normalizeRoute({ dst: 'default', via: '198.18.2.2' }, 'r', forced).table).toBe(100);
    expect(invalid(() => normalizeRoute({ dst: 'default', via: '198.18.2.2', table: 5 }, 'r', forced)).field).toBe('r.table');
    expect(invalid(() => normalizeRoute({ dst: 'default', via: '198.18.2.2', protocol: 'static' }, 'r', forced)).field).toBe('r.protocol');
    expect(invalid(() => normalizeRoute({ dst: 'fd00::/8', via: 'fd00::1' }, 'r', forced)).message).toMatch(/is IPv6, but this rule is IPv4/);
    // a delete may name a route by its identity alone
    expect(normalizeRoute({ dst: '198.18.10.0/24' }, '', { partial: true }).nexthops).toEqual([]);
    expect([routeFamily({ dst: 'default', via: 'fd00::1' }), routeFamily({ dst: '198.18.0.0/16' }), routeFamily({ dst: 'x', family: 6 })]).toEqual([6, 4, 6]);
  });

  it('parsePrefix checks the family it is asked for', () => {
    expect(parsePrefix('2001:db8::/32', 'p', 6).prefixLen).toBe(32);
    expect(invalid(() => parsePrefix('2001:db8::/32', 'p', 4)).message).toBe('p: 2001:db8::/32 is IPv6, expected IPv4');
  });
});

describe('planned requests describe themselves', () => {
  const r1 = rule({ priority: 1000, fwmark: 0x10, table: 100 });
  const r2 = rule({ priority: 1000, fwmark: 0x10, iif: 'eth0', table: 100 });

  it('in ip rule / ip route words, undo included', () => {
    const add = ruleOp('add', r1, 'rules[0]');
    expect(add.describe()).toBe('rule 1000: from all fwmark 0x10/0xffffffff lookup 100');
    expect(add.field).toBe('rules[0]');
    const back = add.undo?.();
    expect([back?.op.cmd, back?.describe()]).toEqual(['delete', 'rule 1000: from all fwmark 0x10/0xffffffff lookup 100']);
    const r6 = rule({ priority: 5, src: '2001:db8::/32', dport: 443, ipProto: 'tcp', invert: true, action: 'prohibit' });
    expect(describeRule(r6)).toBe('rule 5: not from 2001:db8::/32 ipproto 6 dport 443-443 prohibit (IPv6)');

    const rt = route({ dst: '198.18.10.0/24', via: '198.18.2.2', table: 100, metric: 7 });
    const op = routeOp('add', rt, 'routes[2]', () => routeOp('delete', rt));
    expect(op.describe()).toBe('route 198.18.10.0/24 via 198.18.2.2 table 100 metric 7');
    expect(op.undo?.().describe()).toBe('route 198.18.10.0/24 via 198.18.2.2 table 100 metric 7');
    expect(describeRoute(route({ dst: 'default', family: 6, type: 'unreachable', table: 9 }))).toBe('unreachable default table 9 metric 1024 (IPv6)');
    expect(describeRoute(route({ dst: '198.18.5.0/24', nexthops: [{ via: '198.18.1.2' }, { dev: 'eth1' }] }))).toBe(
      '198.18.5.0/24 nexthops 198.18.1.2,eth1 table 254',
    );
  });

  it('kernel errors name the request, the field and the errno', () => {
    const rt = route({ dst: '198.18.10.0/24', via: '198.18.2.2', table: 100 });
    const e = opError(routeOp('add', rt, 'routes[2]'), { index: 2, errno: 17, message: '' });
    expect(e.message).toBe('routes[2]: cannot add route 198.18.10.0/24 via 198.18.2.2 table 100: it already exists (netlink RTM_NEWROUTE: EEXIST 17)');
    expect([e.code, e.field, e.errno, e.syscall, e.details]).toEqual(['ERR_EXISTS', 'routes[2]', 17, 'netlink(RTM_NEWROUTE)', { index: 2 }]);
    const d = opError(ruleOp('delete', r1), { index: 0, errno: 2, message: '', uncertain: true });
    expect(d.message).toBe('cannot delete rule 1000: from all fwmark 0x10/0xffffffff lookup 100: it does not exist (netlink RTM_DELRULE: ENOENT 2)');
    expect([d.code, d.field, d.details]).toEqual(['ERR_NOT_FOUND', undefined, { index: 0, uncertain: true }]);
    const u = opError(routeOp('replace', rt), { index: 0, errno: 101, message: 'Nexthop has invalid gateway' });
    expect([u.code, u.message]).toEqual([
      'ERR_INVALID_ARGUMENT',
      'cannot replace route 198.18.10.0/24 via 198.18.2.2 table 100: Nexthop has invalid gateway (netlink RTM_NEWROUTE: ENETUNREACH 101)',
    ]);
  });

  it('exact rule deletes: missing is ERR_NOT_FOUND, shadowed is ERR_BUSY', () => {
    expect(planRuleDeletes([r1], [{ rule: r1 }]).map((p) => p.describe())).toEqual([describeRule(r1)]);
    const gone = (() => {
      try {
        planRuleDeletes([], [{ rule: r1, field: 'rules[0]' }]);
      } catch (e) {
        return e as BpfkitError;
      }
    })();
    expect([gone?.code, gone?.field, gone?.message]).toEqual(['ERR_NOT_FOUND', 'rules[0]', `rules[0]: no such rule: ${describeRule(r1)}`]);
    // r2 (more selectors) listed first: the kernel's delete of r1 would take r2
    const problems: BpfkitError[] = [];
    expect(planRuleDeletes([r2, r1], [{ rule: r1 }], (err) => problems.push(err))).toEqual([]);
    expect(problems.map((p) => p.code)).toEqual(['ERR_BUSY']);
    expect(problems[0].message).toContain(`the kernel would delete ${describeRule(r2)} instead`);
    expect(ruleKey(r1)).not.toBe(ruleKey(r2));
  });
});

describe('netns arguments', () => {
  it('names and paths resolve to paths; bad ones name the field', () => {
    expect([netnsPath(undefined), netnsPath(''), netnsPath('blue'), netnsPath('/proc/1/ns/net')]).toEqual([
      undefined,
      undefined,
      '/run/netns/blue',
      '/proc/1/ns/net',
    ]);
    for (const bad of ['a/b', '..', '.', -1, 1.5, 2 ** 31, {} as unknown as string]) {
      expect(invalid(() => netnsPath(bad)).field).toBe('netns');
    }
  });

  it('an fd must be open and a namespace file', () => {
    const ns = openSync('/proc/self/ns/net', 'r');
    const file = openSync('/proc/self/status', 'r');
    try {
      expect(netnsPath(ns)).toBe(`/proc/self/fd/${ns}`);
      expect(invalid(() => netnsPath(file)).message).toMatch(/not a namespace file/);
    } finally {
      closeSync(ns);
      closeSync(file);
    }
    expect(invalid(() => netnsPath(ns)).message).toBe(`netns: fd ${ns} is not an open file descriptor`);
  });
});

it('none of this loaded the native addon', () => {
  expect(readFileSync('/proc/self/maps', 'utf8')).not.toMatch(/bpfkit\.node/);
});
