/**
 * test/pack: the package as a user gets it. These helpers build what the tests inspect:
 * the self-contained prebuild (scripts/prebuild.sh: cached static dependencies, then the
 * addon in prebuild mode) and the npm tarball. Both are slow on a fresh machine (the
 * static dependencies take minutes, once), so hooks that call them get long timeouts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** The repository root (this file is test/pack/helpers.ts). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where node-gyp-build looks for our prebuild on this machine. */
export const PREBUILD = join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'bpfkit.napi.glibc.node');
/** Cold: static dependencies from source (minutes on a busy 2-CPU machine) plus the addon. */
export const BUILD_TIMEOUT_MS = 25 * 60_000;

/** Runs a command, resolving to stdout; on failure the error names the command and its stderr tail. */
export async function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  try {
    const r = await exec(cmd, args, { cwd: opts.cwd ?? REPO, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, env: opts.env ?? process.env });
    return r.stdout;
  } catch (e) {
    const x = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${x.message}\n${(x.stderr ?? '').slice(-4000)}\n${(x.stdout ?? '').slice(-2000)}`, { cause: e });
  }
}

/** Builds (or finds cached) the prebuild; resolves to its path. */
export async function ensurePrebuild(): Promise<string> {
  await sh('bash', ['scripts/prebuild.sh'], { timeoutMs: BUILD_TIMEOUT_MS });
  return PREBUILD;
}

export interface PackedFile {
  path: string;
  size: number;
}
export interface Packed {
  /** The tarball's path (in a fresh temporary directory). */
  file: string;
  /** Compressed and unpacked sizes in bytes. */
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

/** `npm pack` of the working tree (dist/ and the prebuild must exist) into a fresh directory. */
export async function packTarball(): Promise<Packed> {
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-pack-'));
  const out = await sh('npm', ['pack', '--json', '--pack-destination', dir], { timeoutMs: 300_000 });
  const [p] = JSON.parse(out) as { filename: string; size: number; unpackedSize: number; files: PackedFile[] }[];
  return { file: join(dir, p!.filename), size: p!.size, unpackedSize: p!.unpackedSize, files: p!.files };
}
