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
