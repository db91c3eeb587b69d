/**
 * `bpfkit demo`'s sections against the real kernel: each new section runs once, briefly,
 * and its printed lines must show the module at work (numbers the kernel produced: deny
 * counts, packets through the service host, a drop reason). Then Ctrl-C: the section stops
 * early, finishes its report and removes its lab, in-process (an AbortSignal) and through
 * the real CLI (SIGINT). Every test also checks that no lab namespace of its process is left.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../lib/demo/index.js';
import { listLabNamespaces } from '../../lib/lab/index.js';
import { packageRoot } from '../../lib/core/native.js';

/** Lab namespaces created by process `pid` (recorded by the lab on each namespace's lo). */
async function namespacesOf(pid: number): Promise<string[]> {
  return (await listLabNamespaces()).filter((n) => n.ownerPid === pid).map((n) => n.name);
}

async function demo(section: string, seconds = 2): Promise<string[]> {
  const lines: string[] = [];
  await runDemo({ only: [section], seconds, print: (l) => lines.push(l) });
  expect(await namespacesOf(process.pid), 'lab namespaces left behind').toEqual([]);
  return lines;
}

/** The numbers a line's regular expression captured; fails if no line matches. */
function grab(lines: string[], re: RegExp): number[] {
  const m = lines.map((l) => re.exec(l)).find((x) => x !== null);
  expect(m, `a line matching ${re}\n${lines.join('\n')}`).toBeTruthy();
  return m!.slice(1).map(Number);
}

describe('bpfkit demo sections', () => {
  it('pipeline: the firewall stage denies the decapsulated port, the reorder lets it through, every walk ends once', async () => {
    const lines = await demo('pipeline');
    // t=1s, decap -> acl: denies, and nothing to the denied port reached B
    const [denied, deltaDenied, got7001] = grab(lines, /^ {2}t=1s .*\[1\] acl: drop \+\d+.* firewall denied (\d+) \(\+(\d+)\) \| B received :7001 (\d+),/);
    expect(denied).toBeGreaterThan(0);
    expect(deltaDenied).toBe(denied);
    expect(got7001).toBe(0);
    expect(lines).toContain(
      '  reorder: stages now ["acl","decap"] (one atomic flip): the firewall sees only the outer VXLAN header, udp/7001 gets through (stats count per position, so the next line mixes the two chains)',
    );
    const [root, walks] = grab(lines, /^root saw (\d+) packets; walks ended: (\d+) \(each packet exactly once/);
    expect(root).toBeGreaterThan(0);
    expect(walks).toBe(root);
    const [after7001, got7002] = grab(lines, /^firewall denied \d+ packets in all; B received :7001 (\d+) \(only after the reorder\), :7002 (\d+)$/);
    expect(after7001).toBeGreaterThan(0);
    expect(got7002).toBeGreaterThan(after7001);
    expect(lines).toContain(`remove('acl'): stages now ["decap"]; closing the modules and the pipeline`);
  });

  it('chain: both clients go through the service host, after update() the second goes straight upstream', async () => {
    const lines = await demo('chain');
    const [fw, s0, u0, s1, u1] = grab(
      lines,
      /^ {2}t=1s {2}chainer: fw (\d+), upstream \d+ pkts \| 198\.18\.10\.1: via S \+(\d+), at U \+(\d+) \| 198\.18\.10\.3: via S \+(\d+), at U \+(\d+)$/,
    );
    expect(fw).toBeGreaterThan(0);
    for (const n of [s0, u0, s1, u1]) expect(n).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith("  update(): rule 'direct' sends 198.18.10.3 straight upstream"))).toBe(true);
    const [marked] = grab(lines, /^chainer marked (\d+) packets for service fw, \d+ for upstream; unclassified 0$/);
    expect(marked).toBeGreaterThan(0);
    const [first, firstU] = grab(lines, /^198\.18\.10\.1: the service host forwarded (\d+) datagrams, U received (\d+)$/);
    expect(first).toBeGreaterThan(0);
    expect(first).toBe(firstU); // all of the first client's traffic went through the service
    const [second, secondU] = grab(lines, /^198\.18\.10\.3: the service host forwarded (\d+) datagrams, U received (\d+)$/);
    expect(second).toBeGreaterThan(0);
    expect(second).toBeLessThan(secondU); // after the update, it reached U without the service
  });

  it('trace: a forwarded packet crosses a -> r -> b, the dropped one ends in r with NETFILTER_DROP', async () => {
    const lines = await demo('trace', 1);
    expect(
      lines.some((l) => /^packet \d+: \d+ events through a -> r -> b in [\d.]+ us; /.test(l)),
      lines.join('\n'),
    ).toBe(true);
    expect(
      lines.some((l) => /^packet \d+: \d+ events through a -> r in [\d.]+ us; dropped, reason NETFILTER_DROP$/.test(l)),
      lines.join('\n'),
    ).toBe(true);
    expect(
      lines.some((l) => /^ +\+[\d.]+ us {2}r {3}eth0 {3}drop {7}reason NETFILTER_DROP$/.test(l)),
      lines.join('\n'),
    ).toBe(true);
    expect(
      lines.some((l) => /^ +\+[\d.]+ us {2}r {3}eth1 {3}transmit {3}rc 0$/.test(l)),
      lines.join('\n'),
    ).toBe(true);
  });
});

