/**
 * Restart without a gap: a child Node process running the built library (dist/) attaches
 * a pinned firewall and is SIGKILLed in the middle of a flood of denied UDP packets; the
 * pinned program keeps dropping, this process adopts the firewall (same rules, same
 * counters), and then changes the rules. Not one denied datagram reaches the server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AclFirewall, BpfMap, struct, u32, u64 } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { ensureDist, ROOT } from '../helpers/dist.js';
import { xdpProgId as xdpProgIdOf } from '../helpers/iproute.js';

const PIN = `/sys/fs/bpf/bpfkit-test-acl-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let child: ChildProcess | undefined;

const xdpProgId = () => xdpProgIdOf(server.netns, link.b.ifname);

beforeAll(async () => {
  ensureDist();
  lab = await Lab.create({ name: 'acl-restart' });
  client = await lab.host('client');
  server = await lab.host('server');
  link = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
}, 240_000);
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await lab?.close();
  rmSync(PIN, { recursive: true, force: true });
});

const CHILD = `
import { AclFirewall } from ${JSON.stringify(join(ROOT, 'dist', 'index.js'))};
const cfg = JSON.parse(process.env.ACL_CHILD);
const fw = await AclFirewall.attach(cfg.iface, { netns: cfg.netns, pin: cfg.pin, maxRules: 64, rules: cfg.rules });
console.log(JSON.stringify({ ready: true, generation: fw.generation, adopted: fw.adopted }));
setInterval(() => {}, 60_000);
`;

describe('restart without a gap', () => {
  it('SIGKILL of the installing process mid-flood: no denied packet gets through; a new process adopts and changes the rules', async () => {
    const rules = [
      { id: 'flood', action: 'deny', proto: 'udp', dstPort: 6000 },
      { id: 'other', action: 'log', proto: 'tcp', dstPort: 80 },
    ];
    child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, ACL_CHILD: JSON.stringify({ iface: link.b.ifname, netns: server.netns, pin: PIN, rules }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<void>((r) => child!.once('exit', () => r()));
    for (let i = 0; i < 300 && !out.includes('"ready"'); i++) {
      if (child.exitCode !== null) throw new Error(`child failed: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(JSON.parse(out.trim().split('\n')[0]!)).toEqual({ ready: true, generation: 1, adopted: false });
    const progId = xdpProgId();
    expect(progId).toBeGreaterThan(0);

    const sink = await server.udpSink('198.18.0.2', 6000);
    let floodDone = false;
    const flood = client.sendUdp('198.18.0.2', 6000, { count: 100_000, sport: 41000 }).finally(() => (floodDone = true));
    flood.catch(() => undefined); // awaited below; never an unhandled rejection if the test fails first
    // wait until the child's program is dropping the flood (read from the pinned counters:
    // a plain array of every possible CPU's counters by slot)
    const counted = (): number => {
      using m = BpfMap.openPinned(join(PIN, 'rule_counters'), { key: u32, value: struct('bpfkit_counter', { packets: u64, bytes: u64 }) });
      let n = 0n;
      for (const [, c] of m) n += c.packets;
      return Number(n);
    };
    for (let i = 0; i < 200 && counted() < 1000; i++) await new Promise((r) => setTimeout(r, 25));
    expect(counted()).toBeGreaterThanOrEqual(1000);
    expect(floodDone).toBe(false); // the flood is running...
    child.kill('SIGKILL'); // ... when the installer dies
    await exited;
    expect(child.signalCode).toBe('SIGKILL');
    // the pinned program is still attached and still dropping
    expect(xdpProgId()).toBe(progId);

    const fw = await AclFirewall.attach(link.b.ifname, { netns: server.netns, pin: PIN });
    try {
      expect(fw.adopted).toBe(true);
      expect(fw.generation).toBe(1);
      expect(fw.maxRules).toBe(64);
      expect(fw.rules()).toEqual([
        { id: 'flood', action: 'deny', proto: 'udp', dstPort: 6000 },
        { id: 'other', action: 'log', proto: 'tcp', dstPort: 80 },
      ]);
      const atAdoption = fw.ruleStats('flood')!.packets;
      expect(atAdoption).toBeGreaterThan(0); // counted by the child's program, kept in the pinned map
      const { sent } = await flood;
      await new Promise((r) => setTimeout(r, 200));
      const dropped = fw.ruleStats('flood')!.packets;
      expect(dropped).toBeGreaterThan(atAdoption); // the flood went on after the kill
      expect(dropped).toBeLessThanOrEqual(sent);
      expect(await sink.waitFor(1, 500)).toBe(0); // not one denied datagram got through
      expect(xdpProgId()).toBe(progId); // adoption did not replace or re-attach anything

      // the new process owns the firewall: it can change the rules
      await fw.updateRule({ id: 'flood', action: 'allow', proto: 'udp', dstPort: 6000 });
      expect(fw.generation).toBe(2);
      await client.sendUdp('198.18.0.2', 6000, { count: 20 });
      expect(await sink.waitFor(20)).toBe(20);
      expect(fw.ruleStats('flood')!.packets).toBe(dropped + 20);
      await sink.close();
    } finally {
      fw.detach();
    }
    // detach removed the pins and the program
    expect(existsSync(PIN)).toBe(false);
    expect(xdpProgId()).toBeUndefined();
  }, 120_000);

  it('close() of a pinned firewall leaves it running; attach() with the pin adopts it in the same process', async () => {
    const fw1 = await AclFirewall.attach(link.b.ifname, {
      netns: server.netns,
      pin: PIN,
      maxRules: 64,
      rules: [{ id: 'd', action: 'deny', proto: 'udp', dstPort: 6001 }],
    });
    // pinned state is root's alone: the directory 0700, every pin 0600
    expect(statSync(PIN).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(PIN)) expect(statSync(join(PIN, f)).mode & 0o777, f).toBe(0o600);
    fw1.close();
    const sink = await server.udpSink('198.18.0.2', 6001);
    await client.sendUdp('198.18.0.2', 6001, { count: 10 });
    expect(await sink.waitFor(1, 400)).toBe(0);
    const fw2 = await AclFirewall.attach(link.b.ifname, { netns: server.netns, pin: PIN, defaultAction: 'deny' });
    try {
      expect(fw2.adopted).toBe(true);
      expect(fw2.ruleStats('d')).toEqual({ packets: 10, bytes: expect.any(Number) });
      // settings given at adoption are applied atomically on top of the adopted rules
      expect(fw2.defaultAction).toBe('deny');
      expect(fw2.generation).toBe(2);
      await expect(AclFirewall.attach(link.b.ifname, { netns: server.netns, pin: PIN, maxRules: 100 })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        field: 'maxRules',
      });
    } finally {
      fw2.detach();
      await sink.close();
    }
    expect(existsSync(PIN)).toBe(false);
  });
});
