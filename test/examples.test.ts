/**
 * The programs in examples/ run as a user runs them (`node examples/<name>.mjs`, importing
 * the built package by its name) on the real kernel, each in its own namespace lab. Their
 * printed lines must show the kernel's numbers (packets counted, events written, routing
 * decisions), and nothing they created may stay behind, also when one is killed half-way.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../lib/core/native.js';
import { listLabNamespaces } from '../lib/lab/index.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const d = describe.skipIf(!isRoot);
const root = packageRoot();
const tmp = mkdtempSync(join(tmpdir(), 'bpfkit-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string[];
  stderr: string[];
}

/** Lab namespaces created by process `pid` (the lab records its owner on each namespace). */
async function namespacesOf(pid: number): Promise<string[]> {
  return (await listLabNamespaces()).filter((n) => n.ownerPid === pid).map((n) => n.name);
}

/**
 * Runs `node examples/<name> ...args` from the package root (killed after `timeoutMs`).
 * `onLine` sees every stdout line as it comes, with the child, to signal it.
 */
function runExample(name: string, args: string[] = [], opts: { timeoutMs?: number; onLine?: (line: string, pid: number) => void } = {}): Promise<Run> {
  expect(existsSync(join(root, 'dist', 'index.js')), 'dist/ is built by scripts/bootstrap.sh (npm test) or npx tsup').toBe(true);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join('examples', name), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Run = { code: null, signal: null, stdout: [], stderr: [] };
    createInterface({ input: p.stdout! }).on('line', (l) => {
      out.stdout.push(l);
      opts.onLine?.(l, p.pid!);
    });
    createInterface({ input: p.stderr! }).on('line', (l) => out.stderr.push(l));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    p.on('error', reject);
    p.on('close', async (code, signal) => {
      clearTimeout(t);
      out.code = code;
      out.signal = signal;
      try {
        expect(await namespacesOf(p.pid!), `lab namespaces left behind by ${name}`).toEqual([]);
        resolve(out);
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** The numbers captured by the first line matching `re`; fails showing the output if none does. */
function grab(run: Run, re: RegExp): number[] {
  const m = run.stdout.map((l) => re.exec(l)).find((x) => x !== null);
  expect(m, `a line matching ${re} in\n${run.stdout.join('\n')}\n${run.stderr.join('\n')}`).toBeTruthy();
  return m!.slice(1).map(Number);
}

function expectOk(run: Run): void {
  expect({ code: run.code, stderr: run.stderr }, run.stdout.join('\n')).toEqual({ code: 0, stderr: [] });
  expect(run.stdout.at(-1)).toMatch(/^ok: /);
}

d('examples/', () => {
  it("xdp-counter: the example's own program counts every ping b answered, by family", async () => {
    expect(existsSync(join(root, 'build', 'examples', 'xdp_counter.bpf.o')), 'build/examples/ is built by npm run build:native').toBe(true);
    const run = await runExample('xdp-counter.mjs');
    expectOk(run);
    const [v4replies, v6replies] = grab(run, /^a pinged b: IPv4 (\d+)\/5 replies, IPv6 (\d+)\/3 replies$/);
    expect([v4replies, v6replies]).toEqual([5, 3]);
    const [v4] = grab(run, /^ipv4 +(\d+) packets, \d+ bytes$/);
    const [v6] = grab(run, /^ipv6 +(\d+) packets, \d+ bytes$/);
    expect(v4).toBeGreaterThanOrEqual(5);
    expect(v6).toBeGreaterThanOrEqual(3);
  });

  it('acl-events: denied flows blocked, one JSON line per flow and rule in the file', async () => {
    const file = join(tmp, 'events.jsonl');
    const run = await runExample('acl-events.mjs', [file]);
    expectOk(run);
    expect(run.stdout).toContain('client: ssh over IPv4 blocked, over IPv6 blocked; http connected; 50 datagrams to udp/5353');
    const [mdns] = grab(run, /^rule no-mdns +deny +(\d+) packets/);
    expect(mdns).toBe(50);
    const events = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const [written] = grab(run, /^(\d+) events written as JSON lines to /);
    expect(events.length).toBe(written);
    const byRule = (id: string) => events.filter((e) => e.ruleId === id);
    expect(
      byRule('no-ssh')
        .map((e) => [e.action, e.family, e.dstPort])
        .sort(),
    ).toEqual([
      ['deny', 4, 22],
      ['deny', 6, 22],
    ]);
    expect(byRule('web')[0]).toMatchObject({ action: 'log', proto: 6, dst: '198.18.0.2', dstPort: 80 });
    expect(byRule('no-mdns')[0]).toMatchObject({ action: 'deny', proto: 17, dstPort: 5353 });
    expect(typeof events[0]!.time).toBe('string'); // a Date becomes ISO text
  });

  it('acl-events: without a file the JSON lines go to stdout and the narrative to stderr', async () => {
    const run = await runExample('acl-events.mjs');
    expect(run.code, run.stderr.join('\n')).toBe(0);
    const events = run.stdout.map((l) => JSON.parse(l) as { ruleId: string });
    expect(new Set(events.map((e) => e.ruleId))).toEqual(new Set(['no-ssh', 'web', 'no-mdns']));
    expect(run.stderr.at(-1)).toMatch(/^ok: /);
  });

  it('decap-vni-stats: allowed VNIs decapsulated and counted per VNI, VNI 300 passed unchanged', async () => {
    const run = await runExample('decap-vni-stats.mjs');
    expectOk(run);
    expect(grab(run, /^VNI 100: a sent (\d+), b's server on \S+ received (\d+)$/)).toEqual([20, 20]);
    expect(grab(run, /^VNI 200: a sent (\d+), b's server on \S+ received (\d+)$/)).toEqual([20, 20]);
    expect(grab(run, /^VNI 300: a sent (\d+), b's server on \S+ received (\d+)$/)).toEqual([20, 0]);
    expect(grab(run, /^ {2}VNI 100 vxlan: (\d+) packets/)[0]).toBeGreaterThanOrEqual(20);
    expect(grab(run, /^ {2}VNI 200 vxlan: (\d+) packets/)[0]).toBeGreaterThanOrEqual(20);
    expect(run.stdout.some((l) => /^ {2}VNI 300 /.test(l))).toBe(false);
    expect(grab(run, /^passed unchanged, VNI not allowed: (\d+) packets$/)[0]).toBeGreaterThanOrEqual(20);
  });

  it('policy-route: marked traffic goes via r2 while applied, re-applying changes nothing, remove() restores', async () => {
    const run = await runExample('policy-route.mjs');
    expectOk(run);
    expect(run.stdout).toContain('before  unmarked -> 198.18.1.2 / 2001:db8:1::2; mark 0x10 -> 198.18.1.2 / 2001:db8:1::2');
    expect(run.stdout).toContain('applied unmarked -> 198.18.1.2 / 2001:db8:1::2; mark 0x10 -> 198.18.2.2 / 2001:db8:2::2');
    expect(run.stdout).toContain('removed unmarked -> 198.18.1.2 / 2001:db8:1::2; mark 0x10 -> 198.18.1.2 / 2001:db8:1::2');
    const changes = (prefix: string) => JSON.parse(run.stdout.find((l) => l.startsWith(prefix))!.slice(prefix.length)) as Record<string, number>;
    expect(changes('apply:  ')).toMatchObject({ rulesAdded: 2, routesAdded: 2 });
    expect(changes('again:  ')).toMatchObject({ rulesAdded: 0, routesAdded: 0, rulesUnchanged: 2, routesUnchanged: 2 });
    expect(changes('remove: ')).toMatchObject({ rulesDeleted: 2, routesDeleted: 2 });
  });

  it('service-chain: without the chainer straight upstream; with it every datagram passes the service once; close() leaves no rule', async () => {
    const run = await runExample('service-chain.mjs');
    expectOk(run);
    expect(grab(run, /^without the chainer: u received (\d+) \+ (\d+) datagrams \(IPv4 \+ IPv6\), s forwarded (\d+) \+ (\d+)$/)).toEqual([30, 30, 0, 0]);
    expect(grab(run, /^with the chainer: u received (\d+) \+ (\d+) datagrams \(IPv4 \+ IPv6\), s forwarded (\d+) \+ (\d+)$/)).toEqual([30, 30, 30, 30]);
    expect(run.stdout.filter((l) => /^ {2}ip -[46] rule: \d+:\s+from all fwmark 0x(10|20) lookup 1[12]0/.test(l))).toHaveLength(4);
    expect(grab(run, /^rule clients +(\d+) packets$/)[0]).toBeGreaterThanOrEqual(60);
    expect(grab(run, /^rule back-from-fw +(\d+) packets$/)[0]).toBeGreaterThanOrEqual(60);
    expect(grab(run, /^closed: (\d+) fwmark rules left on r$/)).toEqual([0]);
  });

  it('trace-drops: each datagram ends where the kernel says, with its drop reason; the tracer lost nothing', async () => {
    const run = await runExample('trace-drops.mjs');
    expectOk(run);
    expect(run.stdout.find((l) => l.startsWith('udp/7003 '))).toMatch(/^udp\/7003 \(blocked\): dropped, reason NETFILTER_DROP, \d+ events/);
    expect(run.stdout.find((l) => l.startsWith('udp/7002 '))).toMatch(/^udp\/7002 \(closed\): dropped, reason NO_SOCKET, \d+ events/);
    expect(run.stdout.find((l) => l.startsWith('udp/7001 '))).toMatch(/^udp\/7001 \(open\): (unfinished|consumed), \d+ events/);
    // the blocked one ends on r, the closed one on b
    const path = (port: number) => {
      const i = run.stdout.findIndex((l) => l.startsWith(`udp/${port} `));
      const out: string[] = [];
      for (let k = i + 1; k < run.stdout.length && run.stdout[k]!.startsWith('  +'); k++) {
        const m = /^ {2}\+\s*[\d.]+ us\s+(\S+)\s+(\S+)\s+(\S+)$/.exec(run.stdout[k]!);
        out.push(m ? m.slice(1).join(' ') : run.stdout[k]!);
      }
      return out;
    };
    expect(path(7003).at(-1)).toBe('r eth0 drop');
    expect(path(7002).at(-1)).toBe('b eth0 drop');
    expect(path(7001)).toContain('b eth0 receive');
    expect(grab(run, /^b's socket on udp\/7001 received (\d+) datagram/)).toEqual([1]);
    expect(grab(run, /^tracer: \d+ events matched the filter of \d+ seen machine-wide, (\d+) lost$/)).toEqual([0]);
  });

  it('an example killed half-way (SIGTERM) still removes its namespaces', async () => {
    let seen: string[] = [];
    const run = await runExample('decap-vni-stats.mjs', [], {
      onLine: (line, pid) => {
        if (!line.startsWith('b: Decapsulator on eth0')) return;
        // the lab is up: look at its namespaces, then stop the example mid-run
        void namespacesOf(pid)
          .then((ns) => (seen = ns))
          .finally(() => process.kill(pid, 'SIGTERM'));
      },
    });
    expect(seen.length, run.stdout.join('\n')).toBe(2); // hosts a and b existed ...
    expect(run.stdout.some((l) => l.startsWith('ok: '))).toBe(false); // ... and the run was cut short
    // runExample checked that none of the example's namespaces remain
  });
});
