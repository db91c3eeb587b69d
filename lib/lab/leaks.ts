/**
 * Leak detection for test suites: lab namespaces left behind, test pins under
 * /sys/fs/bpf, and XDP programs attached in the root namespace. Read-only except for
 * {@link removeLeaks}, which is meant for a test runner's global teardown.
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BPFFS_PATH } from './bpffs.js';
import { LAB_NETNS_PREFIX, LAB_OWNER_ALIAS_PREFIX, NETNS_RUN_DIR } from './common.js';
import { ipBin, run } from './run.js';

/** Pins whose top-level name starts with this are test pins (tests pin under /sys/fs/bpf). */
export const TEST_PIN_PREFIX = 'bpfkit-test';

/** A lab namespace found on the system. */
export interface LabNamespaceInfo {
  /** The namespace's name under /run/netns. */
  name: string;
  /** pid of the process that created it (from its `lo` alias), if recorded. */
  ownerPid?: number;
  /** Whether that process is still running. */
  ownerAlive: boolean;
  /** Age of the /run/netns entry. */
  ageMs: number;
}

/** An XDP program attached to a root-namespace interface. */
export interface XdpAttachment {
  /** Interface name. */
  ifname: string;
  /** Interface index. */
  ifindex: number;
  /** XDP mode: driver, generic (skb) or offloaded (hw). */
  mode: 'drv' | 'skb' | 'hw';
  /** Kernel id of the attached program. */
  progId: number;
  /** Its name, when the kernel reports it. */
  progName?: string;
}

/** What {@link findLeaks} found. */
export interface LabLeaks {
  /** Lab namespaces whose owner process is gone. */
  namespaces: LabNamespaceInfo[];
  /** Test pins (`bpfkit-test*`, see {@link TEST_PIN_PREFIX}) left on the BPF filesystem. */
  pins: string[];
  /** XDP programs attached to interfaces of the root namespace. */
  rootXdp: XdpAttachment[];
}

/** Whether a process with this pid exists (EPERM still means it exists). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** All namespaces named with {@link LAB_NETNS_PREFIX}, with their recorded owner. */
export async function listLabNamespaces(prefix = LAB_NETNS_PREFIX): Promise<LabNamespaceInfo[]> {
  let names: string[];
  try {
    names = readdirSync(NETNS_RUN_DIR).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  return Promise.all(
    names.map(async (name): Promise<LabNamespaceInfo> => {
      let ageMs = 0;
      try {
        ageMs = Date.now() - statSync(join(NETNS_RUN_DIR, name)).mtimeMs;
      } catch {
        /* raced with deletion */
      }
      let ownerPid: number | undefined;
      try {
        const r = await run(ipBin(), ['-n', name, '-j', 'link', 'show', 'dev', 'lo'], { timeoutMs: 5_000 });
        const alias = String((JSON.parse(r.stdout) as Array<{ ifalias?: string }>)[0]?.ifalias ?? '');
        const m = alias.startsWith(LAB_OWNER_ALIAS_PREFIX) ? /pid=(\d+)/.exec(alias) : null;
        if (m) ownerPid = Number(m[1]);
      } catch {
        /* unreadable: treat as unowned */
      }
      return { name, ...(ownerPid !== undefined ? { ownerPid } : {}), ownerAlive: ownerPid !== undefined && pidAlive(ownerPid), ageMs };
    }),
  );
}

const XDP_MODES: Record<number, XdpAttachment['mode']> = { 1: 'drv', 2: 'skb', 3: 'hw' };

interface XdpJson {
  mode?: number;
  prog?: { id?: number; name?: string };
  attached?: Array<{ mode?: number; prog?: { id?: number; name?: string } }>;
}

/** XDP programs attached to interfaces of the root network namespace (read-only). */
export function listRootXdp(): Promise<XdpAttachment[]> {
  return listXdp();
}

/**
 * XDP programs attached to interfaces of a namespace: a lab namespace name (`host.netns`)
 * or, by default, the root namespace. Read-only.
 */
export async function listXdp(opts: { netns?: string } = {}): Promise<XdpAttachment[]> {
  const ns = opts.netns ? ['-n', opts.netns] : [];
  const r = await run(ipBin(), [...ns, '-j', '-d', 'link', 'show'], { timeoutMs: 10_000 });
  const links = JSON.parse(r.stdout || '[]') as Array<{ ifname: string; ifindex: number; xdp?: XdpJson }>;
  const out: XdpAttachment[] = [];
  for (const l of links) {
    if (!l.xdp) continue;
    const entries = l.xdp.attached?.length ? l.xdp.attached : [{ mode: l.xdp.mode, prog: l.xdp.prog }];
    for (const e of entries) {
      const mode = XDP_MODES[e.mode ?? 0];
      if (!mode) continue;
      out.push({
        ifname: l.ifname,
        ifindex: l.ifindex,
        mode,
        progId: e.prog?.id ?? 0,
        ...(e.prog?.name ? { progName: e.prog.name } : {}),
      });
    }
  }
  return out;
}

/** Top-level entries of `dir` (default /sys/fs/bpf) whose name starts with `prefix`. */
export function listPins(prefix = TEST_PIN_PREFIX, dir = BPFFS_PATH): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => n.startsWith(prefix))
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** Options for {@link findLeaks}. */
export interface FindLeaksOptions {
  /** Pin name prefix. Default {@link TEST_PIN_PREFIX}. */
  pinPrefix?: string;
  /**
   * Count namespaces whose creator is still running as leaks too. Default false: a live
   * process may legitimately own a lab (e.g. a concurrent test run).
   */
  includeLiveOwners?: boolean;
  /** Namespaces without an owner record younger than this are assumed mid-creation. Default 10 000 ms. */
  unownedGraceMs?: number;
  /** Root XDP attachments to ignore (e.g. what was attached before the test run). */
  xdpBaseline?: XdpAttachment[];
}

