/** What the ring-buffer suites share around test/bpf/ringbuf_test.bpf.c. */
import { bytes, u32, type BpfObject } from '../../lib/index.js';

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
