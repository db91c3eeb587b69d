// RingBuffer: consumer capacity of the JS consumers against the C consumer floor
// (bench/c/ringbuf_floor.c, libbpf ring_buffer), measured the same way for both, in the
// same run, alternating rounds. Records are 64 bytes (test/bpf/ringbuf_test.bpf.c,
// struct rec64); "full struct" consumers read every field of every record (the C floor
// copies the record into a struct and reads all fields; JS decodes the whole struct:
// two u64 as BigInts, two u32, a 40-byte Buffer). The lazy variants ({ lazy: true }) get
// views; 'every field read' reads each field once, '2 fields read' reads seq and len.
//
// 1. drain: the ring is filled while no consumer runs (xdp_one_record, BPF_PROG_TEST_RUN
//    repeat = DRAIN records), then the consumer drains it; events/s = records / the
//    consumer's CPU time. No producer, no wake-ups: what the consumer can take. A first
//    round warms both sides up and is not counted. Each JS consumer drains in a child
//    process of its own, the median of 3 drains after 3 warm-up drains (see jsDrain).
// 2. stream: a producer thread runs xdp_one_record_every (BPF_RB_NO_WAKEUP, a forced
//    wake-up every 64 records: bpfkit_rb_submit_every) flat out, then paced at 60% of the
//    C floor's drain capacity. Consumer events/s = records delivered / time until drained;
//    producer events/s = records produced / the producer's time; loss from the BPF-side
//    counter. delivered + lost must equal produced, in order, or the run fails. The JS
//    consumer drains on a timer too ({ drainMs: 10 }) for the records after the last
//    forced wake-up.
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, bytes, struct, u32, u64 } from '../dist/index.js';
import { buildC, median, root } from './lib.mjs';

const OBJ = join(root, 'build/test-bpf/ringbuf_test.bpf.o');
const RING = 16 << 20; // holds ~233k records of 72 bytes
const DRAIN = 200_000;
const CHUNK = 100_000;
const PACED_CHUNK = 10_000;
const CHILD_WARMUP = 3;
const CHILD_ROUNDS = 3;

const fullCodec = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
// Two fields ('_' fields are skipped on decode), for comparison.
const twoFields = struct('rec64', [
  { name: 'seq', codec: u64 },
  { name: '_ktime', codec: bytes(8) },
  { name: 'len', codec: u32 },
  { name: '_rest', codec: bytes(44) },
]);

/** The JS consumers: mode, codec, lazy views or plain objects, and what the handler reads ('two': seq and len; else every field). */
const variants = [
  { id: 'data_full', label: "JS rb.on('data'), full struct", mode: 'data', codec: fullCodec },
  { id: 'batch_full', label: "JS rb.on('batch'), full struct", mode: 'batch', codec: fullCodec },
  { id: 'batches_full', label: 'JS for await rb.batches(), full struct', mode: 'batches', codec: fullCodec },
  { id: 'data_two', label: "JS rb.on('data'), 2-field codec", mode: 'data', codec: twoFields, read: 'two' },
  { id: 'data_lazy_all', label: "JS rb.on('data'), full struct, lazy views, every field read", mode: 'data', codec: fullCodec, lazy: true },
  { id: 'data_lazy_two', label: "JS rb.on('data'), full struct, lazy views, 2 fields read", mode: 'data', codec: fullCodec, lazy: true, read: 'two' },
  { id: 'batch_lazy_all', label: "JS rb.on('batch'), full struct, lazy views, every field read", mode: 'batch', codec: fullCodec, lazy: true },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fixed = (x) => x.toFixed(2);
const spread = (xs) => `${Math.round(Math.min(...xs)).toLocaleString('en-US')}-${Math.round(Math.max(...xs)).toLocaleString('en-US')}`;

/**
 * A consumer of decoded records that reads what the codec decoded and checks the order;
 * `st.done` resolves when `target` records have arrived (no polling loop burns CPU).
 */
function checker(full, target = Infinity) {
  const st = { n: 0, sum: 0, last: -1n, outOfOrder: 0, target };
  st.done = new Promise((resolve) => (st.resolve = resolve));
  st.one = full
    ? (r) => {
        // each field read once (a lazy view decodes a field again at every read)
        const seq = r.seq;
        const fill = r.fill;
        st.sum += r.len + r.ifindex + Number(r.ktime & 1n) + fill[0] + fill[39];
        if (seq <= st.last) st.outOfOrder++;
        st.last = seq;
        if (++st.n === target) st.resolve();
      }
    : (r) => {
        const seq = r.seq;
        st.sum += r.len;
        if (seq <= st.last) st.outOfOrder++;
        st.last = seq;
        if (++st.n === target) st.resolve();
      };
  return st;
}

/** Starts consuming `rb` in `mode`; returns a promise that ends with the iterator (if any). */
function consume(rb, mode, st) {
  if (mode === 'data') rb.on('data', st.one);
  else if (mode === 'batch')
    rb.on('batch', (arr) => {
      for (let i = 0; i < arr.length; i++) st.one(arr[i]);
    });
  else {
    return (async () => {
      for await (const arr of rb.batches({ closeOnReturn: false })) {
        for (let i = 0; i < arr.length; i++) st.one(arr[i]);
        if (st.n >= st.target) break;
      }
    })();
  }
  return Promise.resolve();
}

function cDrain(bin) {
  const f = JSON.parse(execFileSync(bin, ['drain', OBJ, 'xdp_one_record', String(RING), String(DRAIN)], { encoding: 'utf8' }).trim());
  if (f.consumed !== DRAIN || f.lost || f.outOfOrder) throw new Error(`C drain: ${JSON.stringify(f)}`);
  return DRAIN / f.cpuSeconds;
}

/**
 * The median of CHILD_ROUNDS drains in a child process of its own, after CHILD_WARMUP drains
 * on the same ring (the JIT has settled, and sees one codec and one handler, as in an
 * application; in one process the
 * variants' codecs and handlers make the shared call sites polymorphic and slow all).
 */
function jsDrain(v) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--drain-child', v.id], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()).eventsPerSecond;
}

