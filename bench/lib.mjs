// Shared helpers for benchmarks.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Compiles bench/c/<name>.c against libbpf into build/bench/<name>; returns its path. */
export function buildC(name, extra = []) {
  const out = join(root, 'build', 'bench', name);
  mkdirSync(dirname(out), { recursive: true });
  execFileSync('gcc', ['-O2', '-o', out, join(root, 'bench', 'c', `${name}.c`), '-lbpf', ...extra], { stdio: 'inherit' });
  return out;
}

/** Median of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Pins every thread of this process (the libuv pool included) to one CPU, the last by
 * default, and returns a function that restores the previous set. BPF_PROG_TEST_RUN runs
 * on the calling thread's CPU, and the vCPUs of a shared VM do not run equally fast.
 */
export function pinProcess(cpu) {
  const pid = String(process.pid);
  const before = execFileSync('taskset', ['-p', '-c', pid], { encoding: 'utf8' }).trim().split(':').pop().trim();
  const target = cpu ?? Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) - 1;
  execFileSync('taskset', ['-a', '-p', '-c', String(target), pid], { stdio: 'ignore' });
  return () => execFileSync('taskset', ['-a', '-p', '-c', before, pid], { stdio: 'ignore' });
}

/**
 * Waits until this process is idle: a `windowMs` window in which all of its threads used
 * less than `maxCpuMs` of CPU, for at most `maxMs`. Returns the milliseconds waited. A
 * setup can leave work running after it resolves (an AclFirewall readies its idle blob for
 * one-rule changes once the event loop is free, and V8 collects the rule set's garbage on
 * its helper threads: ~0.3 s of CPU after attaching 100k rules, ~0.05 s after 10k), which
 * would otherwise fall into the scenario's measurement and take a CPU from the generator
 * or the receiver.
 */
export async function settle({ windowMs = 50, maxCpuMs = 5, maxMs = 3000 } = {}) {
  const t0 = performance.now();
  const cpuMs = () => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  // bounded: ends after maxMs whatever the process does
  while (performance.now() - t0 < maxMs) {
    const c0 = cpuMs();
    await new Promise((r) => setTimeout(r, windowMs));
    if (cpuMs() - c0 < maxCpuMs) break;
  }
  return performance.now() - t0;
}
