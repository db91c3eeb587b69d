/**
 * A child node process running the built library (dist/), for tests of what happens
 * across processes (GC of handles, pins that outlive their owner, shared mappings).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { packageRoot } from '../../lib/core/native.js';

/**
 * Runs `body` in a child node process (with --expose-gc) where `m` is the library,
 * `say(s)` prints a line and `wait()` resolves on the next chunk of stdin. `next()`
 * yields the child's stdout lines (killing it if one takes over 20 s).
 */
export function nodeChild(body: string) {
  const dist = join(packageRoot(), 'dist/index.js');
  expect(existsSync(dist), 'dist/ is built by scripts/bootstrap.sh (npm test)').toBe(true);
  const src = `import('${dist}').then(async (m) => { const say = (s) => console.log(s); const wait = () => new Promise((r) => process.stdin.once('data', r)); ${body} })`;
  const p = spawn(process.execPath, ['--expose-gc', '-e', src], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  const next = async () => {
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    try {
      return (await lines.next()).value as string | undefined;
    } finally {
      clearTimeout(t);
    }
  };
  return { p, next, exited };
}
