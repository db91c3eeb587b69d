// RingBuffer: 64-byte records delivered to a JS callback vs the C consumer floor, same
// producer, same run.
//
// Producer (both sides): bench/c/ringbuf_floor.c runs the XDP program xdp_one_record
// (test/bpf/ringbuf_test.bpf.c: reserve + submit one 64-byte record per run) with
// BPF_PROG_TEST_RUN, repeat = CHUNK, in a loop on its own thread for SECONDS: flat out
// ("flood"), or paced to a target rate. The C floor consumes on its main thread with
// libbpf's ring_buffer__poll (default wake-ups) and reads two fields per record. The JS
// side runs the same producer in a child process on the pinned program and consumes with
// RingBuffer in this process.
//
// events/s = records delivered / time until the ring is drained. lost = reservations
// that found the ring full (the BPF-side counter events_lost); delivered + lost must
// equal produced, and records must arrive in order, or the run fails.
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, bytes, struct, u32, u64 } from '../dist/index.js';
import { buildC, median, root } from './lib.mjs';

const OBJ = join(root, 'build/test-bpf/ringbuf_test.bpf.o');
const PROG = 'xdp_one_record';
const CHUNK = 100_000;
const PACED_CHUNK = 10_000;
const MiB = 1 << 20;

// The whole record, as a user would describe it (two u64 become BigInts, 40 bytes are copied).
const fullCodec = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
// The two fields the C floor reads; '_' fields are skipped on decode.
const twoFields = struct('rec64', [
  { name: 'seq', codec: u64 },
  { name: '_ktime', codec: bytes(8) },
  { name: 'len', codec: u32 },
  { name: '_rest', codec: bytes(44) },
]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rate = (r) => r.delivered / r.seconds;
const sizeName = (ring) => (ring >= MiB ? `${ring / MiB} MiB` : `${ring / 1024} KiB`);

function cRun(bin, ring, seconds, target = 0) {
  const args = ['consume', OBJ, PROG, String(ring), String(seconds), String(target ? PACED_CHUNK : CHUNK), String(target)];
  const f = JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }).trim().split('\n').pop());
  if (f.outOfOrder) throw new Error(`C floor: ${f.outOfOrder} records out of order`);
  if (f.consumed + f.lost !== f.produced) throw new Error(`C floor: delivered ${f.consumed} + lost ${f.lost} != produced ${f.produced}`);
  return { produced: f.produced, delivered: f.consumed, lost: f.lost, seconds: f.seconds };
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

/**
 * One JS run. mode: 'data' (listener per record), 'batch' (listener per batch),
 * 'iterator' (for await per record), 'batches' (for await per batch).
 */
async function jsRun(bin, ring, seconds, { mode, codec, target = 0 }) {
  const obj = await BpfObject.load(OBJ, { maps: { events: { maxEntries: ring } } });
  const prog = obj.xdpProgram(PROG);
  const pin = `/sys/fs/bpf/bpfkit-bench-ringbuf-${process.pid}`;
  rmSync(pin, { force: true });
  prog.pin(pin);
  const rb = obj.ringBuffer('events', codec);
  try {
    let n = 0;
    let sum = 0;
    let last = -1n;
    let outOfOrder = 0;
    const onRecord = (r) => {
      n++;
      sum += r.len;
      if (r.seq <= last) outOfOrder++;
      last = r.seq;
    };
    let consumer;
    if (mode === 'data') rb.on('data', onRecord);
    else if (mode === 'batch') rb.on('batch', (arr) => { for (let i = 0; i < arr.length; i++) onRecord(arr[i]); });
    else if (mode === 'iterator') consumer = (async () => { for await (const r of rb.iterate({ closeOnReturn: false })) onRecord(r); })();
    else consumer = (async () => { for await (const arr of rb.batches({ closeOnReturn: false })) for (let i = 0; i < arr.length; i++) onRecord(arr[i]); })();
    const t0 = performance.now();
    const p = await produce(bin, pin, seconds, target);
    for (let i = 0; i < 5000 && rb.stats().pendingBytes > 0; i++) await sleep(1);
    const elapsed = (performance.now() - t0) / 1000;
    const s = rb.stats();
    rb.close();
    await consumer;
    if (outOfOrder) throw new Error(`JS: ${outOfOrder} records out of order`);
    if (n + s.lost !== p.produced) throw new Error(`JS: delivered ${n} + lost ${s.lost} != produced ${p.produced}`);
    if (sum !== n * 64) throw new Error('JS: decoded lengths are wrong');
    return { produced: p.produced, delivered: n, lost: s.lost, seconds: elapsed, batches: s.batches };
  } finally {
    rb.close();
    rmSync(pin, { force: true });
    prog.close();
    obj.close();
  }
}

