/**
 * The rolling upgrade of deploy/kubernetes/daemonset.yaml, on one "node" (a lab namespace),
 * with the manifest's own command line: version N (`bpfkit firewall --keep --pin ...`)
 * enforces; version N+1 starts with the same pin and adopts (its rule file replaces the
 * rules atomically); N gets SIGTERM and leaves; N+1 is the enforcer (a rule change through
 * it takes effect). A flood of denied datagrams runs from before N+1 starts until after
 * N+1 changed the rules, and a UDP sink on the denied port is the witness: it receives
 * nothing. At the end the firewall is removed and so are its pins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { stringify } from 'yaml';
import { AclFirewall, BpfMap, struct, u32, u64, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink, type LabProcess, type UdpSink } from '../../lib/lab/index.js';
import { Agent, ensureDist, floodScript, manifestArgs } from './agent.js';

const PIN_ROOT = `/sys/fs/bpf/bpfkit-test-fleet-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
const DENIED = 6000;
const LATER = 6001;
let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let dir: string;
const agents: Agent[] = [];
let flood: LabProcess | undefined;
const sinks: UdpSink[] = [];

beforeAll(async () => {
  ensureDist();
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-fleet-'));
  lab = await Lab.create({ name: 'fleet' });
  client = await lab.host('client');
  server = await lab.host('node');
  link = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
}, 240_000);

afterAll(async () => {
  for (const a of agents) a.kill('SIGKILL');
  await Promise.all(agents.map((a) => a.exited));
  await flood?.kill('SIGKILL');
  for (const s of sinks) await s.close();
  await lab?.close();
  rmSync(PIN_ROOT, { recursive: true, force: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function xdpProgId(): number | undefined {
  const j = JSON.parse(execFileSync('ip', ['-n', server.netns, '-j', '-d', 'link', 'show', 'dev', link.b.ifname], { encoding: 'utf8' }));
  return j[0]?.xdp?.prog?.id ?? j[0]?.xdp?.attached?.[0]?.prog?.id;
}

const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });
/** Packets the pinned firewall's rules matched so far (all slots, all CPUs): read from the pins, not from either agent. */
function matched(pin: string): number {
  using m = BpfMap.openPinned(join(pin, 'rule_counters'), { key: u32, value: counterCodec }); // every CPU's counters by slot
  let n = 0n;
  for (const [, c] of m) n += c.packets;
  return Number(n);
}

/** Waits (bounded) until the pinned counters grew by `by`: the flood is running and being dropped. */
async function floodGoesOn(pin: string, by = 500): Promise<void> {
  const from = matched(pin);
  for (let i = 0; i < 400 && matched(pin) < from + by; i++) await new Promise((r) => setTimeout(r, 25));
  expect(matched(pin), 'denied datagrams keep arriving and being dropped').toBeGreaterThanOrEqual(from + by);
}

function writeRules(file: string, rules: AclRule[]): void {
  writeFileSync(file, stringify(rules));
}

describe('rolling upgrade of the DaemonSet: N enforces, N+1 adopts, N exits, N+1 enforces', () => {
  it('not one denied datagram reaches the node, at any step; the pins go at the end', async () => {
    const iface = link.b.ifname;
    const pin = `${PIN_ROOT}/firewall-${iface}`;
    const rulesFile = join(dir, 'rules.yaml');
    const base: AclRule[] = [
      { id: 'flood', action: 'deny', proto: 'udp', dstPort: DENIED },
      { id: 'no-telnet', action: 'deny', proto: 'tcp', dstPort: 23 },
    ];
    writeRules(rulesFile, base);
    // a pod has the host's interfaces (hostNetwork); the lab's "node" is a namespace
    const args = [...manifestArgs({ iface, pinRoot: PIN_ROOT, rules: rulesFile }), `--netns=${server.netns}`];

    const sink = await server.udpSink('198.18.0.2', DENIED);
    sinks.push(sink);
    const later = await server.udpSink('198.18.0.2', LATER);
    sinks.push(later);

    // version N
    const n = new Agent(args);
    agents.push(n);
    const attached = await n.notice('attached');
    expect(attached).toMatchObject({ generation: 1, rules: 2, pin });
    const progId = xdpProgId();
    expect(progId).toBe(attached.program);

    flood = client.spawn([process.execPath, '-e', floodScript('198.18.0.1', '198.18.0.2', DENIED)]);
    await flood.waitForLine('ready');
    await floodGoesOn(pin);

    // version N+1 adopts while N still runs; its rule file is applied in one swap
    const next = new Agent(args);
    agents.push(next);
    const adopted = await next.notice('adopted');
    expect(adopted).toMatchObject({ generation: 2, rules: 2, pin, program: progId });
    await floodGoesOn(pin);

    // N leaves (SIGTERM, as the kubelet stops a pod): --keep closes without detaching
    n.kill('SIGTERM');
    expect(await n.notice('kept')).toMatchObject({ signal: 'SIGTERM', pin });
    expect(await n.exited).toBe(0);
    expect(xdpProgId()).toBe(progId); // the same program never stopped
    await floodGoesOn(pin);

    // N+1 is the enforcer: the path delivers, then a rule change through N+1 closes it
    await client.sendUdp('198.18.0.2', LATER, { count: 20 });
    expect(await later.waitFor(20)).toBe(20);
    writeRules(rulesFile, [...base, { id: 'later', action: 'deny', proto: 'udp', dstPort: LATER }]);
    next.child.kill('SIGHUP');
    expect(await next.notice('reloaded')).toMatchObject({ rules: 3, generation: 3 });
    await client.sendUdp('198.18.0.2', LATER, { count: 20 });
    await floodGoesOn(pin);

    const stop = await flood.kill('SIGTERM', 5_000);
    expect(stop.code).toBe(0);
    const { sent } = JSON.parse(flood.lines().at(-1)!) as { sent: number };
    expect(sent).toBeGreaterThan(2000);
    // the witness: nothing denied got through, not during any of the steps
    expect(await sink.waitFor(1, 500)).toBe(0);
    expect(await later.waitFor(21, 500)).toBe(20);

    // N+1 is replaced too (kept); removing bpfkit from the node removes the pins
    next.kill('SIGTERM');
    expect(await next.exited).toBe(0);
    expect(xdpProgId()).toBe(progId);
    const fw = await AclFirewall.attach(iface, { netns: server.netns, pin });
    expect(fw.adopted).toBe(true);
    expect(fw.generation).toBe(3);
    fw.detach();
    expect(existsSync(pin)).toBe(false);
    expect(xdpProgId()).toBeUndefined();
  }, 180_000);
});
