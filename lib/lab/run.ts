/**
 * Small command runner used by the lab. Everything the lab does to the system goes
 * through here so every external command has a timeout and a uniform error.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { BpfkitError } from '../core/errors.js';

/** Result of a finished command. `code` is the exit status, or 128+signal if it was killed. */
export interface RunResult {
  /** Standard output, as text. */
  stdout: string;
  /** Standard error, as text. */
  stderr: string;
  /** Exit status (128 + the signal number if it was killed). */
  code: number;
}

export interface RunOptions {
  /** Kill the command (SIGKILL) after this long and throw. Default 30 000 ms. */
  timeoutMs?: number;
  /** Written to the command's stdin (stdin is always closed, so nothing waits on it). */
  input?: string | Buffer;
  /** Throw `BpfkitError('ERR_SYSTEM')` on a nonzero exit. Default true. */
  check?: boolean;
}

export const DEFAULT_RUN_TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 64 * 1024 * 1024;

/** Set `BPFKIT_LAB_DEBUG=1` to log every command the lab runs to stderr. */
export function labDebug(...parts: unknown[]): void {
  if (process.env.BPFKIT_LAB_DEBUG) process.stderr.write(`[bpfkit-lab] ${parts.map(String).join(' ')}\n`);
}

/** `ip` binary; overridable with `BPFKIT_IP` for unusual installs. */
export function ipBin(): string {
  return process.env.BPFKIT_IP ?? 'ip';
}

/**
 * Python interpreter for the helpers that need raw sockets/ioctls (ping, GRO toggling).
 * Prefers the system interpreter; `BPFKIT_PYTHON` overrides.
 */
export function pythonBin(): string {
  if (process.env.BPFKIT_PYTHON) return process.env.BPFKIT_PYTHON;
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

function quote(argv: readonly string[]): string {
  return argv
    .map((a) => (a.length > 200 ? `${a.slice(0, 60)}…(${a.length} chars)` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

export function describeCommand(file: string, args: readonly string[]): string {
  return quote([file, ...args]);
}

function signalNumber(sig: NodeJS.Signals | null | undefined): number {
  if (!sig) return 0;
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

/**
 * Run a command to completion. Never uses a shell. A timeout always throws (it is not an
 * exit status); a nonzero exit throws only when `check` is true (the default).
 */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const check = opts.check ?? true;
  const cmd = describeCommand(file, args);
  labDebug('run', cmd);
  return new Promise<RunResult>((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT, encoding: 'utf8', windowsHide: true },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: unknown };
        if (typeof e.code === 'string') {
          // spawn failure (ENOENT...) or maxBuffer exceeded
          const hint = e.code === 'ENOENT' ? ` (is '${file}' installed and on PATH?)` : '';
          reject(
            new BpfkitError('ERR_SYSTEM', `cannot run ${cmd}: ${e.message}${hint}`, {
              syscall: 'spawn',
              cause: err,
              details: { command: cmd },
            }),
          );
          return;
        }
        if (e.killed && e.signal === 'SIGKILL') {
          reject(
            new BpfkitError('ERR_SYSTEM', `timed out after ${timeoutMs} ms: ${cmd}${tail(stderr)}`, {
              details: { command: cmd, stdout, stderr, timedOut: true },
            }),
          );
          return;
        }
        const code = typeof e.code === 'number' ? e.code : 128 + signalNumber(e.signal);
        if (check) {
          reject(commandError(cmd, code, stdout, stderr));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    child.stdin?.on('error', () => {
      /* the command may exit without reading its input; EPIPE is not our error */
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function tail(stderr: string): string {
  const t = stderr.trim();
  return t ? `: ${t.length > 2000 ? `…${t.slice(-2000)}` : t}` : '';
}

export function commandError(cmd: string, code: number, stdout: string, stderr: string): BpfkitError {
  return new BpfkitError('ERR_SYSTEM', `command failed (exit ${code}): ${cmd}${tail(stderr || stdout)}`, {
    details: { command: cmd, code, stdout, stderr },
  });
}

/** Synchronous variant for exit hooks: never throws, returns null on spawn failure. */
export function runSync(file: string, args: readonly string[], timeoutMs = 5_000): RunResult | null {
  labDebug('runSync', describeCommand(file, args));
  try {
    const r = spawnSync(file, [...args], {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: MAX_OUTPUT,
    });
    if (r.error && r.status === null) return null;
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status ?? 128 + signalNumber(r.signal) };
  } catch {
    return null;
  }
}

/** Sleep helper. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Poll `probe` until it returns a value other than `undefined`, at most `timeoutMs`.
 * Throws `BpfkitError('ERR_SYSTEM')` with `what` on timeout.
 */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  // bounded: at most timeoutMs/intervalMs iterations plus one
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      throw new BpfkitError('ERR_SYSTEM', `timed out after ${timeoutMs} ms waiting for ${what}`, {
        cause: lastErr,
      });
    }
    await delay(intervalMs);
  }
}