/** The median round by rate, whole (rate and loss of the same run). */
function pick(runs) {
  const med = median(runs.map(rate));
  return runs.find((x) => rate(x) === med);
}

export default {
  name: 'ringbuf',
  description: 'RingBuffer: 64-byte records/s to a JS callback vs the libbpf C consumer floor (same producer, same run)',
  async run({ quick, log }) {
    const seconds = quick ? 2 : 4;
    const rounds = quick ? 1 : 3;
    const bin = buildC('ringbuf_floor', ['-lpthread']);
    const rows = [];
    const summary = {};
    const js = [
      { id: 'data', label: "JS rb.on('data'), 2-field codec", mode: 'data', codec: twoFields },
      { id: 'data_full', label: "JS rb.on('data'), full struct codec", mode: 'data', codec: fullCodec },
      ...(quick ? [] : [
        { id: 'batch', label: "JS rb.on('batch'), 2-field codec", mode: 'batch', codec: twoFields },
        { id: 'iterator', label: 'JS for await (records), 2-field codec', mode: 'iterator', codec: twoFields },
        { id: 'batches', label: 'JS for await rb.batches(), 2-field codec', mode: 'batches', codec: twoFields },
      ]),
    ];
    const row = (ring, load, label, r, c) => ({
      ring: sizeName(ring), producer: load, consumer: label, 'events/s': Math.round(rate(r)), 'vs C': c ? rate(r) / rate(c) : 1,
      produced: r.produced, lost: r.lost, 'lost %': (100 * r.lost) / r.produced,
    });

    for (const ring of [16 * MiB, 256 * 1024]) {
      const name = sizeName(ring);
      const variants = ring === 16 * MiB ? js : js.slice(0, 1);
      const res = { c: [] };
      for (const v of variants) res[v.id] = [];
      // flood: the producer flat out. Alternate C and JS rounds so machine noise hits both.
      for (let r = 0; r < rounds; r++) {
        res.c.push(cRun(bin, ring, seconds));
        log(`${name} flood round ${r + 1}: C ${Math.round(rate(res.c.at(-1)))}/s, lost ${res.c.at(-1).lost}`);
        for (const v of variants) {
          res[v.id].push(await jsRun(bin, ring, seconds, v));
          log(`${name} flood round ${r + 1}: ${v.label} ${Math.round(rate(res[v.id].at(-1)))}/s, lost ${res[v.id].at(-1).lost}`);
        }
      }
      const c = pick(res.c);
      rows.push(row(ring, 'flood', 'C libbpf ring_buffer__poll (floor)', c));
      const key = name.replace(' ', '');
      summary[`c_${key}_flood_events_per_s`] = Math.round(rate(c));
      summary[`c_${key}_flood_lost`] = c.lost;
      for (const v of variants) {
        const j = pick(res[v.id]);
        rows.push(row(ring, 'flood', v.label, j, c));
        summary[`${v.id}_${key}_flood_vs_c`] = Number((rate(j) / rate(c)).toFixed(3));
        summary[`${v.id}_${key}_flood_lost`] = j.lost;
      }

      // paced: the producer at 60% of the C floor's flood rate; the goal is zero loss at 16 MiB.
      if (ring === 16 * MiB) {
        const target = Math.round(0.6 * rate(c));
        // 'vs C' of paced rows: against the C consumer on the same paced producer; the
        // producer may fall short of the target (a consumer that keeps up makes the kernel
        // wake it for every record, which slows the producer), so 'vs C flood' is shown too.
        const pc = cRun(bin, ring, seconds, target);
        log(`${name} paced at ${target}/s: C ${Math.round(rate(pc))}/s, lost ${pc.lost}`);
        rows.push({ ...row(ring, `paced ${target}/s`, 'C libbpf ring_buffer__poll (floor)', pc), 'vs C flood': rate(pc) / rate(c) });
        for (const v of js.slice(0, 2)) {
          const j = await jsRun(bin, ring, seconds, { ...v, target });
          log(`${name} paced at ${target}/s: ${v.label} ${Math.round(rate(j))}/s, lost ${j.lost}`);
          rows.push({ ...row(ring, `paced ${target}/s`, v.label, j, pc), 'vs C flood': rate(j) / rate(c) });
          summary[`${v.id}_${key}_paced60_vs_c`] = Number((rate(j) / rate(pc)).toFixed(3));
          summary[`${v.id}_${key}_paced60_vs_c_flood`] = Number((rate(j) / rate(c)).toFixed(3));
          summary[`${v.id}_${key}_paced60_lost`] = j.lost;
          summary[`${v.id}_${key}_paced60_events_per_s`] = Math.round(rate(j));
        }
        summary[`c_${key}_paced60_lost`] = pc.lost;
      }
    }
    return { rows, summary };
  },
};
