/**
 * vitest globalSetup.
 *
 * setup: mount the BPF filesystem, remember which XDP programs the root namespace already
 * had, and clear leftovers of earlier runs that died without a teardown.
 *
 * teardown: fail the run (throw, with a list) if anything bpfkit-owned leaked — lab
 * namespaces (`bk-…`), pins under /sys/fs/bpf named `bpfkit-test…`, XDP programs newly
 * attached in the root namespace — and remove them, so one bad run does not poison the
 * next.
 *
 * Several test runs may share a machine. Namespaces carry their creator's pid, so a live
 * run's labs are never touched. Pins and root XDP programs cannot be attributed, so while
 * another run is active they are only reported as warnings and left alone.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBpffs, findLeaks, formatLeaks, hasLeaks, listRootXdp, pidAlive, removeLeaks, type LabLeaks, type XdpAttachment } from '../lib/lab/index.js';

const RUNS_DIR = '/run/bpfkit-test-runs';
let xdpBaseline: XdpAttachment[] = [];
let active = false;

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Other test runs currently active on this machine (stale markers are removed). */
function otherLiveRuns(): number[] {
  let entries: string[];
  try {
    entries = readdirSync(RUNS_DIR);
  } catch {
    return [];
  }
  const live: number[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (pidAlive(pid)) live.push(pid);
    else rmSync(join(RUNS_DIR, e), { force: true });
  }
  return live;
}

/** Split leaks into what can be attributed safely given concurrent runs. */
function attributable(leaks: LabLeaks, concurrent: boolean): { mine: LabLeaks; unsure: LabLeaks } {
  if (!concurrent) return { mine: leaks, unsure: { namespaces: [], pins: [], rootXdp: [] } };
  return {
    mine: { namespaces: leaks.namespaces, pins: [], rootXdp: [] },
    unsure: { namespaces: [], pins: leaks.pins, rootXdp: leaks.rootXdp },
  };
}

export async function setup(): Promise<void> {
  if (!isRoot()) {
    console.warn('[bpfkit global-setup] not root: skipping bpffs mount and leak checks; datapath tests will fail');
    return;
  }
  await ensureBpffs();
  active = true;
  mkdirSync(RUNS_DIR, { recursive: true });
  writeFileSync(join(RUNS_DIR, String(process.pid)), `${new Date().toISOString()}\n`);
  const concurrent = otherLiveRuns().length > 0;
  // leftovers of a run that was killed before its teardown
  const stale = await findLeaks();
  const { mine } = attributable(stale, concurrent);
  if (hasLeaks(mine)) {
    console.warn(`[bpfkit global-setup] removing leftovers of an earlier run:\n${formatLeaks(mine)}`);
    const failures = await removeLeaks(mine);
    if (failures.length) console.warn(`[bpfkit global-setup] could not remove:\n  ${failures.join('\n  ')}`);
  }
  xdpBaseline = await listRootXdp();
  if (xdpBaseline.length) {
    console.warn(
      `[bpfkit global-setup] root namespace already has XDP programs (left alone):\n${formatLeaks({ namespaces: [], pins: [], rootXdp: xdpBaseline })}`,
    );
  }
}

export async function teardown(): Promise<void> {
  if (!active) return;
  active = false;
  rmSync(join(RUNS_DIR, String(process.pid)), { force: true });
  const concurrent = otherLiveRuns().length > 0;
  const leaks = await findLeaks({ xdpBaseline });
  const { mine, unsure } = attributable(leaks, concurrent);
  if (hasLeaks(unsure)) {
    console.warn(`[bpfkit global-teardown] another test run is active, so these are left alone (they may be its):\n${formatLeaks(unsure)}`);
  }
  if (!hasLeaks(mine)) return;
  const failures = await removeLeaks(mine);
  // vitest 4 logs teardown errors ("error during close") without failing the run, so also
  // set the exit code explicitly
  process.exitCode = 1;
  throw new Error(
    `bpfkit test run leaked kernel objects (now removed${failures.length ? ' except as noted' : ''}):\n${formatLeaks(mine)}` +
      (failures.length ? `\ncould not remove:\n  ${failures.join('\n  ')}` : ''),
  );
}