async function drainChild(id) {
  const v = variants.find((x) => x.id === id);
  if (!v) throw new Error(`no variant ${id}`);
  const obj = await BpfObject.load(OBJ, { maps: { events: { maxEntries: RING } } });
  const prog = obj.xdpProgram('xdp_one_record');
  const rb = obj.ringBuffer('events', v.codec, { lazy: v.lazy === true });
  try {
    const rates = [];
    for (let round = 0; round < CHILD_WARMUP + CHILD_ROUNDS; round++) {
      rb.pause();
      const lostBefore = rb.stats().lost;
      for (let done = 0; done < DRAIN; done += CHUNK) await prog.testRun(Buffer.alloc(64), { repeat: Math.min(CHUNK, DRAIN - done) });
      if (rb.stats().lost !== lostBefore) throw new Error('JS drain: the ring did not hold the records');
      const st = checker(v.read !== 'two', DRAIN);
      st.last = BigInt(round * DRAIN - 1);
      const t = process.cpuUsage();
      const iter = consume(rb, v.mode, st);
      rb.resume();
      await Promise.race([st.done, sleep(30_000)]);
      const d = process.cpuUsage(t);
      await iter;
      rb.removeAllListeners('data');
      rb.removeAllListeners('batch');
      if (st.n !== DRAIN || st.outOfOrder) throw new Error(`JS drain (${v.label}): ${st.n} of ${DRAIN} records, ${st.outOfOrder} out of order`);
      if (round >= CHILD_WARMUP) rates.push(DRAIN / ((d.user + d.system) / 1e6));
    }
    return median(rates);
  } finally {
    rb.close();
    prog.close();
    obj.close();
  }
}

if (process.argv[2] === '--drain-child') {
  drainChild(process.argv[3]).then(
    (r) => console.log(JSON.stringify({ eventsPerSecond: r })),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

function cStream(bin, seconds, target) {
  const args = ['consume', OBJ, 'xdp_one_record_every', String(RING), String(seconds), String(target ? PACED_CHUNK : CHUNK), String(target)];
  const f = JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }).trim().split('\n').pop());
  if (f.outOfOrder) throw new Error(`C stream: ${f.outOfOrder} records out of order`);
  if (f.consumed + f.lost !== f.produced) throw new Error(`C stream: delivered ${f.consumed} + lost ${f.lost} != produced ${f.produced}`);
  return { produced: f.produced, delivered: f.consumed, lost: f.lost, seconds: f.seconds, producerSeconds: f.producerSeconds ?? f.seconds };
}

function produce(bin, pin, seconds, target) {
  return new Promise((resolve, reject) => {
    const args = ['produce', pin, String(seconds), String(target ? PACED_CHUNK : CHUNK), String(target)];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`producer exited with ${code}`))));
  });
}

async function jsStream(bin, seconds, target, v) {
  const obj = await BpfObject.load(OBJ, { maps: { events: { maxEntries: RING } } });
  const prog = obj.xdpProgram('xdp_one_record_every');
  const pin = `/sys/fs/bpf/bpfkit-bench-ringbuf-${process.pid}`;
  rmSync(pin, { force: true });
  prog.pin(pin);
  const rb = obj.ringBuffer('events', v.codec, { drainMs: 10, lazy: v.lazy === true });
  try {
    const st = checker(v.read !== 'two');
    const iter = consume(rb, v.mode, st);
    const t0 = performance.now();
    const p = await produce(bin, pin, seconds, target);
    for (let i = 0; i < 5000 && rb.stats().pendingBytes > 0; i++) await sleep(1);
    const elapsed = (performance.now() - t0) / 1000;
    const s = rb.stats();
    rb.close();
    await iter;
    if (st.outOfOrder) throw new Error(`JS stream: ${st.outOfOrder} records out of order`);
    if (st.n + s.lost !== p.produced) throw new Error(`JS stream: delivered ${st.n} + lost ${s.lost} != produced ${p.produced}`);
    return { produced: p.produced, delivered: st.n, lost: s.lost, seconds: elapsed, producerSeconds: p.seconds };
  } finally {
    rb.close();
    rmSync(pin, { force: true });
    prog.close();
    obj.close();
  }
}

