/**
 * DoubleBuffer (lib/core/maps/swap.ts) with bpfkit_swap.h on the real kernel: a test program
 * (test/bpf/swap_test.bpf.c) reads its configuration through the swap slot and counts
 * torn configurations, while test runs race with flips.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { array, BpfkitError, BpfObject, DoubleBuffer, struct, u32, u64, type BpfMap, type XdpProgram } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const cfgCodec = struct('swap_cfg', { first: u32, _gap: array(u32, 31), last: u32, verdict: u32 });
type Cfg = ReturnType<typeof cfgCodec.decode>;
const XDP_DROP = 1;
const XDP_PASS = 2;
const cfg = (v: number, verdict = XDP_PASS) => ({ first: v, _gap: new Array<number>(31).fill(0), last: v, verdict });
const frame = Buffer.alloc(64);

let obj: BpfObject;
let prog: XdpProgram;
let slot: BpfMap<number, number>;
let copies: [BpfMap<number, Cfg>, BpfMap<number, Cfg>];
let outcomes: BpfMap<number, bigint[], number, bigint[] | bigint>;

const sumOutcomes = (): bigint[] => [0, 1, 2, 3].map((k) => (outcomes.get(k) ?? []).reduce((a, b) => a + b, 0n));
/** The slot's inner map id as bpftool reads it (an independent witness). */
function bpftoolSlot(): number {
  const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'lookup', 'id', String(slot.info.id), 'key', '0', '0', '0', '0']).toString());
  const v = out.value as string[] | number;
  return typeof v === 'number' ? v : Buffer.from(v.map((b) => Number(b))).readUInt32LE(0);
}

beforeAll(async () => {
  obj = await BpfObject.load(testObject('swap_test'));
  prog = obj.xdpProgram('xdp_swap');
  slot = obj.map('cfg', { key: u32, value: u32 });
  copies = [obj.map('cfg_a', { key: u32, value: cfgCodec }), obj.map('cfg_b', { key: u32, value: cfgCodec })];
  outcomes = obj.perCpuMap('outcomes', { key: u32, value: u64 });
});
afterAll(() => {
  for (const m of [slot, ...(copies ?? []), outcomes, prog]) m?.close();
  obj?.close();
});

describe('DoubleBuffer', () => {
  it('rejects bad arguments before touching the kernel', () => {
    expect(() => new DoubleBuffer(slot, [copies[0]] as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'copies' }));
    expect(() => new DoubleBuffer(slot, copies, 2 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'active' }));
    expect(DoubleBuffer.current(slot, copies)).toBeUndefined();
  });

  it('an empty slot: no configuration; each flip points the slot at the copy just written', async () => {
    expect((await prog.testRun(frame)).action).toBe('aborted');
    const db = new DoubleBuffer(slot, copies, DoubleBuffer.current(slot, copies) ?? 1);
    expect(db.idleIndex).toBe(0);
    db.idle.set(0, cfg(2, XDP_PASS));
    await db.flip();
    expect(db.activeIndex).toBe(0);
    expect(DoubleBuffer.current(slot, copies)).toBe(0);
    expect(bpftoolSlot()).toBe(copies[0].info.id);
    expect((await prog.testRun(frame)).action).toBe('pass');

    db.idle.set(0, cfg(4, XDP_DROP));
    expect((await prog.testRun(frame)).action).toBe('pass'); // written, not flipped: unseen
    await db.flip();
    expect(DoubleBuffer.current(slot, copies)).toBe(1);
    expect(bpftoolSlot()).toBe(copies[1].info.id);
    expect((await prog.testRun(frame)).action).toBe('drop');
    // adoption reads the same answer back
    expect(new DoubleBuffer(slot, copies, DoubleBuffer.current(slot, copies)).active).toBe(copies[1]);
  });

  it('a slot pointing at a map that is neither copy is an error, not a guess', () => {
    expect(() => DoubleBuffer.current(slot, [copies[0], copies[0]])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'slot' }));
  });

  it('500 flips while test runs race: every run saw one whole configuration', async () => {
    const db = new DoubleBuffer(slot, copies, DoubleBuffer.current(slot, copies)!);
    const before = sumOutcomes();
    let stop = false;
    let runs = 0;
    const runner = async () => {
      for (let i = 0; i < 10_000 && !stop; i++) {
        await prog.testRun(frame, { repeat: 2_000 });
        runs += 2_000;
      }
    };
    const runners = [runner(), runner()];
    for (let i = 0; i < 500; i++) {
      await db.serial(async () => {
        db.idle.set(0, cfg(100 + i, XDP_PASS));
        await db.flip();
      });
    }
    stop = true;
    await Promise.all(runners);
    const after = sumOutcomes().map((n, k) => n - before[k]!);
    expect(runs).toBeGreaterThan(0);
    expect(after[2]).toBe(0n); // never a torn configuration
    expect(after[3]).toBe(0n); // never an empty slot
    expect(after[0]! + after[1]!).toBe(BigInt(runs));
    expect(copies[db.activeIndex].get(0)?.first).toBe(599);
  });

  it('serial(): changes run one at a time in call order; a failure rejects only its own call', async () => {
    const db = new DoubleBuffer(slot, copies, DoubleBuffer.current(slot, copies)!);
    const order: string[] = [];
    const slow = db.serial(async () => {
      order.push('a+');
      await new Promise((r) => setTimeout(r, 20));
      order.push('a-');
    });
    const bad = db.serial(async () => {
      order.push('b');
      throw new BpfkitError('ERR_INVALID_ARGUMENT', 'no');
    });
    const last = db.serial(async () => {
      order.push('c');
      return 7;
    });
    await slow;
    await expect(bad).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(await last).toBe(7);
    expect(order).toEqual(['a+', 'a-', 'b', 'c']);
  });
});

describe('BpfMap.setAsync / writeColumns', () => {
  it('setAsync writes like set(); writeColumns writes raw bytes and checks their length first', async () => {
    const m = copies[0];
    await m.setAsync(0, cfg(9, XDP_DROP));
    expect(m.get(0)).toMatchObject({ first: 9, last: 9, verdict: XDP_DROP });
    const c = Buffer.alloc(outcomes.value.size);
    const k = Buffer.alloc(4 * 4);
    for (let i = 0; i < 4; i++) k.writeUInt32LE(i, i * 4);
    await expect(outcomes.writeColumns(k, c, 4)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'values' });
    expect(sumOutcomes().some((n) => n > 0n)).toBe(true); // unchanged by the rejected call
    expect(await outcomes.writeColumns(k, Buffer.alloc(outcomes.value.size * 4), 4)).toBe(4);
    expect(sumOutcomes()).toEqual([0n, 0n, 0n, 0n]);
  });
});
