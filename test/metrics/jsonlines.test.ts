/**
 * toJsonLines: event streams as JSON lines with a slow consumer. Every event the source
 * emitted is either written or counted lost (emitted = written + lost, exactly); a
 * RingBuffer is paused instead of dropping (its records wait in the kernel ring, whose own
 * losses are counted); an async iterable is only pulled as fast as the consumer reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AclFirewall,
  BpfkitError,
  BpfObject,
  toJsonLines,
  struct,
  u32,
  u64,
  bytes,
  type AclEvent,
  type JsonLinesLoss,
  type JsonLinesStream,
} from '../../lib/index.js';
import { Lab } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';
import { udpFrame } from '../helpers/packets.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A consumer that takes one line per event-loop turn (far slower than a burst of events). */
function slowSink(): { sink: Writable; lines: string[] } {
  const lines: string[] = [];
  let rest = '';
  const sink = new Writable({
    highWaterMark: 1,
    decodeStrings: false,
    write(chunk: string, _enc, cb) {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      lines.push(...parts);
      setImmediate(cb);
    },
  });
  return { sink, lines };
}

async function until(cond: () => boolean, what: string, tries = 250): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await sleep(20);
  expect(cond(), what).toBe(true);
}

describe('toJsonLines(AclFirewall): a queue that is full drops, and counts what it drops', () => {
  let lab: Lab;
  let ifname: string;
  let netns: string;
  beforeAll(async () => {
    lab = await Lab.create({ name: 'jsonl' });
    const host = await lab.host('fw');
    const peer = await lab.host('peer');
    const l = await lab.link(peer, host, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
    await peer.ip(['link', 'set', 'dev', l.a.ifname, 'down']); // test runs only: the counts are exact
    ifname = l.b.ifname;
    netns = host.netns;
  }, 60_000);
  afterAll(async () => {
    await lab?.close();
  });

  const denied = udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 1234, dport: 53 });
  const attach = () =>
    AclFirewall.attach(ifname, { netns, maxRules: 16, eventIntervalMs: 0, rules: [{ id: 'dns', action: 'deny', proto: 'udp', dstPort: 53 }] });

  for (const maxQueue of [100, 100_000]) {
    it(`maxQueue ${maxQueue}: emitted = written + lost, every written line a whole event`, async () => {
      const fw = await attach();
      try {
        let seen = 0; // the witness: every event the firewall emitted
        fw.on('event', () => seen++);
        const out: JsonLinesStream = toJsonLines(fw, { maxQueue, highWaterMark: 1024 });
        const losses: JsonLinesLoss[] = [];
        out.on('lost', (l: JsonLinesLoss) => losses.push(l));
        // burst 1 while nobody reads at all
        await fw.testRun(denied, { repeat: 3000 });
        await until(() => seen === 3000, 'the firewall delivered burst 1');
        const s1 = out.stats();
        expect(s1.emitted).toBe(3000);
        expect(s1.emitted).toBe(s1.written + s1.lost + s1.queued);
        expect(s1.queued).toBe(Math.min(maxQueue, 3000 - s1.written));
        // burst 2 while a slow consumer reads; then the firewall closes and the stream ends
        const { sink, lines } = slowSink();
        const done = pipeline(out, sink);
        await fw.testRun(denied, { repeat: 2000 });
        await until(() => seen === 5000, 'the firewall delivered burst 2');
        expect((await fw.stats()).events.delivered).toBe(5000);
        fw.close();
        await done;
        const s = out.stats();
        expect(s.emitted).toBe(seen);
        expect(s.queued).toBe(0);
        expect(s.emitted).toBe(s.written + s.lost); // exact: nothing vanished
        expect(lines.length).toBe(s.written);
        expect(losses.reduce((a, l) => a + l.count, 0)).toBe(s.lost);
        if (maxQueue === 100) expect(s.lost).toBeGreaterThan(0);
        else expect(s.lost).toBe(0);
        for (const line of [lines[0]!, lines.at(-1)!]) {
          const ev = JSON.parse(line) as AclEvent;
          expect(ev).toMatchObject({ ruleId: 'dns', action: 'deny', src: '198.18.0.1', dst: '198.18.0.2', dstPort: 53 });
        }
      } finally {
        fw.close();
      }
    }, 60_000);
  }
});

