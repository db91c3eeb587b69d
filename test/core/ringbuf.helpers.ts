/** What the ring-buffer suites share around test/bpf/ringbuf_test.bpf.c. */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytes, u32, type BpfObject } from '../../lib/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { testObject } from '../helpers/objects.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 5 ms for at most `ms`; returns its last value. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let t = 0; t < ms; t += 5) {
    if (cond()) return true;
    await sleep(5);
  }
  return cond();
}

/** The test program's `produced` counter (first u64 of .bss). */
export function produced(obj: BpfObject): number {
  using bss = obj.map('.bss', { key: u32, value: bytes(24) });
  return Number(bss.get(0)!.readBigUInt64LE(0));
}

// ---- child processes: unref, GC, exit with open handles, listener exceptions ----------

let childDir: string | undefined;
async function childModule(): Promise<string> {
  if (childDir) return childDir;
  // bundled from the sources, so that children run the code under test
  const esbuild = await import('esbuild');
  const dir = join(packageRoot(), 'build', 'test-tmp', `ringbuf-${process.pid}-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  await esbuild.build({
    entryPoints: [join(packageRoot(), 'lib/core/index.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(dir, 'core.mjs'),
    logLevel: 'silent',
    external: ['node-gyp-build'],
  });
  return (childDir = dir);
}
/** Removes the bundled core of runChild() (each test file that uses it calls this in afterAll). */
export function removeChildModule(): void {
  if (childDir) rmSync(childDir, { recursive: true, force: true });
  childDir = undefined;
}

/**
 * Runs `body` (an ESM script next to the bundled core, with `bk` the core's exports, `obj`
 * test/bpf/ringbuf_test.bpf.o loaded and `rec` its rec64 codec) in a child process; resolves
 * with the exit code, the output, and whether it had to be killed. Kills it; kills it `killAfterMs` after the start, or (afterReady)
 * after it printed 'ready', so a slow start on a loaded machine is not taken for an exit.
 */
export async function runChild(
  body: string,
  opts: { args?: string[]; killAfterMs: number; afterReady?: boolean },
): Promise<{ code: number | null; out: string; killed: boolean }> {
  const dir = await childModule();
  const file = join(dir, `child-${Math.random().toString(16).slice(2)}.mjs`);
  writeFileSync(
    file,
    `import * as bk from './core.mjs';\nconst obj = await bk.BpfObject.load(${JSON.stringify(testObject('ringbuf_test'))});\n` +
      `const rec = bk.struct('rec64', { seq: bk.u64, ktime: bk.u64, len: bk.u32, ifindex: bk.u32, fill: bk.bytes(40) });\n${body}\n`,
  );
  const child = spawn(process.execPath, [...(opts.args ?? []), file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let killed = false;
  const kill = () => {
    killed = true;
    child.kill('SIGKILL');
  };
  let waiting = opts.afterReady === true;
  let timer = setTimeout(kill, waiting ? 60_000 : opts.killAfterMs);
  child.stdout.on('data', (d) => {
    out += d;
    if (waiting && out.includes('ready')) {
      waiting = false;
      clearTimeout(timer);
      timer = setTimeout(kill, opts.killAfterMs);
    }
  });
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  clearTimeout(timer);
  rmSync(file, { force: true });
  return { code, out, killed };
}
