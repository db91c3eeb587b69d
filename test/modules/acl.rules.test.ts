/**
 * AclFirewall rule API: validation (every malformed field gives a typed error naming the
 * rule and the field, and the kernel keeps the old set: bpftool shows the same rule-set
 * map in force), and the semantics of setRules / addRule / removeRule / updateRule /
 * configure (order, counters that follow rule ids, generations).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { AclFirewall, BpfkitError, type AclRule } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { frame, v4, v6, testRunHost } from './acl.helpers.js';

let lab: Lab;
let fw: AclFirewall;

const BASE: AclRule[] = [
  { id: 'ssh', action: 'deny', src: '198.18.0.0/24', proto: 'tcp', dstPort: 22 },
  { id: 'web', action: 'log', proto: 'tcp', dstPort: [80, 443] },
  { id: 'v6', action: 'deny', src: 'fd00::/8', proto: 'udp', dstPort: '53' },
];
const tcp = (dport: number, src = '198.18.0.9') => frame({ src: v4(src), dst: v4('198.18.0.2'), proto: 6, sport: 40000, dport });

function bpftool(args: string[]): any {
  return JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' }));
}

/** Id of the rule-set map in force, read by bpftool from the program's acl_blobs map. */
function activeBlobId(): number {
  const prog = bpftool(['prog', 'show', 'id', String(fw.program.info.id)]);
  for (const id of prog.map_ids as number[]) {
    const m = bpftool(['map', 'show', 'id', String(id)]);
    if (m.name === 'acl_blobs') {
      const v = bpftool(['map', 'lookup', 'id', String(id), 'key', '0', '0', '0', '0']);
      return Number(v.value ?? v.formatted?.value);
    }
  }
  throw new Error('acl_blobs not found');
}

