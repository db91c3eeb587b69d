/**
 * ACL rule normalisation and ClassBench parsing without a kernel: the pure functions the
 * firewall runs before anything is compiled or written (lib/modules/acl/rules.ts,
 * classbench.ts). The kernel suites (test/modules/acl.*) check the same rules end to end.
 */
import { describe, expect, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import { normalizeRule, normalizeRuleSet, normalizeRules, type AclRule } from '../../lib/modules/acl/rules.js';
import { parseClassBench, parseClassBenchTrace } from '../../lib/modules/acl/classbench.js';

const err = (fn: () => unknown): BpfkitError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError');
};

describe('normalizeRule: canonical forms', () => {
  it('names, numbers and text all come back in one canonical spelling', () => {
    const n = normalizeRule({ id: 'a', action: 'deny', src: '198.18.0.0/24', proto: 6, dstPort: '443', srcPort: '1024-65535' }, 0);
    expect(n.rule).toEqual({ id: 'a', action: 'deny', src: '198.18.0.0/24', proto: 'tcp', srcPort: [1024, 65535], dstPort: 443 });
    expect(n).toMatchObject({ proto: 6, sport: [1024, 65535], dport: [443, 443], needsL4: true, ifindex: null });
    expect(normalizeRule({ id: 'b', action: 'allow', proto: 'any' }, 0).rule).toEqual({ id: 'b', action: 'allow' });
    expect(normalizeRule({ id: 'c', action: 'log', proto: 47 }, 0).rule.proto).toBe('gre'); // the shared protocol table
    expect(normalizeRule({ id: 'c', action: 'log', proto: 253 }, 0).rule.proto).toBe(253); // no name: stays a number
  });

  it('IPv6 addresses are written in RFC 5952 form; lists stay lists', () => {
    const n = normalizeRule({ id: 'v6', action: 'deny', src: ['2001:0db8:0000::/32', 'fd00:0:0:0::/8'] }, 0);
    expect(n.rule.src).toEqual(['2001:db8::/32', 'fd00::/8']);
    const one = normalizeRule({ id: 'v6', action: 'deny', dst: '2001:db8::1/128' }, 0);
    expect(one.rule.dst).toBe('2001:db8::1'); // a host is written without /128
    expect(Array.isArray(one.dst)).toBe(false);
  });

  it('ICMP type/code ride in the port slots; an interface index is kept as given', () => {
    const n = normalizeRule({ id: 'i', action: 'deny', proto: 'icmp', icmpType: 8, icmpCode: 0, iface: 3 }, 0);
    expect(n).toMatchObject({ sport: [8, 8], dport: [0, 0], ifindex: 3, needsL4: true });
    expect(n.rule).toEqual({ id: 'i', action: 'deny', proto: 'icmp', icmpType: 8, icmpCode: 0, iface: 3 });
  });

  it('an interface name is resolved through the callback, and its failure names the field', () => {
    expect(normalizeRule({ id: 'n', action: 'deny', iface: 'eth0' }, 0, () => 7).ifindex).toBe(7);
    const e = err(() =>
      normalizeRule({ id: 'n', action: 'deny', iface: 'eth0' }, 0, () => {
        throw new Error('gone');
      }),
    );
    expect(e).toMatchObject({ code: 'ERR_INVALID_RULE', field: 'iface', ruleId: 'n' });
    expect(err(() => normalizeRule({ id: 'n', action: 'deny', iface: 'eth0' }, 0)).field).toBe('iface');
  });
});

describe('normalizeRule: errors name the rule and the field', () => {
  const cases: [string, unknown, string, RegExp?][] = [
    ['not an object', 'x', 'rule'],
    ['unknown field', { id: 'x', action: 'deny', port: 22 }, 'port'],
    ['a field from Object.prototype', { id: 'x', action: 'deny', proto: 'toString' }, 'proto'],
    ['empty id', { id: '', action: 'deny' }, 'id'],
    ['bad action', { id: 'x', action: 'drop' }, 'action'],
    ['bad CIDR', { id: 'x', action: 'deny', src: '198.18.0.300/24' }, 'src'],
    ['host bits set', { id: 'x', action: 'deny', dst: '198.18.0.1/24' }, 'dst', /host bits/],
    ['bad CIDR in a list', { id: 'x', action: 'deny', dst: ['198.18.0.0/16', 'fd00::/129'] }, 'dst[1]'],
    ['reversed port range', { id: 'x', action: 'deny', proto: 'tcp', dstPort: [90, 80] }, 'dstPort', /reversed/],
    ['port too big', { id: 'x', action: 'deny', proto: 'udp', srcPort: 65536 }, 'srcPort'],
    ['ports without a port protocol', { id: 'x', action: 'deny', dstPort: 22 }, 'dstPort', /ports need proto/],
    ['ICMP code without type', { id: 'x', action: 'deny', proto: 'icmp', icmpCode: 1 }, 'icmpCode'],
    ['ICMP type on tcp', { id: 'x', action: 'deny', proto: 'tcp', icmpType: 8 }, 'icmpType'],
    ['families that never meet', { id: 'x', action: 'deny', src: '198.18.0.0/15', dst: 'fd00::/8' }, 'dst', /address family/],
    ['icmp with IPv6 addresses', { id: 'x', action: 'deny', proto: 'icmp', dst: 'fd00::/8' }, 'proto'],
    ['bad interface name', { id: 'x', action: 'deny', iface: 'a b' }, 'iface'],
  ];
  for (const [name, rule, field, msg] of cases) {
    it(name, () => {
      const e = err(() => normalizeRule(rule, 4));
      expect(e.code).toBe('ERR_INVALID_RULE');
      expect(e.field).toBe(field);
      if (typeof rule === 'object' && rule && (rule as AclRule).id) expect(e.ruleId).toBe((rule as AclRule).id);
      if (msg) expect(e.message).toMatch(msg);
    });
  }
});