describe('Ctrl-C', () => {
  it('an aborted section stops early, still reports and removes its lab', async () => {
    const ac = new AbortController();
    const lines: string[] = [];
    let during: Promise<string[]> | undefined;
    await runDemo({
      only: ['chain'],
      seconds: 600, // far beyond the test's timeout: only the abort can end it in time
      signal: ac.signal,
      print: (l) => {
        lines.push(l);
        if (l.startsWith('  t=1s')) {
          during = namespacesOf(process.pid);
          ac.abort();
        }
      },
    });
    expect(await during).toHaveLength(4); // c, r, s, u existed while it ran
    expect(lines.some((l) => l.startsWith('  t=2s'))).toBe(false);
    expect(lines.some((l) => l.startsWith('chainer marked '))).toBe(true);
    expect(await namespacesOf(process.pid)).toEqual([]);
  });

  // The lab's exit hook (lib/lab/cleanup.ts) removes the namespaces synchronously on SIGINT
  // and re-raises the signal, so the CLI ends by SIGINT rather than through the section's
  // graceful path; BPF programs and links go with the process. Either way nothing is left.
  it('SIGINT to `bpfkit demo` ends it promptly and leaves no namespace', async () => {
    const cli = join(packageRoot(), 'dist/cli.js');
    expect(existsSync(cli), 'dist/ is built (npx tsup)').toBe(true);
    const p = spawn(process.execPath, [cli, 'demo', '--only', 'pipeline', '--seconds', '600'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.on('exit', (code, signal) => r({ code, signal })));
    const guard = setTimeout(() => p.kill('SIGKILL'), 50_000); // bounded, also if the demo hangs
    const out: string[] = [];
    let during: string[] = [];
    try {
      for await (const l of createInterface({ input: p.stdout })) {
        out.push(l);
        if (l.startsWith('  t=1s')) {
          during = await namespacesOf(p.pid!);
          p.kill('SIGINT');
        }
      }
    } finally {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGINT');
    }
    const end = await exited;
    clearTimeout(guard);
    expect(during).toHaveLength(2); // a and b existed while it ran
    expect([
      { code: 0, signal: null },
      { code: null, signal: 'SIGINT' },
    ]).toContainEqual(end); // not SIGKILL by the guard
    expect(out.some((l) => l.startsWith('  t=2s'))).toBe(false);
    expect(await namespacesOf(p.pid!)).toEqual([]);
  });
});
