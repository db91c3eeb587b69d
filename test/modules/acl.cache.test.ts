/**
 * AclFirewall verdict cache: repeated packets of a flow skip the tree walk, a rule-set
 * swap invalidates every remembered verdict, flows that share a cache set never get each
 * other's verdict, and `verdictCache: false` walks the trees for every packet.
 *
 * The cache is per CPU and BPF_PROG_TEST_RUN runs on the calling thread's CPU, so this
 * file pins its whole process (libuv pool threads included) to one CPU with taskset:
 * then every testRun sees the same cache and the counters tell exactly what happened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { AclFirewall, type AclRule } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { frame, v4, v6, testRunHost } from './acl.helpers.js';

let lab: Lab;
let fw: AclFirewall;
let affinity: string | undefined;

const DENY_PORT = 7000;
const RULES: AclRule[] = [
  { id: 'deny-7000', action: 'deny', proto: 'udp', dstPort: DENY_PORT },
  { id: 'deny-v6', action: 'deny', src: 'fd00:1::/32', proto: 'udp', dstPort: DENY_PORT },
  { id: 'udp', action: 'allow', proto: 'udp' },
];

const udp4 = (sport: number, dport = DENY_PORT) => frame({ src: v4('198.18.0.9'), dst: v4('198.18.0.2'), proto: 17, sport, dport });
const udp6 = (sport: number, dport = DENY_PORT) => frame({ src: v6('fd00:1::9'), dst: v6('fd00:2::2'), proto: 17, sport, dport });

async function classified(): Promise<{ cached: number; walked: number }> {
  return (await fw.stats()).classified;
}

/** Runs `f`, returns what it did to the cached / walked counters. */
async function delta(f: () => Promise<unknown>): Promise<{ cached: number; walked: number }> {
  const a = await classified();
  await f();
  const b = await classified();
  return { cached: b.cached - a.cached, walked: b.walked - a.walked };
}

/** The verdict cache's set of udp4(sport, dport) in testRun (bpf/acl/vcache.h,
 * acl_flow_set_of: the IPv4 key packed in 3 64-bit words, without the ingress ifindex and
 * the "has L4" bit, each times its constant, xor-ed). */
const VC_SETS = 4096n;
const VC_WAYS = 4;
const MULS = [0x9e3779b97f4a7c15n, 0xc2b2ae3d27d4eb4fn, 0x165667b19e3779f9n];
function vcacheSet(sport: number, dport: number): bigint {
  return vcacheHash(sport, dport) & (VC_SETS - 1n);
}
/** The set (low 12 bits) and the preferred way (the 2 bits above) of udp4(sport, dport). */
function vcacheHash(sport: number, dport: number): bigint {
  const ip = (s: string) => BigInt(s.split('.').reduce((x, o) => x * 256 + Number(o), 0));
  // src | dst, sport | dport, proto | family << 24
  const p = [ip('198.18.0.9') | (ip('198.18.0.2') << 32n), BigInt(sport) | (BigInt(dport) << 32n), 17n | (4n << 24n)];
  let h = 0n;
  for (let i = 0; i < p.length; i++) h ^= (p[i]! * MULS[i]!) & 0xffffffffffffffffn;
  return (h >> 32n) & (VC_SETS * BigInt(VC_WAYS) - 1n);
}

// fresh source ports per test: no test sees a flow another test left in the cache
let nextPort = 20000;
const port = () => nextPort++;

beforeAll(async () => {
  affinity = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' })
    .trim()
    .split(/:\s*/)
    .pop();
  execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const t = await testRunHost('acl-cache');
  lab = t.lab;
  fw = await AclFirewall.attach(t.ifname, { netns: t.host.netns, maxRules: 16, rules: RULES, events: false });
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
  if (affinity) execFileSync('taskset', ['-a', '-p', affinity, String(process.pid)], { stdio: 'ignore' });
});