export default {
  name: 'ringbuf',
  description: 'RingBuffer consumer capacity (drain of a pre-filled ring; producer waking every 64 records) vs the libbpf C consumer, same run',
  async run({ quick, log }) {
    const rounds = quick ? 1 : 5;
    const seconds = quick ? 2 : 4;
    const bin = buildC('ringbuf_floor', ['-lpthread']);
    const rows = [];
    const summary = { rounds, drainRecords: DRAIN, ring: RING };

    // 1. drain
    const c = [];
    const js = Object.fromEntries(variants.map((v) => [v.id, []]));
    // round 0 warms up (JIT, heap growth: the first 200k records cost JS 2-4x the later
    // ones) and is not counted, on either side
    for (let r = -1; r < rounds; r++) {
      const cr = cDrain(bin);
      const jr = [];
      for (const v of variants) jr.push(jsDrain(v));
      if (r < 0) continue;
      c.push(cr);
      variants.forEach((v, i) => js[v.id].push(jr[i]));
      log(`drain round ${r + 1}: C ${Math.round(c.at(-1))}/s, ${variants.map((v) => `${v.id} ${Math.round(js[v.id].at(-1))}/s`).join(', ')}`);
    }
    const cCap = median(c);
    rows.push({
      test: 'drain',
      consumer: 'C libbpf ring_buffer__consume, full struct (floor)',
      'consumer events/s': Math.round(cCap),
      'events/s spread': spread(c),
      'vs C': 1,
    });
    summary.c_drain_events_per_s = Math.round(cCap);
    for (const v of variants) {
      const per = js[v.id].map((x, i) => x / c[i]);
      rows.push({
        test: 'drain',
        consumer: v.label,
        'consumer events/s': Math.round(median(js[v.id])),
        'events/s spread': spread(js[v.id]),
        'vs C': median(js[v.id]) / cCap,
        'vs C per round': `${fixed(Math.min(...per))}-${fixed(Math.max(...per))}`,
      });
      summary[`${v.id}_drain_vs_c`] = Number((median(js[v.id]) / cCap).toFixed(3));
    }
    summary.goal_data_full_drain_vs_c = 0.9;

    // 2. stream: flood, then paced at 60% of the C drain capacity
    const full = variants[0];
    const streamRow = (load, label, x) => ({
      test: `stream, ${load}`,
      consumer: label,
      'consumer events/s': Math.round(x.delivered / x.seconds),
      'producer events/s': Math.round(x.produced / x.producerSeconds),
      produced: x.produced,
      lost: x.lost,
      'lost %': (100 * x.lost) / x.produced,
    });
    const pick = (runs) => {
      const med = median(runs.map((x) => x.delivered / x.seconds));
      return runs.find((x) => x.delivered / x.seconds === med);
    };
    const flood = { c: [], js: [] };
    for (let r = 0; r < Math.min(rounds, 3); r++) {
      flood.c.push(cStream(bin, seconds, 0));
      flood.js.push(await jsStream(bin, seconds, 0, full));
      log(
        `stream flood round ${r + 1}: C ${Math.round(flood.c.at(-1).delivered / flood.c.at(-1).seconds)}/s lost ${flood.c.at(-1).lost}, JS ${Math.round(flood.js.at(-1).delivered / flood.js.at(-1).seconds)}/s lost ${flood.js.at(-1).lost}`,
      );
    }
    const fc = pick(flood.c);
    const fj = pick(flood.js);
    rows.push(streamRow('flood', 'C libbpf ring_buffer__poll, full struct (floor)', fc));
    rows.push(streamRow('flood', full.label, fj));
    summary.c_stream_flood_lost = fc.lost;
    summary.data_full_stream_flood_lost = fj.lost;
    summary.stream_flood_producer_events_per_s = Math.round(fc.produced / fc.producerSeconds);

    const target = Math.round(0.6 * cCap);
    const pc = cStream(bin, seconds, target);
    const pj = await jsStream(bin, seconds, target, full);
    log(`stream paced at ${target}/s: C lost ${pc.lost}, JS lost ${pj.lost}`);
    rows.push(streamRow(`paced ${target}/s`, 'C libbpf ring_buffer__poll, full struct (floor)', pc));
    rows.push(streamRow(`paced ${target}/s`, full.label, pj));
    summary.paced_target_events_per_s = target;
    summary.paced_producer_events_per_s = Math.round(pj.produced / pj.producerSeconds);
    summary.data_full_paced60_lost = pj.lost;
    summary.c_paced60_lost = pc.lost;
    return { rows, summary };
  },
};
