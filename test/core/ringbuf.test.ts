/**
 * RingBuffer on the real kernel: records produced by XDP programs (real packets through a
 * lab veth, and BPF_PROG_TEST_RUN for volume), loss counting by the BPF-side helper,
 * backpressure, iterator, lifetime (close inside a callback and while the kernel
 * produces, several rings, GC, unref, process exit in child processes).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, RingBuffer, bytes, formatIPv4, struct, u16, u32, u64, u8, type RingBufferLoss } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';
import { produced, removeChildModule, runChild, sleep, until } from './ringbuf.helpers.js';

const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
const REC64_STEP = 64 + 8; // record + ring header
const udpEvent = struct('udp_event', [
  { name: 'seq', codec: u64 },
  { name: 'ifindex', codec: u32 },
  { name: 'pkt_len', codec: u32 },
  { name: 'saddr', codec: bytes(4) },
  { name: 'daddr', codec: bytes(4) },
  { name: 'sport', codec: u16 },
  { name: 'dport', codec: u16 },
  { name: 'tag', codec: u32 },
  { name: 'proto', codec: u8 },
  { name: '_pad', codec: bytes(3) },
]);
const frame = Buffer.alloc(64);

async function load(opts: { ring?: number; udpPort?: number } = {}): Promise<BpfObject> {
  return BpfObject.load(testObject('ringbuf_test'), {
    maps: opts.ring ? { events: { maxEntries: opts.ring } } : {},
    globals: opts.udpPort ? { udp_port: opts.udpPort } : {},
  });
}

describe('RingBuffer: real packets through a lab veth', () => {
  let lab: Lab;
  let a: LabHost;
  let b: LabHost;
  beforeAll(async () => {
    lab = await Lab.create({ name: 'core-ringbuf' });
    a = await lab.host('a');
    b = await lab.host('b');
    await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('one record per UDP packet, with the right fields; the UDP sink agrees on the count', async () => {
    const N = 300;
    const PORT = 7777;
    using obj = await load({ udpPort: PORT });
    using prog = obj.xdpProgram('xdp_udp_events');
    using rb = obj.ringBuffer('events', udpEvent);
    const got: ReturnType<typeof udpEvent.decode>[] = [];
    rb.on('data', (e) => got.push(e));
    using _link = prog.attach('eth0', { mode: 'native', netns: b.netns });
    const ifindex = await b.ifindex('eth0');
    const sink = await b.udpSink('198.18.0.2', PORT);
    try {
      const payload = (i: number) => Buffer.concat([Buffer.from([i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]), Buffer.from('ringbuf')]);
      const res = await a.sendUdp('198.18.0.2', PORT, { count: N, payload, sport: 40000, intervalMs: 0 });
      expect(res.sent).toBe(N);
      expect(await sink.waitFor(N, 10_000)).toBe(N); // independent witness: the socket got N
      await until(() => got.length >= N);
      await sleep(50); // nothing extra may arrive
    } finally {
      await sink.close();
    }
    expect(got.length).toBe(N);
    expect(got.map((e) => e.tag).sort((x, y) => x - y)).toEqual([...Array(N).keys()]);
    for (const e of got) {
      expect(e).toMatchObject({ ifindex, pkt_len: 14 + 20 + 8 + 11, sport: 40000, dport: PORT, proto: 17 });
      expect(formatIPv4(e.saddr)).toBe('198.18.0.1');
      expect(formatIPv4(e.daddr)).toBe('198.18.0.2');
    }
    expect(rb.stats()).toMatchObject({ records: N, bytes: N * udpEvent.size, malformed: 0, lost: 0, pendingBytes: 0 });
    expect(produced(obj)).toBe(N);
  });
});

describe('RingBuffer: BPF_PROG_TEST_RUN producers', () => {
  it('bulk: delivered + lost == produced, in order, and every loss is reported', async () => {
    const N = 200_000;
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { lostCheckMs: 20 });
    let n = 0;
    let last = -1n;
    let ordered = true;
    let lostEvents = 0;
    rb.on('data', (r) => {
      n++;
      if (r.seq <= last) ordered = false;
      last = r.seq;
      if (r.len !== 64 || r.fill[39] !== 0xab) ordered = false;
    });
    rb.on('lost', (l: RingBufferLoss) => (lostEvents += l.count));
    for (let i = 0; i < 4; i++) await prog.testRun(frame, { repeat: N / 4 });
    expect(produced(obj)).toBe(N);
    await until(() => rb.stats().pendingBytes === 0 && n + (rb.stats().lost ?? 0) === N);
    const s = rb.stats();
    expect(n + s.lost!).toBe(N);
    expect(s.records).toBe(n);
    expect(s.bytes).toBe(n * 64);
    expect(ordered).toBe(true);
    // seq counts successful reservations only: the last one is n - 1
    expect(last).toBe(BigInt(n - 1));
    await until(() => lostEvents === s.lost);
    expect(lostEvents).toBe(s.lost);
  });

  it('paused with a small ring: the ring fills, losses are counted, the stored records arrive in order on resume', async () => {
    using obj = await load({ ring: 4096 });
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { lostCheckMs: 10 });
    const seqs: number[] = [];
    const losses: RingBufferLoss[] = [];
    rb.on('data', (r) => seqs.push(Number(r.seq)));
    rb.on('lost', (l) => losses.push(l));
    rb.pause();
    expect(rb.isPaused()).toBe(true);
    await prog.testRun(frame, { repeat: 1000 });
    await sleep(30);
    const fit = Math.floor((4096 - 1) / REC64_STEP); // the kernel keeps at least one byte free
    expect(seqs.length).toBe(0);
    expect(rb.stats()).toMatchObject({ records: 0, lost: 1000 - fit, pendingBytes: fit * REC64_STEP });
    expect(losses).toEqual([{ count: 1000 - fit, total: 1000 - fit }]); // reported while paused
    rb.resume();
    await until(() => seqs.length === fit);
    await sleep(30);
    expect(seqs).toEqual([...Array(fit).keys()]);
    expect(rb.stats()).toMatchObject({ records: fit, lost: 1000 - fit, pendingBytes: 0 });
    expect(produced(obj)).toBe(1000);
    // after resume there is room again
    await prog.testRun(frame, { repeat: 10 });
    await until(() => seqs.length === fit + 10);
    expect(seqs.slice(fit)).toEqual([...Array(10).keys()].map((i) => fit + i));
    expect(losses.length).toBe(1);
  });

  it('pause() inside a listener stops delivery mid-batch; resume() continues in order', async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64);
    const seqs: number[] = [];
    rb.on('data', (r) => {
      seqs.push(Number(r.seq));
      if (seqs.length === 5) rb.pause();
    });
    await prog.testRun(frame, { repeat: 100 });
    await until(() => seqs.length >= 5);
    await sleep(30);
    expect(seqs.length).toBe(5);
    rb.resume();
    await until(() => seqs.length === 100);
    expect(seqs).toEqual([...Array(100).keys()]);
  });

  it.each([false, 'transient'] as const)(
    'a listener added and removed inside a listener mid-batch gets the rest of that batch; none lost or duplicated (lazy %s)',
    async (lazy) => {
      using obj = await load();
      using prog = obj.xdpProgram('xdp_one_record');
      using rb = obj.ringBuffer('events', rec64, { lazy, batchSize: 64 });
      const first: number[] = [];
      const second: number[] = [];
      const late = (r: { seq: bigint }): void => {
        second.push(Number(r.seq));
        if (second.length === 20) rb.off('data', late);
      };
      rb.on('data', (r) => {
        first.push(Number(r.seq));
        if (first.length === 10) rb.on('data', late);
      });
      await prog.testRun(frame, { repeat: 100 });
      await until(() => first.length === 100);
      expect(first).toEqual([...Array(100).keys()]);
      // added after record 9, removed by itself after 20 records: records 10..29
      expect(second).toEqual([...Array(20).keys()].map((i) => 10 + i));
    },
  );

  it("'batch' gets arrays; nothing is read without a consumer (records wait in the ring)", async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { batchSize: 64 });
    await prog.testRun(frame, { repeat: 1000 });
    await sleep(20);
    expect(rb.stats()).toMatchObject({ records: 0, batches: 0, pendingBytes: 1000 * REC64_STEP });
    const sizes: number[] = [];
    const seqs: number[] = [];
    rb.on('batch', (arr) => {
      sizes.push(arr.length);
      for (const r of arr) seqs.push(Number(r.seq));
    });
    await until(() => seqs.length === 1000);
    expect(seqs).toEqual([...Array(1000).keys()]);
    expect(Math.max(...sizes)).toBe(64);
    expect(sizes.reduce((s, x) => s + x, 0)).toBe(1000);
    expect(rb.stats().batches).toBe(sizes.length);
  });

  it('records shorter than the codec are counted and skipped, never a crash', async () => {
    using obj = await load();
    using one = obj.xdpProgram('xdp_one_record');
    using short = obj.xdpProgram('xdp_short_record');
    using rb = obj.ringBuffer('events', rec64);
    const seqs: number[] = [];
    const errors: BpfkitError[] = [];
    rb.on('data', (r) => seqs.push(Number(r.seq)));
    await one.testRun(frame);
    await short.testRun(frame, { repeat: 3 });
    await one.testRun(frame);
    await until(() => seqs.length === 2);
    await sleep(20);
    expect(seqs).toEqual([0, 4]);
    expect(rb.stats()).toMatchObject({ records: 2, malformed: 3, lost: 0, bytes: 64 * 2 + 8 * 3 });
    // with an 'error' listener the skip is also reported
    rb.on('error', (e) => errors.push(e as BpfkitError));
    await short.testRun(frame);
    await until(() => errors.length === 1);
    expect(errors[0]).toBeInstanceOf(BpfkitError);
    expect(errors[0]!.code).toBe('ERR_CODEC_MISMATCH');
    expect(errors[0]!.details).toMatchObject({ recordSize: 8, codecSize: 64 });
    expect(rb.stats().malformed).toBe(4);
  });

  it('discarded reservations are skipped', async () => {
    using obj = await load();
    using discard = obj.xdpProgram('xdp_discard');
    using one = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64);
    const seqs: number[] = [];
    rb.on('data', (r) => seqs.push(Number(r.seq)));
    await discard.testRun(frame, { repeat: 50 });
    await one.testRun(frame, { repeat: 2 });
    await until(() => seqs.length === 2);
    await sleep(20);
    expect(seqs).toEqual([0, 1]);
    expect(rb.stats()).toMatchObject({ records: 2, malformed: 0, lost: 0, pendingBytes: 0 });
  });
});

describe('RingBuffer: async iteration', () => {
  it('pulls batches only when asked; break closes cleanly and leaves the rest in the ring', async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    const rb = obj.ringBuffer('events', rec64, { batchSize: 4 });
    let closed = 0;
    rb.on('close', () => closed++);
    await prog.testRun(frame, { repeat: 500 });
    const seqs: number[] = [];
    for await (const r of rb) {
      seqs.push(Number(r.seq));
      expect(rb.stats().records).toBeLessThanOrEqual(seqs.length + 3); // at most one batch ahead
      if (seqs.length === 10) break;
    }
    expect(seqs).toEqual([...Array(10).keys()]);
    expect(rb.closed).toBe(true);
    expect(rb.stats()).toMatchObject({ records: 12, undelivered: 2 });
    await sleep(5);
    expect(closed).toBe(1);
    rb.close(); // idempotent
    // the other 488 records are still in the kernel ring, for the next reader
    using rb2 = obj.ringBuffer('events', rec64);
    const rest: number[] = [];
    for await (const r of rb2.iterate({ closeOnReturn: false })) {
      rest.push(Number(r.seq));
      if (rest.length === 488) break;
    }
    expect(rb2.closed).toBe(false);
    expect(rest).toEqual([...Array(488).keys()].map((i) => i + 12));
    expect(rb2.stats().pendingBytes).toBe(0);
  });

  it('waits for records that arrive later; close() ends the loop', async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    const rb = obj.ringBuffer('events', rec64);
    const seqs: number[] = [];
    const loop = (async () => {
      for await (const r of rb) seqs.push(Number(r.seq));
    })();
    await sleep(20);
    expect(seqs).toEqual([]);
    await prog.testRun(frame, { repeat: 3 });
    await until(() => seqs.length === 3);
    rb.close();
    await loop;
    expect(seqs).toEqual([0, 1, 2]);
    expect(() => rb.iterate()).not.toThrow(); // a closed ring iterates as empty
    expect(await rb.iterate().next()).toEqual({ value: undefined, done: true });
  });

  it('batches() yields one array per batch read', async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    using rb = obj.ringBuffer('events', rec64, { batchSize: 100 });
    await prog.testRun(frame, { repeat: 1000 });
    const sizes: number[] = [];
    const seqs: number[] = [];
    for await (const arr of rb.batches({ closeOnReturn: false })) {
      sizes.push(arr.length);
      for (const r of arr) seqs.push(Number(r.seq));
      if (seqs.length >= 1000) break;
    }
    expect(sizes).toEqual(Array(10).fill(100));
    expect(seqs).toEqual([...Array(1000).keys()]);
    expect(rb.closed).toBe(false);
    expect(rb.stats()).toMatchObject({ records: 1000, batches: 10, pendingBytes: 0 });
  });

  it('only one iterator at a time', async () => {
    using obj = await load();
    using rb = obj.ringBuffer('events', rec64);
    const it1 = rb.iterate();
    expect(() => rb.iterate()).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
    await it1.return!();
    expect(rb.closed).toBe(true);
  });
});

describe('RingBuffer: lifetime', () => {
  it('close() inside a data listener while the kernel keeps producing: no more events, no crash', async () => {
    using obj = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    const rb = obj.ringBuffer('events', rec64);
    let n = 0;
    let closes = 0;
    rb.on('close', () => closes++);
    rb.on('data', () => {
      if (++n === 5) rb.close();
    });
    const producing = prog.testRun(frame, { repeat: 300_000 });
    await producing;
    await sleep(30);
    expect(n).toBe(5);
    expect(closes).toBe(1);
    expect(rb.closed).toBe(true);
    const s = rb.stats();
    expect(s.records - s.undelivered).toBe(5);
    expect(s.pendingBytes).toBe(0);
    expect(() => rb.pause().resume()).not.toThrow();
    // the ring and its counter are intact for another reader: everything adds up
    using rb2 = obj.ringBuffer('events', rec64);
    let m = 0;
    rb2.on('data', () => m++);
    await until(() => rb2.stats().pendingBytes === 0);
    await sleep(20);
    expect(s.records + m + rb2.stats().lost!).toBe(300_000);
  });

  it('open/close cycles while a program floods the ring, and several rings in one process', async () => {
    using obj = await load({ ring: 16 * 4096 });
    using obj2 = await load();
    using prog = obj.xdpProgram('xdp_one_record');
    using prog2 = obj2.xdpProgram('xdp_one_record');
    using other = obj2.xdpProgram('xdp_other_ring');
    const flood = prog.testRun(frame, { repeat: 2_000_000 });
    let cycles = 0;
    while (cycles < 40) {
      const rb = obj.ringBuffer('events', rec64, { batchSize: 16 });
      rb.on('data', () => {});
      await sleep(cycles % 3); // sometimes inside a burst, sometimes before the first wake
      if (cycles % 2) rb.pause();
      rb.close();
      cycles++;
    }
    // meanwhile two more rings in another object, and a third ring of that object
    using rbA = obj2.ringBuffer('events', rec64);
    using rbB = obj2.ringBuffer('other', u64);
    const a: number[] = [];
    const b: bigint[] = [];
    rbA.on('data', (r) => a.push(Number(r.seq)));
    rbB.on('data', (v) => b.push(v));
    await prog2.testRun(frame, { repeat: 1000 });
    await other.testRun(frame, { repeat: 100 });
    await flood;
    await until(() => a.length === 1000 && b.length === 100);
    expect(a).toEqual([...Array(1000).keys()]);
    expect(b).toEqual([...Array(100).keys()].map(BigInt));
    expect(rbA.stats().lost).toBe(0);
    expect(rbB.stats()).toMatchObject({ lost: 0, records: 100, bytes: 800 });
  });

  it('argument and map checks happen before anything is opened', async () => {
    using obj = await load();
    expect(() => obj.ringBuffer('nope', rec64)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'name' }));
    expect(() => obj.ringBuffer('events_lost', rec64)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'name' }));
    expect(() => obj.ringBuffer('events', rec64, { batchSize: 0 })).toThrow(expect.objectContaining({ field: 'batchSize' }));
    expect(() => obj.ringBuffer('events', rec64, { lostMap: 'missing' })).toThrow(expect.objectContaining({ field: 'lostMap' }));
    expect(() => obj.ringBuffer('events', {} as never)).toThrow(expect.objectContaining({ field: 'codec' }));
    expect(() => obj.map('events', { key: u32, value: u32 })).toThrow(/ringBuffer\(\)/);
    using untracked = obj.ringBuffer('events', rec64, { lostMap: false });
    expect(untracked.stats().lost).toBeNull();
    // a rejected open leaves no fd behind
    const fds = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 20; i++) {
      expect(() => obj.ringBuffer('events', rec64, { lostMap: 'other' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
  });

  it('openPinned reads a pinned ring and its pinned loss counter', async () => {
    const dir = `/sys/fs/bpf/bpfkit-test-rb-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    try {
      using obj = await load({ ring: 4096 });
      using prog = obj.xdpProgram('xdp_one_record');
      obj.nativeMap('events').pin(`${dir}/events`);
      obj.nativeMap('events_lost').pin(`${dir}/lost`);
      await prog.testRun(frame, { repeat: 100 });
      using rb = RingBuffer.openPinned(`${dir}/events`, rec64, { lostPath: `${dir}/lost` });
      const seqs: number[] = [];
      rb.on('data', (r) => seqs.push(Number(r.seq)));
      await until(() => seqs.length === 56);
      expect(rb.stats().lost).toBe(100 - 56);
      expect(() => RingBuffer.openPinned(`${dir}/lost`, rec64)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- child processes: unref, GC, exit with open handles ---------------------------------

afterAll(removeChildModule);

describe('RingBuffer: process lifetime (child processes)', () => {
  it('a reading ring keeps the process alive; unref() lets it exit', async () => {
    const body = (unref: boolean) => `
      const rb = obj.ringBuffer('events', rec);
      rb.on('data', () => {});
      ${unref ? 'rb.unref();' : ''}
      console.log('ready');`;
    const held = await runChild(body(false), { killAfterMs: 1000, afterReady: true });
    expect(held.out).toContain('ready');
    expect(held.killed).toBe(true);
    const free = await runChild(body(true), { killAfterMs: 10_000 });
    expect(free).toMatchObject({ code: 0, killed: false });
    expect(free.out).toContain('ready');
  });

  it('GC of dropped rings releases their fds and mappings; a dropped flowing ring keeps delivering', async () => {
    const r = await runChild(
      `
      const fs = await import('node:fs');
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('bpf')).length;
      const before = fds(), mBefore = maps();
      for (let i = 0; i < 200; i++) obj.ringBuffer('events', rec).pause();
      const during = fds(), mDuring = maps();
      let n = 0;
      (() => { const rb = obj.ringBuffer('events', rec); rb.on('data', () => n++); })();
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
      const prog = obj.xdpProgram('xdp_one_record');
      await prog.testRun(Buffer.alloc(64), { repeat: 100 });
      for (let i = 0; i < 100 && n < 100; i++) await new Promise((r) => setTimeout(r, 10));
      console.log(JSON.stringify({ before, during, after: fds(), mBefore, mDuring, mAfter: maps(), n }));
      process.exit(0);`,
      { args: ['--expose-gc'], killAfterMs: 20_000 },
    );
    expect(r.code).toBe(0);
    const m = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, number>;
    expect(m.during! - m.before!).toBeGreaterThanOrEqual(400); // ring fd + loss counter fd each
    // the flowing ring (+2 fds) and the program fd stay; the 200 paused ones are gone
    expect(m.after! - m.before!).toBeLessThanOrEqual(4);
    expect(m.mDuring! - m.mBefore!).toBeGreaterThanOrEqual(400); // two mappings per ring
    expect(m.mAfter! - m.mBefore!).toBeLessThanOrEqual(2);
    expect(m.n).toBe(100);
  });

  it('process.exit() and a listener exception with open rings: no crash, the exception reaches uncaughtException', async () => {
    const exit = await runChild(
      `const rb = obj.ringBuffer('events', rec); rb.on('data', () => {});
       await obj.xdpProgram('xdp_one_record').testRun(Buffer.alloc(64), { repeat: 1000 });
       setTimeout(() => process.exit(7), 20);`,
      { killAfterMs: 10_000 },
    );
    expect(exit).toMatchObject({ code: 7, killed: false });
    const thrown = await runChild(
      `const rb = obj.ringBuffer('events', rec);
       let n = 0;
       rb.on('data', (r) => { n++; if (r.seq === 3n) throw new Error('boom'); });
       process.on('uncaughtException', (e) => console.log('caught', e.message, n));
       await obj.xdpProgram('xdp_one_record').testRun(Buffer.alloc(64), { repeat: 10 });
       setTimeout(() => { console.log('total', n); rb.close(); }, 100);`,
      { killAfterMs: 10_000 },
    );
    expect(thrown).toMatchObject({ code: 0, killed: false });
    expect(thrown.out).toContain('caught boom 4');
    expect(thrown.out).toContain('total 10'); // the rest of the batch still arrives
  });
});
