/**
 * Helpers for tests that need lib/lab in a separate plain-Node process (e.g. to check
 * what happens when that process crashes). tsx is not available, so lib/lab is bundled
 * into one ESM file with esbuild (present as a dependency of vite/tsup).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Bundled lib/lab in a temp dir: `dir/lab.mjs`. Returns null if esbuild is unavailable. */
export async function bundleLab(): Promise<{ dir: string; module: string; cleanup(): void } | null> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-lab-child-'));
  const module = join(dir, 'lab.mjs');
  await esbuild.build({
    entryPoints: [join(ROOT, 'lib/lab/index.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: module,
    logLevel: 'silent',
  });
  return { dir, module, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Result of {@link runChild}. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The first stdout line that parsed as JSON. */
  report: unknown;
}

/**
 * Run `source` (an ESM module) with node from `dir`. If `signalAfterReport` is given, that
 * signal is sent to the child once it printed its JSON report line. Bounded by `timeoutMs`.
 */
export function runChild(
  dir: string,
  source: string,
  args: string[],
  opts: { signalAfterReport?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<ChildResult> {
  const file = join(dir, `child-${Math.random().toString(16).slice(2)}.mjs`);
  writeFileSync(file, source);
  return new Promise<ChildResult>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let report: unknown;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child timed out; stdout=${stdout} stderr=${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (report === undefined) {
        for (const line of stdout.split('\n')) {
          try {
            report = JSON.parse(line);
            if (opts.signalAfterReport) child.kill(opts.signalAfterReport);
            break;
          } catch {
            /* not the report */
          }
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, report });
    });
  });
}

/** Names from `ip netns list`. */
export function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** True if `pid` no longer runs (a zombie counts as gone). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return / Z /.test(stat.slice(stat.lastIndexOf(')')));
  } catch {
    return true;
  }
}
