/** Tests that run the library in child processes import dist/: make sure it is current. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** dist/ must hold the current library and CLI: rebuild it with tsup when lib/ is newer. */
export function ensureDist(): void {
  const built = ['index.js', 'cli.js'].map((f) => join(ROOT, 'dist', f));
  const src = newest(join(ROOT, 'lib'));
  if (built.every((out) => existsSync(out) && statSync(out).mtimeMs >= src)) return;
  execFileSync('npx', ['tsup'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
}
