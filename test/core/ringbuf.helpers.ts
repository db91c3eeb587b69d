/** What the ring-buffer suites share around test/bpf/ringbuf_test.bpf.c. */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  bytes,
  i16,
  i32,
  i64,
  i64n,
  i8,
  u16,
  u32,
  u64,
  u64n,
  u8,
  type BpfMap,
  type BpfObject,
  type Codec,
  type RingBuffer,
  type XdpProgram,
} from '../../lib/index.js';
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

// ---- random records through test/bpf/ringbuf_test.bpf.c -----------------------------------

const LE = endianness() === 'LE';
/**
 * Struct members of every integer kind and `bytes(n)`, aligned, 72 bytes: seq and size
 * first, as xdp_sized_record writes them ('_gap' is padding). The columns suite's struct;
 * the cursor suite's starts with it.
 */
export const SIZED_MEMBERS = [
  { name: 'seq', codec: u64 },
  { name: 'size', codec: u32 },
  { name: 'a', codec: i32 },
  { name: 'b', codec: u16 },
  { name: 'c', codec: i16 },
  { name: 'd', codec: u8 },
  { name: 'e', codec: i8 },
  { name: '_gap', codec: bytes(2) },
  { name: 'f', codec: u64n },
  { name: 'g', codec: i64n },
  { name: 'h', codec: i64 },
  { name: 'blob', codec: bytes(20) },
  { name: 'odd', codec: bytes(7) },
  { name: 'tail', codec: u8 },
] as const;

/** Ring bytes a record of `size` takes (8-byte header, 8-byte aligned). */
export const step = (size: number): number => (size + 8 + 7) & ~7;
/** Any 64-byte frame (xdp_discard reserves and discards one record per run). */
export const frame64 = Buffer.alloc(64);

/** The frame that makes xdp_sized_record write a record of `size` bytes (its first u32, host order). */
export function sizeFrame(size: number): Buffer {
  const f = Buffer.alloc(64);
  if (LE) f.writeUInt32LE(size, 0);
  else f.writeUInt32BE(size, 0);
  return f;
}

export interface RandomRounds<E> {
  sized: XdpProgram;
  discard: XdpProgram;
  /** The program's scratch map (the bytes records are copied from). */
  scratch: BpfMap<number, Buffer>;
  /** The consumer under test, already listening. */
  rb: RingBuffer<E>;
  codec: Codec<E, unknown>;
  rand: () => number;
  /** Ring bytes, scratch bytes, and how many of the scratch's first bytes are random. */
  ring: number;
  scratchBytes: number;
  randomBytes: number;
  /** How many records the consumer has delivered so far. */
  delivered: () => number;
}

/**
 * Eight rounds of random records while the consumer is paused: random contents, sizes
 * (some shorter than the codec: malformed), discarded records, filling the ring close to
 * full so that later rounds wrap around; then resumed until it has taken them all.
 * Returns what the codec's decode gives for the records it can hold, and how many are short.
 */
export async function randomRounds<E>(t: RandomRounds<E>): Promise<{ want: E[]; short: number }> {
  const { rand, codec } = t;
  const want: E[] = [];
  let seq = 0;
  let short = 0;
  for (let round = 0; round < 8; round++) {
    const content = Buffer.alloc(t.scratchBytes);
    for (let i = 0; i < t.randomBytes; i++) content[i] = Math.floor(rand() * 256);
    t.scratch.set(0, content);
    t.rb.pause();
    let pending = 0;
    for (let i = 0; i < 2000; i++) {
      const r = rand();
      const size = r < 0.1 ? 16 + Math.floor(rand() * 40) : codec.size + Math.floor(rand() * 600);
      if (pending + step(size) + step(64) > t.ring - 8) break;
      if (r > 0.9) {
        await t.discard.testRun(frame64);
        pending += step(64);
        continue;
      }
      await t.sized.testRun(sizeFrame(size));
      pending += step(size);
      const rec = Buffer.from(content.subarray(0, size));
      if (LE) {
        rec.writeBigUInt64LE(BigInt(seq++), 0);
        rec.writeUInt32LE(size, 8);
      } else {
        rec.writeBigUInt64BE(BigInt(seq++), 0);
        rec.writeUInt32BE(size, 8);
      }
      if (size < codec.size) short++;
      else want.push(codec.decode(rec, 0));
    }
    expect(t.rb.stats().pendingBytes).toBe(pending);
    t.rb.resume();
    expect(await until(() => t.rb.stats().pendingBytes === 0 && t.delivered() === want.length)).toBe(true);
  }
  return { want, short };
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