describe('verdict cache', () => {
  it('a repeated IPv4 flow is walked once, then served from the cache', async () => {
    const f = udp4(port());
    let r: Awaited<ReturnType<AclFirewall['testRun']>> | undefined;
    expect(await delta(async () => (r = await fw.testRun(f, { repeat: 10 })))).toEqual({ cached: 9, walked: 1 });
    expect(r!.action).toBe('drop');
    expect(await delta(async () => (r = await fw.testRun(f)))).toEqual({ cached: 1, walked: 0 });
    expect(r!.action).toBe('drop');
  });

  it('a repeated IPv6 flow is walked once, then served from the cache', async () => {
    const f = udp6(port());
    let r: Awaited<ReturnType<AclFirewall['testRun']>> | undefined;
    expect(await delta(async () => (r = await fw.testRun(f, { repeat: 10 })))).toEqual({ cached: 9, walked: 1 });
    expect(r!.action).toBe('drop');
  });

  it('per-rule counters count every packet, cached or walked', async () => {
    const before = fw.ruleStats('deny-7000')!.packets;
    const d = await delta(() => fw.testRun(udp4(port()), { repeat: 25 }));
    expect(d).toEqual({ cached: 24, walked: 1 });
    expect(fw.ruleStats('deny-7000')!.packets - before).toBe(25);
  });

  it('a swap invalidates the cache: the next packet is judged by the new set', async () => {
    const f = udp4(port());
    expect((await fw.testRun(f, { repeat: 3 })).action).toBe('drop');
    await fw.setRules(RULES.filter((r) => r.id !== 'deny-7000'));
    try {
      let r: Awaited<ReturnType<AclFirewall['testRun']>> | undefined;
      expect(await delta(async () => (r = await fw.testRun(f, { repeat: 3 })))).toEqual({ cached: 2, walked: 1 });
      expect(r!.action).toBe('pass');
    } finally {
      await fw.setRules(RULES);
    }
    let r: Awaited<ReturnType<AclFirewall['testRun']>> | undefined;
    expect(await delta(async () => (r = await fw.testRun(f)))).toEqual({ cached: 0, walked: 1 });
    expect(r!.action).toBe('drop');
  });

  it("flows that share a cache set never get each other's verdict", async () => {
    // ACL_VC_WAYS + 1 flows in one set of the cache (computed as bpf/acl/vcache.h does):
    // cycling through them, at least one is missing from the set at every turn, so every
    // round walks at least once, and every packet still gets its own flow's verdict
    const a = port();
    const set = vcacheSet(a, DENY_PORT);
    const others: number[] = [];
    for (let i = 0; i < 1 << 20 && others.length < VC_WAYS; i++) {
      const p = port();
      if (vcacheSet(p, 9000) === set) others.push(p);
    }
    expect(others).toHaveLength(VC_WAYS);
    const d = await delta(async () => {
      for (let i = 0; i < 20; i++) {
        expect((await fw.testRun(udp4(a))).action).toBe('drop');
        for (const p of others) expect((await fw.testRun(udp4(p, 9000))).action).toBe('pass'); // allowed by 'udp'
      }
    });
    expect(d.cached + d.walked).toBe(20 * (VC_WAYS + 1));
    expect(d.walked).toBeGreaterThanOrEqual(20);
  });

  it('ACL_VC_WAYS flows with the same set and preferred way all stay cached (each takes a free way)', async () => {
    // source port 1, destination ports from 9100 (no other test sends to them): one set
    // and one preferred way for all, so all but one must go to another way
    const h = vcacheHash(1, 9100);
    const flows = [9100];
    for (let d = 9101; d < 65536 && flows.length < VC_WAYS; d++) if (vcacheHash(1, d) === h) flows.push(d);
    expect(flows).toHaveLength(VC_WAYS);
    const d = await delta(async () => {
      for (let i = 0; i < 10; i++) for (const p of flows) expect((await fw.testRun(udp4(1, p))).action).toBe('pass');
    });
    expect(d).toEqual({ cached: 10 * VC_WAYS - VC_WAYS, walked: VC_WAYS });
  });

  it('verdictCache: false walks the trees for every packet; configure turns it back on', async () => {
    const f = udp4(port());
    await fw.configure({ verdictCache: false });
    try {
      expect(await delta(() => fw.testRun(f, { repeat: 10 }))).toEqual({ cached: 0, walked: 10 });
    } finally {
      await fw.configure({ verdictCache: true });
    }
    expect(await delta(() => fw.testRun(f, { repeat: 10 }))).toEqual({ cached: 9, walked: 1 });
  });

  it('verdictCache must be a boolean', async () => {
    await expect(fw.configure({ verdictCache: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'verdictCache' });
  });
});
