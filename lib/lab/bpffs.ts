import { readFileSync } from 'node:fs';
import { BpfkitError } from '../core/errors.js';
import { run } from './run.js';

/** Where bpfkit expects the BPF filesystem. */
export const BPFFS_PATH = '/sys/fs/bpf';

/** True if a `bpf` filesystem is mounted at `path` (per /proc/self/mounts). */
export function isBpffsMounted(path = BPFFS_PATH): boolean {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return false;
  }
  return mounts.split('\n').some((line) => {
    const f = line.split(' ');
    return f[1] === path && f[2] === 'bpf';
  });
}

/**
 * Make sure the BPF filesystem is mounted at /sys/fs/bpf (`mount -t bpf bpf /sys/fs/bpf`
 * if it is not). Mounting needs root; otherwise this throws `ERR_PERMISSION` saying what to
 * run. Other mount failures throw `ERR_SYSTEM`.
 */
export async function ensureBpffs(path = BPFFS_PATH): Promise<void> {
  if (isBpffsMounted(path)) return;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new BpfkitError('ERR_PERMISSION', `the BPF filesystem is not mounted at ${path} and mounting it needs root: run 'sudo mount -t bpf bpf ${path}'`);
  }
  try {
    await run('mount', ['-t', 'bpf', 'bpf', path], { timeoutMs: 10_000 });
  } catch (err) {
    // a concurrent caller may have mounted it in the meantime
    if (isBpffsMounted(path)) return;
    throw new BpfkitError('ERR_SYSTEM', `cannot mount the BPF filesystem at ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!isBpffsMounted(path)) {
    throw new BpfkitError('ERR_SYSTEM', `mounted bpf at ${path} but it does not show in /proc/self/mounts`);
  }
}