describe('toJsonLines(RingBuffer): paused, not dropped', () => {
  const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
  let obj: BpfObject;
  beforeAll(async () => {
    // a 4 KiB ring holds ~56 records of 64 bytes
    obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 4096 } } });
  });
  const rings: { close(): void }[] = [];
  afterAll(() => {
    for (const r of rings) r.close(); // also when a test failed before closing its ring
    obj?.close();
  });

  it('a slow consumer pauses the ring: records wait (or are lost) in the kernel, each counted; sequence numbers only grow', async () => {
    const rb = obj.ringBuffer('events', rec64, { batchSize: 64 });
    rings.push(rb);
    const out = toJsonLines(rb, { highWaterMark: 256, maxQueue: 64, map: (r: { seq: bigint }) => ({ seq: r.seq }) });
    const prog = obj.xdpProgram('xdp_one_record');
    let produced = 0;
    for (let i = 0; i < 5; i++) {
      await prog.testRun(Buffer.alloc(64), { repeat: 300 });
      produced += 300;
      await sleep(30);
    }
    // nobody read yet: the stream took one batch, wrote what fits its buffer, and paused the ring
    expect(rb.isPaused()).toBe(true);
    const s0 = out.stats();
    expect(s0.lost).toBe(0);
    expect(s0.emitted).toBeLessThanOrEqual(64);
    const { sink, lines } = slowSink();
    const done = pipeline(out, sink);
    await until(
      () => out.stats().emitted + (rb.stats().lost ?? 0) === produced && out.stats().queued === 0 && out.readableLength === 0,
      'every record read or lost',
    );
    expect(rb.stats().pendingBytes).toBe(0);
    rb.close(); // ends the stream
    await done;
    const s = out.stats();
    const kernelLost = rb.stats().lost!;
    expect(kernelLost).toBeGreaterThan(0); // the ring filled while paused
    expect(s.lost).toBe(0); // the adapter itself dropped nothing
    expect(s.emitted + kernelLost).toBe(produced);
    expect(s.written).toBe(s.emitted);
    expect(lines.length).toBe(s.written);
    expect(s.upstreamLost).toBe(kernelLost); // the ring's own 'lost' reports, forwarded
    const seqs = lines.map((l) => BigInt((JSON.parse(l) as { seq: string }).seq));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!).toBe(true);
  }, 60_000);
});

describe('toJsonLines(async iterable) and bad input', () => {
  it('pulls only as fast as the consumer reads, so nothing is lost', async () => {
    let pulled = 0;
    async function* gen() {
      for (let i = 0; i < 2000; i++) {
        pulled++;
        yield { i, big: BigInt(i) * 10n ** 12n };
      }
    }
    const out = toJsonLines(gen(), { highWaterMark: 64 });
    await sleep(50);
    expect(pulled).toBe(0); // nobody reads: nothing is pulled
    const { sink, lines } = slowSink();
    let ahead = 0; // most events pulled but not yet received by the consumer
    const watch = setInterval(() => (ahead = Math.max(ahead, pulled - lines.length)), 0);
    await pipeline(out, sink).finally(() => clearInterval(watch));
    expect(ahead).toBeGreaterThan(0);
    expect(ahead).toBeLessThan(20); // the stream's 64-byte buffer and one line in flight, not 2000
    expect(out.stats()).toEqual({ emitted: 2000, written: 2000, lost: 0, queued: 0, upstreamLost: 0 });
    expect(lines.length).toBe(2000);
    expect(JSON.parse(lines[1999]!)).toEqual({ i: 1999, big: '1999000000000000' });
  });

  it('rejects bad input with a BpfkitError naming the field, before touching the source', () => {
    const cases: [() => unknown, string][] = [
      [() => toJsonLines(42 as never), 'source'],
      [() => toJsonLines([] as never, { maxQueue: -1 }), 'maxQueue'],
      [() => toJsonLines([] as never, { highWaterMark: 0 }), 'highWaterMark'],
      [() => toJsonLines([] as never, { map: 'x' as never }), 'map'],
      [() => toJsonLines([] as never, { event: '' }), 'event'],
    ];
    for (const [fn, field] of cases) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err, field).toBeInstanceOf(BpfkitError);
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field });
    }
  });
});
