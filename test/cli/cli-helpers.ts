/**
 * Running the built `bpfkit` command (dist/cli.js) as a child process: to completion
 * (`cli`), or long-lived with its output lines collected (`spawnCli`, for `firewall`).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { packageRoot } from '../../lib/core/native.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cliPath(): string {
  const p = join(packageRoot(), 'dist', 'cli.js');
  expect(existsSync(p), 'dist/cli.js is built by scripts/bootstrap.sh (npm test) or npx tsup').toBe(true);
  return p;
}

/** Runs `bpfkit ...args` to the end (killed after `timeoutMs`). */
export function cli(args: string[], opts: { timeoutMs?: number; spawn?: SpawnOptions } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts.spawn });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running `bpfkit` process whose stdout and stderr lines are collected. */
export class CliProcess {
  readonly p: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters = new Set<() => void>();

  constructor(args: string[]) {
    this.p = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (stream: NodeJS.ReadableStream, into: string[]): void => {
      createInterface({ input: stream }).on('line', (l) => {
        into.push(l);
        for (const w of this.#waiters) w();
      });
    };
    collect(this.p.stdout!, this.out);
    collect(this.p.stderr!, this.err);
    this.exited = new Promise((r) => this.p.on('exit', (code, signal) => r({ code, signal })));
    void this.exited.then(() => {
      for (const w of this.#waiters) w();
    });
  }

  /** Resolves with the first stdout (or stderr) line from index `from` on that matches; rejects after `timeoutMs` or on exit. */
  waitFor(match: RegExp, opts: { from?: number; stderr?: boolean; timeoutMs?: number } = {}): Promise<string> {
    const lines = opts.stderr ? this.err : this.out;
    const from = opts.from ?? 0;
    return new Promise((resolve, reject) => {
      let exited = false;
      void this.exited.then(() => (exited = true));
      const check = (): void => {
        const hit = lines.slice(from).find((l) => match.test(l));
        if (hit !== undefined) return done(() => resolve(hit));
        if (exited || this.p.exitCode !== null || this.p.signalCode !== null) {
          done(() => reject(new Error(`bpfkit exited before printing ${match}; stdout:\n${this.out.join('\n')}\nstderr:\n${this.err.join('\n')}`)));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`timed out waiting for ${match}; stdout:\n${this.out.join('\n')}\nstderr:\n${this.err.join('\n')}`))),
        opts.timeoutMs ?? 15_000,
      );
      const done = (fn: () => void): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        fn();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** JSON lines of stdout from index `from` on whose `type` is one of `types`. */
  records(types: string[], from = 0): Record<string, unknown>[] {
    return this.out
      .slice(from)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => types.includes(r.type as string));
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = 'SIGINT', graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.p.exitCode === null && this.p.signalCode === null) this.p.kill(signal);
    const t = setTimeout(() => this.p.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }
}
