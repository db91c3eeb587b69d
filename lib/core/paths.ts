/** Where bpfkit's own files are: the package root and its compiled BPF objects. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfkitError } from './errors.js';

let root: string | undefined;

/** The package root (the directory holding bpfkit's package.json). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'bpfkit') return (root = dir);
      } catch {
        /* keep walking */
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new BpfkitError('ERR_NOT_FOUND', 'cannot find the bpfkit package root (package.json named "bpfkit")');
}

/**
 * Path of one of bpfkit's own compiled BPF objects (e.g. 'counter' ->
 * <root>/build/bpf/counter.bpf.o, or the copy shipped in prebuilds/bpf/).
 */
export function bpfObjectPath(name: string): string {
  const r = packageRoot();
  for (const p of [join(r, 'build', 'bpf', `${name}.bpf.o`), join(r, 'prebuilds', 'bpf', `${name}.bpf.o`)]) {
    if (existsSync(p)) return p;
  }
  throw new BpfkitError('ERR_NOT_FOUND', `bpfkit's BPF object '${name}.bpf.o' is missing: build it with 'npm run build'`);
}