function sameXdp(a: XdpAttachment, b: XdpAttachment): boolean {
  return a.ifindex === b.ifindex && a.mode === b.mode && a.progId === b.progId;
}

/** Look for leftovers of bpfkit labs and tests. Read-only. */
export async function findLeaks(opts: FindLeaksOptions = {}): Promise<LabLeaks> {
  const grace = opts.unownedGraceMs ?? 10_000;
  const namespaces = (await listLabNamespaces()).filter((n) => {
    if (opts.includeLiveOwners) return true;
    if (n.ownerPid !== undefined) return !n.ownerAlive;
    return n.ageMs >= grace;
  });
  const baseline = opts.xdpBaseline ?? [];
  const rootXdp = (await listRootXdp()).filter((x) => !baseline.some((b) => sameXdp(b, x)));
  return { namespaces, pins: listPins(opts.pinPrefix ?? TEST_PIN_PREFIX), rootXdp };
}

/** True if {@link findLeaks} found anything. */
export function hasLeaks(l: LabLeaks): boolean {
  return l.namespaces.length + l.pins.length + l.rootXdp.length > 0;
}

/** Multi-line human-readable list of leaks. */
export function formatLeaks(l: LabLeaks): string {
  const lines: string[] = [];
  for (const n of l.namespaces) {
    lines.push(`  netns ${n.name}${n.ownerPid !== undefined ? ` (created by pid ${n.ownerPid}, ${n.ownerAlive ? 'alive' : 'gone'})` : ''}`);
  }
  for (const p of l.pins) lines.push(`  pin ${p}`);
  for (const x of l.rootXdp) {
    lines.push(`  xdp (${x.mode}) prog id ${x.progId}${x.progName ? ` '${x.progName}'` : ''} on root-namespace ${x.ifname}`);
  }
  return lines.join('\n');
}

/**
 * Remove what {@link findLeaks} reported: kill processes in leaked namespaces and delete
 * them, delete the pins (that detaches pinned links), then detach leaked root-namespace
 * XDP programs. Returns a list of things that could not be removed.
 */
export async function removeLeaks(l: LabLeaks): Promise<string[]> {
  const failures: string[] = [];
  for (const n of l.namespaces) {
    const pids = await run(ipBin(), ['netns', 'pids', n.name], { check: false, timeoutMs: 10_000 }).catch(() => null);
    for (const tok of pids?.stdout.split(/\s+/) ?? []) {
      const pid = Number(tok);
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    const r = await run(ipBin(), ['netns', 'del', n.name], { check: false, timeoutMs: 10_000 }).catch((e: Error) => ({
      code: 1,
      stderr: e.message,
    }));
    if (r.code !== 0) failures.push(`netns ${n.name}: ${r.stderr.trim()}`);
  }
  for (const p of l.pins) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch (err) {
      failures.push(`pin ${p}: ${(err as Error).message}`);
    }
  }
  if (l.rootXdp.length) {
    // removing pins may already have detached link-based attachments
    const still = await listRootXdp().catch(() => l.rootXdp);
    for (const x of l.rootXdp) {
      if (!still.some((s) => sameXdp(s, x))) continue;
      const flag = x.mode === 'skb' ? 'xdpgeneric' : x.mode === 'hw' ? 'xdpoffload' : 'xdpdrv';
      const r = await run(ipBin(), ['link', 'set', 'dev', x.ifname, flag, 'off'], { check: false, timeoutMs: 10_000 });
      if (r.code !== 0) failures.push(`xdp on ${x.ifname}: ${r.stderr.trim()}`);
    }
  }
  return failures;
}
