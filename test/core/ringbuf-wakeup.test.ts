/**
 * Producers that skip wake-ups (bpfkit_rb_submit_every() in bpfkit_ringbuf.h) and the
 * reader's drain timer (RingBuffer { drainMs }), on the real kernel: records produced by
 * BPF_PROG_TEST_RUN with the test program xdp_one_record_every.
 */
import { describe, expect, it } from 'vitest';
import { BpfObject, bytes, struct, u32, u64 } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';
import { produced, sleep, until } from './ringbuf.helpers.js';

const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
const REC64_STEP = 64 + 8; // record + ring header
const frame = Buffer.alloc(64);

const load = (wakeEvery: number) => BpfObject.load(testObject('ringbuf_test'), { globals: { wake_every: wakeEvery } });

describe('RingBuffer: producers that wake the reader every N records', () => {
  it('no forced wake-up: the records wait in the ring (not lost) until a drain timer reads them', async () => {
    const N = 1000;
    using obj = await load(2 ** 31);
    using prog = obj.xdpProgram('xdp_one_record_every');
    const rb = obj.ringBuffer('events', rec64);
    let n = 0;
    rb.on('data', () => n++);
    await sleep(20); // the poll handle is watching an empty ring
    await prog.testRun(frame, { repeat: N });
    expect(produced(obj)).toBe(N);
    // every record went in with BPF_RB_NO_WAKEUP: the kernel never signals the reader
    await sleep(100);
    expect(n).toBe(0);
    expect(rb.stats()).toMatchObject({ pendingBytes: N * REC64_STEP, lost: 0 });
    rb.close();

    // a reader with a drain timer: what waited is read at start, and records produced
    // later, still without a wake-up, arrive through the timer
    using timed = obj.ringBuffer('events', rec64, { drainMs: 10 });
    const seqs: bigint[] = [];
    timed.on('data', (r) => seqs.push(r.seq));
    expect(await until(() => seqs.length === N)).toBe(true);
    await prog.testRun(frame, { repeat: N });
    expect(await until(() => seqs.length === 2 * N)).toBe(true);
    expect(seqs.every((s, i) => s === BigInt(i))).toBe(true);
    expect(timed.stats()).toMatchObject({ lost: 0, pendingBytes: 0 });
  });

  it('wake-up every 64 records plus { drainMs }: every record arrives, in order, none lost', async () => {
    const N = 10_000 + 37; // not a multiple of 64: a tail no forced wake-up announces
    using obj = await load(64);
    using prog = obj.xdpProgram('xdp_one_record_every');
    using rb = obj.ringBuffer('events', rec64, { drainMs: 10 });
    let n = 0;
    let last = -1n;
    let ordered = true;
    rb.on('data', (r) => {
      n++;
      if (r.seq !== last + 1n || r.len !== 64 || r.fill[39] !== 0xab) ordered = false;
      last = r.seq;
    });
    // batches that fit the 256 KiB ring (3,640 records) together: each is drained before
    // the next, so a reader slowed by a loaded machine cannot turn into lost records
    const batch = (N / 4) | 0;
    for (let i = 0; i < 4; i++) {
      await prog.testRun(frame, { repeat: batch });
      await until(() => n === (i + 1) * batch, 20_000);
    }
    await prog.testRun(frame, { repeat: N - 4 * batch });
    expect(produced(obj)).toBe(N);
    await until(() => n === N, 20_000);
    expect(n).toBe(N);
    expect(ordered).toBe(true);
    expect(rb.stats()).toMatchObject({ records: N, lost: 0, pendingBytes: 0 });
  });

  it('drainMs is checked before anything is opened', async () => {
    using obj = await load(64);
    for (const bad of [0, -1, 1.5, 'x']) {
      expect(() => obj.ringBuffer('events', rec64, { drainMs: bad as number })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'drainMs' }),
      );
    }
  });
});