beforeAll(async () => {
  const t = await testRunHost('acl-rules');
  lab = t.lab;
  fw = await AclFirewall.attach(t.ifname, { netns: t.host.netns, maxRules: 16, rules: BASE });
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('bad input: typed error naming rule and field; kernel state unchanged', () => {
  const cases: { name: string; rules: () => unknown[]; code?: string; ruleId?: string; field: string; msg?: RegExp }[] = [
    { name: 'bad CIDR', rules: () => [...BASE, { id: 'x', action: 'deny', src: '198.18.0.300/24' }], ruleId: 'x', field: 'src' },
    { name: 'bad CIDR in a list', rules: () => [{ id: 'x', action: 'deny', dst: ['198.18.0.0/16', 'fd00::/129'] }], ruleId: 'x', field: 'dst[1]' },
    { name: 'host bits set', rules: () => [{ id: 'x', action: 'deny', dst: '198.18.0.1/24' }], ruleId: 'x', field: 'dst', msg: /host bits/ },
    { name: 'empty address list', rules: () => [{ id: 'x', action: 'deny', src: [] }], ruleId: 'x', field: 'src' },
    {
      name: 'port range reversed',
      rules: () => [{ id: 'x', action: 'deny', proto: 'tcp', dstPort: [90, 80] }],
      ruleId: 'x',
      field: 'dstPort',
      msg: /reversed/,
    },
    { name: 'port > 65535', rules: () => [{ id: 'x', action: 'deny', proto: 'udp', srcPort: 65536 }], ruleId: 'x', field: 'srcPort', msg: /0\.\.65535/ },
    { name: 'port text > 65535', rules: () => [{ id: 'x', action: 'deny', proto: 'udp', dstPort: '1000-70000' }], ruleId: 'x', field: 'dstPort' },
    { name: 'unknown protocol', rules: () => [{ id: 'x', action: 'deny', proto: 'tcpp' }], ruleId: 'x', field: 'proto', msg: /unknown protocol/ },
    { name: 'protocol number > 255', rules: () => [{ id: 'x', action: 'deny', proto: 256 }], ruleId: 'x', field: 'proto' },
    { name: 'ports without a port protocol', rules: () => [{ id: 'x', action: 'deny', dstPort: 22 }], ruleId: 'x', field: 'dstPort', msg: /ports need proto/ },
    { name: 'ICMP type on TCP', rules: () => [{ id: 'x', action: 'deny', proto: 'tcp', icmpType: 8 }], ruleId: 'x', field: 'icmpType' },
    { name: 'ICMP code without type', rules: () => [{ id: 'x', action: 'deny', proto: 'icmp', icmpCode: 0 }], ruleId: 'x', field: 'icmpCode' },
    { name: 'icmp with IPv6 addresses', rules: () => [{ id: 'x', action: 'deny', proto: 'icmp', src: 'fd00::/8' }], ruleId: 'x', field: 'proto' },
    { name: 'no common address family', rules: () => [{ id: 'x', action: 'deny', src: '198.18.0.0/15', dst: 'fd00::/8' }], ruleId: 'x', field: 'dst' },
    { name: 'duplicate id', rules: () => [...BASE, { id: 'web', action: 'deny' }], ruleId: 'web', field: 'id', msg: /duplicate id \(also rule #1\)/ },
    { name: 'unknown action', rules: () => [{ id: 'x', action: 'drop' }], ruleId: 'x', field: 'action' },
    { name: 'unknown field (typo)', rules: () => [{ id: 'x', action: 'deny', proto: 'tcp', dport: 22 }], ruleId: 'x', field: 'dport' },
    { name: 'empty id', rules: () => [{ id: '', action: 'deny' }], field: 'id' },
    { name: 'unknown interface', rules: () => [{ id: 'x', action: 'deny', iface: 'nosuch0' }], ruleId: 'x', field: 'iface' },
    {
      name: 'too many rules for the capacity',
      rules: () => Array.from({ length: 17 }, (_, i) => ({ id: `n${i}`, action: 'deny', dst: `198.18.1.${i}` })),
      code: 'ERR_MAP_FULL',
      ruleId: 'n16',
      field: 'rules',
      msg: /capacity is 16/,
    },
    {
      // 8 rules x 4,096 sources: 32,768 records, more than the 2 MiB rule-set map holds
      // (maxRules promises room for 16 rules of one source and destination each); the
      // compiler stops at the map's size instead of building all of it
      name: 'a compiled set larger than the rule-set map',
      rules: () =>
        Array.from({ length: 8 }, (_, r) => ({
          id: `big${r}`,
          action: 'deny',
          proto: 'udp',
          dstPort: 1000 + r,
          src: Array.from({ length: 4096 }, (_, i) => `198.18.${i >> 8}.${i & 255}`),
        })),
      code: 'ERR_MAP_FULL',
      field: 'rules',
      msg: /compiled rule set needs more than 2097152 bytes \(32768 records: rules x sources x destinations;.*attach with a larger maxRules/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const gen = fw.generation;
      const blob = activeBlobId();
      const before = await fw.testRun(tcp(22));
      const err = await fw.setRules(c.rules() as AclRule[]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BpfkitError);
      const e = err as BpfkitError;
      expect(e.code).toBe(c.code ?? 'ERR_INVALID_RULE');
      expect(e.field).toBe(c.field);
      expect(e.ruleId).toBe(c.ruleId);
      if (c.msg) expect(e.message).toMatch(c.msg);
      if (c.ruleId) expect(e.message).toContain(`rule '${c.ruleId}'`);
      // nothing changed: same generation, same map in force, same rules, same verdict
      expect(fw.generation).toBe(gen);
      expect(activeBlobId()).toBe(blob);
      expect(fw.rules().map((r) => r.id)).toEqual(['ssh', 'web', 'v6']);
      expect((await fw.testRun(tcp(22))).action).toBe(before.action);
    });
  }

  it('addRule / updateRule reject the same way, removeRule of an unknown id changes nothing', async () => {
    const gen = fw.generation;
    await expect(fw.addRule({ id: 'ssh', action: 'allow' })).rejects.toMatchObject({ code: 'ERR_INVALID_RULE', ruleId: 'ssh', field: 'id' });
    await expect(fw.addRule({ id: 'y', action: 'allow', proto: 'udp', dstPort: [2, 1] })).rejects.toMatchObject({ ruleId: 'y', field: 'dstPort' });
    await expect(fw.addRule({ id: 'y', action: 'allow' }, { before: 'nope' })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND', field: 'before' });
    await expect(fw.updateRule({ id: 'nope', action: 'allow' })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND', field: 'id' });
    await expect(fw.updateRule({ id: 'web', action: 'allow', src: 'x' })).rejects.toMatchObject({ ruleId: 'web', field: 'src' });
    expect(await fw.removeRule('nope')).toBe(false);
    expect(fw.generation).toBe(gen);
  });

  it('bad options are rejected before anything is loaded', async () => {
    await expect(AclFirewall.attach('lo', { maxRules: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'maxRules' });
    await expect(AclFirewall.attach('lo', { defaultAction: 'drop' as never })).rejects.toMatchObject({ field: 'defaultAction' });
    await expect(AclFirewall.attach('lo', { ringBytes: 5000 })).rejects.toMatchObject({ field: 'ringBytes' });
    await expect(AclFirewall.attach('lo', { rules: [{ id: 'a', action: 'deny', src: 'nope' }] })).rejects.toMatchObject({
      code: 'ERR_INVALID_RULE',
      ruleId: 'a',
      field: 'src',
    });
    await expect(fw.configure({ eventIntervalMs: -1 })).rejects.toMatchObject({ field: 'eventIntervalMs' });
  });
});

describe('rule set changes', () => {
  it('canonical rules come back from rules()', () => {
    expect(fw.rules()).toEqual([
      { id: 'ssh', action: 'deny', src: '198.18.0.0/24', proto: 'tcp', dstPort: 22 },
      { id: 'web', action: 'log', proto: 'tcp', dstPort: [80, 443] },
      { id: 'v6', action: 'deny', src: 'fd00::/8', proto: 'udp', dstPort: 53 },
    ]);
  });

  it('order is priority; add/remove/update are atomic swaps; counters follow the rule id', async () => {
    await fw.setRules(BASE);
    const g0 = fw.generation;
    expect((await fw.testRun(tcp(22))).action).toBe('drop');
    await fw.addRule({ id: 'ssh-ok', action: 'allow', src: '198.18.0.9', proto: 'tcp', dstPort: 22 }, { before: 'ssh' });
    expect(fw.generation).toBe(g0 + 1);
    expect(fw.rules().map((r) => r.id)).toEqual(['ssh-ok', 'ssh', 'web', 'v6']);
    expect((await fw.testRun(tcp(22))).action).toBe('pass'); // the earlier rule wins
    expect((await fw.testRun(tcp(22, '198.18.0.8'))).action).toBe('drop');
    expect(fw.ruleStats('ssh-ok')).toEqual({ packets: 1, bytes: 64 });
    const sshBefore = fw.ruleStats('ssh')!.packets;
    expect(sshBefore).toBeGreaterThan(0);

    await fw.updateRule({ id: 'ssh', action: 'log', src: '198.18.0.0/24', proto: 'tcp', dstPort: 22 });
    expect((await fw.testRun(tcp(22, '198.18.0.8'))).action).toBe('pass');
    expect(fw.ruleStats('ssh')!.packets).toBe(sshBefore + 1); // same id, counters continue

    await fw.addRule({ id: 'last', action: 'deny', proto: 'tcp' }, { after: 'v6' });
    expect(fw.rules().map((r) => r.id)).toEqual(['ssh-ok', 'ssh', 'web', 'v6', 'last']);
    expect((await fw.testRun(tcp(8080))).action).toBe('drop');
    expect(await fw.removeRule('last')).toBe(true);
    expect((await fw.testRun(tcp(8080))).action).toBe('pass');
    // a removed id that comes back starts from zero
    await fw.addRule({ id: 'last', action: 'deny', proto: 'tcp', dstPort: 9 });
    expect(fw.ruleStats('last')).toEqual({ packets: 0, bytes: 0 });
    expect(fw.generation).toBe(g0 + 5);
  });

  it('setRules keeps counters of ids it keeps and starts new ids at zero', async () => {
    await fw.setRules(BASE);
    await fw.testRun(tcp(22));
    await fw.testRun(tcp(443));
    const web = fw.ruleStats('web')!;
    await fw.setRules([{ id: 'new', action: 'deny', proto: 'tcp', dstPort: 443 }, BASE[1]!]);
    expect(fw.ruleStats('web')).toEqual(web);
    expect(fw.ruleStats('new')).toEqual({ packets: 0, bytes: 0 });
    expect(fw.ruleStats('ssh')).toBeUndefined();
    expect((await fw.testRun(tcp(443))).action).toBe('drop');
    expect(fw.ruleStats('new')).toEqual({ packets: 1, bytes: 64 });
    expect(fw.ruleStats('web')).toEqual(web);
  });

  it('counter slots are recycled: many full swaps to new ids never run out, and new ids start at zero', async () => {
    // maxRules 16 gives 32 slots: each swap below needs 16 fresh ones while the 16 of the
    // set in force are still counting, so every swap must reuse what the previous freed
    for (let round = 0; round < 12; round++) {
      const rules = Array.from({ length: 16 }, (_, i) => ({ id: `r${round}-${i}`, action: 'deny' as const, proto: 'tcp' as const, dstPort: 1000 + i }));
      await fw.setRules(rules);
      expect(fw.ruleStats(`r${round}-3`)).toEqual({ packets: 0, bytes: 0 });
      expect((await fw.testRun(tcp(1003))).action).toBe('drop');
      expect(fw.ruleStats(`r${round}-3`)).toEqual({ packets: 1, bytes: 64 });
      if (round > 0) expect(fw.ruleStats(`r${round - 1}-3`)).toBeUndefined();
    }
    // half kept, half new: kept ids keep counting, the new half starts at zero
    const kept = fw.rules().slice(0, 8);
    await fw.setRules([...kept, ...Array.from({ length: 8 }, (_, i) => ({ id: `n-${i}`, action: 'deny' as const, proto: 'udp' as const, dstPort: 2000 + i }))]);
    expect(fw.ruleStats('r11-3')).toEqual({ packets: 1, bytes: 64 });
    expect(fw.ruleStats('n-3')).toEqual({ packets: 0, bytes: 0 });
    await fw.setRules(BASE);
  });

  it('rules kept from the set in force are reused only while they are unchanged', async () => {
    // canonical rules (as rules() returns them) are taken from the set in force without
    // validating them again; anything else, including a rule object changed after it was
    // installed, is validated in full
    const mine = [
      { id: 'keep', action: 'deny' as const, proto: 'tcp' as const, dstPort: 22 },
      { id: 'tail', action: 'allow' as const },
    ];
    await fw.setRules(mine);
    await fw.setRules(mine);
    expect(fw.rules()).toEqual(mine);
    (mine[0] as { dstPort: number }).dstPort = 70000;
    await expect(fw.setRules(mine)).rejects.toMatchObject({ code: 'ERR_INVALID_RULE', ruleId: 'keep', field: 'dstPort' });
    (mine[0] as { dstPort: unknown }).dstPort = [25, 25];
    await fw.setRules(mine); // not canonical (a one-port range): validated, and equal to 25
    expect(fw.rules()[0]).toEqual({ id: 'keep', action: 'deny', proto: 'tcp', dstPort: 25 });
    expect((await fw.testRun(tcp(25))).action).toBe('drop');
    expect((await fw.testRun(tcp(22))).action).toBe('pass');
    // an unknown field next to canonical ones is not "unchanged"
    await expect(fw.updateRule({ ...fw.rules()[0]!, dport: 1 } as AclRule)).rejects.toMatchObject({ code: 'ERR_INVALID_RULE', field: 'dport' });
    await fw.setRules(BASE);
  });

  it('default action and the empty rule set', async () => {
    await fw.setRules([]);
    const st0 = await fw.stats();
    expect((await fw.testRun(tcp(22))).action).toBe('pass');
    await fw.configure({ defaultAction: 'deny' });
    expect(fw.defaultAction).toBe('deny');
    expect((await fw.testRun(tcp(22))).action).toBe('drop');
    const v6frame = frame({ src: v6('fd00::1'), dst: v6('fd00::2'), proto: 17, sport: 1, dport: 53 });
    expect((await fw.testRun(v6frame)).action).toBe('drop');
    await fw.configure({ defaultAction: 'allow' });
    expect((await fw.testRun(v6frame)).action).toBe('pass');
    const st = await fw.stats();
    expect(st.default.denied.packets - st0.default.denied.packets).toBe(2);
    expect(st.default.allowed.packets - st0.default.allowed.packets).toBe(2);
    expect(st.rules).toEqual([]);
  });
});
