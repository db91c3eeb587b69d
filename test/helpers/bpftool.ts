/**
 * bpftool as the independent witness of what the kernel holds, for tests that check
 * something was unloaded.
 */
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether bpftool sees a program with this id. */
export function bpftoolProgExists(id: number): boolean {
  try {
    execFileSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The ids of `ids` still loaded after a bounded wait (up to `ms`), so [] means all gone.
 * A program released by closing its last fd does not vanish at once: a tracing link
 * (raw_tp, tp_btf) puts its program only after an RCU grace period, and a concurrent
 * `bpftool prog show` in another test briefly holds a reference too. Checking once right
 * after exit made CI flaky; a program that stays past the wait is a real leak.
 */
export async function progsStillLoaded(ids: readonly number[], ms = 3_000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = ids.filter(bpftoolProgExists);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = left.filter(bpftoolProgExists);
  }
  return left;
}
