/**
 * The many-records producer of the benchmark (xdp_records_loop in test/bpf/ringbuf_test.bpf.c:
 * N records per BPF_PROG_TEST_RUN through bpf_loop(), N from the packet, a forced wake-up
 * every `wake_every` records), on the real kernel: exact counts, in order, and losses
 * counted exactly when the ring is too small.
 */
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { BpfObject, bytes, struct, u32, u64n, type RingBuffer } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';
import { produced, sleep, until } from './ringbuf.helpers.js';

const rec64 = struct('rec64', { seq: u64n, ktime: u64n, len: u32, ifindex: u32, fill: bytes(40) });
const REC64_STEP = 64 + 8; // record + ring header

/** A 64-byte frame asking xdp_records_loop for `n` records. */
function frame(n: number, size = 64): Buffer {
  const f = Buffer.alloc(size);
  if (size >= 4) {
    if (endianness() === 'LE') f.writeUInt32LE(n, 0);
    else f.writeUInt32BE(n, 0);
  }
  return f;
}

/** Counts what arrives, checking seq runs 0, 1, 2, ... and every field. */
function counter(rb: RingBuffer<ReturnType<typeof rec64.decode>>) {
  const st = { n: 0, bad: 0 };
  rb.on('data', (r) => {
    if (r.seq !== st.n || r.len !== 64 || r.fill[0] !== 0xab || r.fill[39] !== 0xab || !(r.ktime > 0)) st.bad++;
    st.n++;
  });
  return st;
}

describe('RingBuffer: N records per test run through bpf_loop()', () => {
  it('one run makes exactly N records, delivered in order', async () => {
    const N = 50_000;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 8 << 20 } } });
    using prog = obj.xdpProgram('xdp_records_loop');
    using rb = obj.ringBuffer('events', rec64, { drainMs: 5, lazy: 'transient' });
    const st = counter(rb);
    await prog.testRun(frame(N));
    expect(produced(obj)).toBe(N);
    expect(await until(() => st.n >= N, 10_000)).toBe(true);
    await sleep(20);
    expect(st).toEqual({ n: N, bad: 0 });
    expect(rb.stats()).toMatchObject({ records: N, lost: 0, pendingBytes: 0 });
  });

  it('repeat runs it again: repeat x N records; a frame too short for the count makes none', async () => {
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 4 << 20 } } });
    using prog = obj.xdpProgram('xdp_records_loop');
    using rb = obj.ringBuffer('events', rec64, { drainMs: 5 });
    const st = counter(rb);
    await prog.testRun(frame(7_000), { repeat: 3 });
    await prog.testRun(frame(0));
    expect(produced(obj)).toBe(21_000);
    expect(await until(() => st.n >= 21_000, 10_000)).toBe(true);
    await sleep(20);
    expect(st).toEqual({ n: 21_000, bad: 0 });
  });

  it('a ring too small: what fits is delivered, the rest counted lost, exactly', async () => {
    const RING = 64 * 1024;
    const fits = Math.floor(RING / REC64_STEP);
    const N = 5_000;
    using obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: RING } } });
    using prog = obj.xdpProgram('xdp_records_loop');
    using rb = obj.ringBuffer('events', rec64);
    rb.pause(); // nothing consumes while the loop runs
    await prog.testRun(frame(N));
    expect(produced(obj)).toBe(N);
    expect(rb.stats()).toMatchObject({ lost: N - fits, pendingBytes: fits * REC64_STEP });
    const st = counter(rb);
    rb.resume();
    expect(await until(() => st.n >= fits, 10_000)).toBe(true);
    await sleep(20);
    expect(st).toEqual({ n: fits, bad: 0 });
  });
});
