/** Pinning the test process to one CPU, so BPF_PROG_TEST_RUN runs there. */
import { execFileSync } from 'node:child_process';

/** Runs `fn` with the whole process (libuv pool included) on CPU `cpu`, then restores its affinity. */
export async function onCpu<T>(cpu: number, fn: () => Promise<T>): Promise<T> {
  const affinity = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' })
    .trim()
    .split(/:\s*/)
    .pop()!;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  try {
    return await fn();
  } finally {
    execFileSync('taskset', ['-a', '-p', affinity, String(process.pid)], { stdio: 'ignore' });
  }
}
