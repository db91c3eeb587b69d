/**
 * Two CPUs reporting one flow at once (bpf/acl/report.h): with eventIntervalMs 0 every
 * packet of a flow reports, so a flood of one flow on two CPUs makes their reports race
 * on the flow's shared state. Each packet must be accounted exactly once: either by its
 * own event or in the `suppressed` count of a later one (a packet whose event found the
 * ring full). Before the race was closed, the CPU with the smaller total could count the
 * other's reporting packet again, or wrap its count to 2^32 - 1.
 *
 * Frames go through testRun on both CPUs at once: this process pinned to CPU 0, and
 * bpftool's `prog run` of the same program pinned to CPU 1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent } from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { frame, onCpu0, sleep, testRunHost, v4 } from './acl.helpers.js';

const run = promisify(execFile);
const N = 200_000; // packets per CPU per round
const ROUNDS = 3;

let lab: Lab;
let fw: AclFirewall;
let dir: string;
const events: AclEvent[] = [];

beforeAll(async () => {
  const t = await testRunHost('acl-race');
  lab = t.lab;
  fw = await AclFirewall.attach(t.ifname, {
    netns: t.host.netns,
    maxRules: 16,
    eventIntervalMs: 0,
    rules: [{ id: 'udp', action: 'deny', proto: 'udp' }],
  });
  fw.on('deny', (e) => events.push(e));
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-acl-race-'));
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Waits until no event has arrived for 200 ms (bounded). */
async function settle(): Promise<void> {
  let n = -1;
  for (let i = 0; i < 100 && n !== events.length; i++) {
    n = events.length;
    await sleep(200);
  }
}

describe('reports of one flow racing on two CPUs', () => {
  it('every packet is in exactly one event: its own, or a later one as suppressed', async () => {
    const f = frame({ src: v4('198.18.9.7'), dst: v4('198.18.0.2'), proto: 17, sport: 4242, dport: 53 });
    const file = join(dir, 'frame.bin');
    writeFileSync(file, f);
    const id = String(fw.program.info.id);
    let sent = 0;
    await onCpu0(async () => {
      for (let r = 0; r < ROUNDS; r++) {
        // the child first (bpftool takes a few ms to start), then this CPU's run
        const other = run('taskset', ['-c', '1', 'bpftool', 'prog', 'run', 'id', id, 'data_in', file, 'repeat', String(N)]);
        await fw.testRun(f, { repeat: N });
        await other;
        sent += 2 * N;
      }
      await settle();
      // one more packet, alone: its event reports whatever is still counted as suppressed
      await fw.testRun(f);
      sent += 1;
      await settle();
    });
    const wrapped = events.filter((e) => e.suppressed > sent);
    expect(wrapped.map((e) => e.suppressed).slice(0, 5), 'suppressed counts beyond the packets sent').toEqual([]);
    const accounted = events.reduce((a, e) => a + 1 + e.suppressed, 0);
    expect(accounted, `${events.length} events`).toBe(sent);
  }, 120_000);
});