describe('normalizeRules: the whole set', () => {
  it('duplicate ids and sets over capacity are refused; positions are recorded', () => {
    expect(
      err(() =>
        normalizeRules(
          [
            { id: 'a', action: 'deny' },
            { id: 'a', action: 'allow' },
          ],
          { capacity: 8 },
        ),
      ),
    ).toMatchObject({ ruleId: 'a', field: 'id' });
    expect(
      err(() =>
        normalizeRules(
          Array.from({ length: 3 }, (_, i) => ({ id: `r${i}`, action: 'deny' })),
          { capacity: 2 },
        ),
      ).code,
    ).toBe('ERR_MAP_FULL');
    expect(err(() => normalizeRules('nope', { capacity: 2 })).field).toBe('rules');
    const ids = new Map<string, number>();
    normalizeRules(
      [
        { id: 'a', action: 'deny' },
        { id: 'b', action: 'allow' },
      ],
      { capacity: 8, ids },
    );
    expect([...ids]).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
  });

  it('an unchanged rule of the previous set is reused; a changed one is validated again', () => {
    const prev = normalizeRuleSet([{ id: 'a', action: 'deny', src: '198.18.0.0/24' }], { capacity: 8 });
    const previous = { ids: prev.ids, rules: prev.norm };
    const same = normalizeRuleSet([{ ...prev.norm.rule(0) }], { capacity: 8, previous });
    expect(same.norm.reused).toBe(1);
    expect(same.norm.row(0)).toEqual(prev.norm.row(0));
    const changed = normalizeRuleSet([{ id: 'a', action: 'deny', src: '198.18.0.0/25' }], { capacity: 8, previous });
    expect(changed.norm.reused).toBe(0);
    expect(changed.norm.rule(0).src).toBe('198.18.0.0/25');
    expect(err(() => normalizeRuleSet([{ id: 'a', action: 'deny', src: 'nope' }], { capacity: 8, previous })).field).toBe('src');
  });
});

describe('ClassBench parsing', () => {
  const text = [
    '@198.18.0.0/16\t198.19.1.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000',
    '@0.0.0.0/0\t0.0.0.0/0\t1024 : 65535\t0 : 65535\t0x11/0xFF\t0x0000/0x0000',
    '@198.18.0.0/15\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000',
    '',
  ].join('\n');

  it('turns filter lines into rules (actions alternate unless chosen)', () => {
    expect(parseClassBench(text)).toEqual([
      { id: 'r0', action: 'allow', src: '198.18.0.0/16', dst: '198.19.1.0/24', proto: 6, dstPort: 80 },
      { id: 'r1', action: 'deny', proto: 17, srcPort: [1024, 65535] },
      { id: 'r2', action: 'allow', src: '198.18.0.0/15' },
    ]);
    expect(parseClassBench(text, { idPrefix: 'x-', action: () => 'log' }).map((r) => [r.id, r.action])).toEqual([
      ['x-0', 'log'],
      ['x-1', 'log'],
      ['x-2', 'log'],
    ]);
    // what it produces is what the firewall accepts
    expect(normalizeRules(parseClassBench(text), { capacity: 8 }).map((n) => n.rule.proto)).toEqual(['tcp', 'udp', undefined]);
  });

  it('a wildcard protocol with a port range parses, and the firewall refuses it by name (none in our sets)', () => {
    const rules = parseClassBench('@0.0.0.0/0 0.0.0.0/0 1024 : 65535 0 : 65535 0x00/0x00 0x0000/0x0000');
    expect(rules).toEqual([{ id: 'r0', action: 'allow', srcPort: [1024, 65535] }]);
    expect(err(() => normalizeRules(rules, { capacity: 8 }))).toMatchObject({ ruleId: 'r0', field: 'srcPort' });
  });

  it('a malformed line names its number', () => {
    const e = err(() => parseClassBench('@198.18.0.0/16 198.19.0.0/16 0 : 65535 0 : 65535 0x06/0xFF\n@1.2.3/8 0.0.0.0/0 0 : 1 0 : 1 0x00/0x00'));
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'text', details: { line: 2 } });
  });

  it('reads header traces, with the expected rule when given', () => {
    expect(parseClassBenchTrace('3323068416\t3323134208\t1024\t80\t6\t0\n1 2 3 4 17\n\n')).toEqual([
      { src: 3323068416, dst: 3323134208, srcPort: 1024, dstPort: 80, proto: 6, rule: 0 },
      { src: 1, dst: 2, srcPort: 3, dstPort: 4, proto: 17, rule: -1 },
    ]);
  });
});
