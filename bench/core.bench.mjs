// Core: BpfMap operations from JS vs a C floor (libbpf directly, same map type and
// sizes, same run), and testRun ns/packet of the counter program vs an empty XDP_PASS.
// JS times include encoding and decoding (entry forms) but not building the inputs;
// the column ops take ready typed arrays, so they show the addon's own overhead.
// Each JS op is timed next to its C floor (a C process serving one op at a time), round
// after round. "js/c time" is median over median; "js/c per round" the spread of the
// per-round ratios and "median of rounds" their median.
// A full GC runs before each timed op (outside the timing), so that an op is not charged
// for collecting the garbage of the op before it (dump() leaves 100k entries behind).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BpfObject, u32, u64, struct } from '../dist/index.js';
import { buildC, median, root } from './lib.mjs';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

export default {
  name: 'core',
  description: 'BpfMap ops/s vs libbpf C floor; testRun ns/packet counter vs empty program',
  async run({ quick, log }) {
    const n = quick ? 20_000 : 100_000;
    const rounds = quick ? 1 : 7;
    const floorBin = buildC('map_floor');
    const rows = [];
    const obj = await BpfObject.load(join(root, 'build/test-bpf/maps.bpf.o'), { maps: { big_hash: { maxEntries: n } } });
    const m = obj.map('big_hash', { key: u32, value: u64 });
    const entries = Array.from({ length: n }, (_, i) => [i, BigInt(i) * 7n]);
    const keyList = entries.map((e) => e[0]);
    const keyCol = Uint32Array.from(keyList);
    const valCol = BigUint64Array.from(entries, (e) => e[1]);
    const keyBuf = Buffer.alloc(4 * n);
    const valBuf = Buffer.alloc(8 * n);
    // process CPU time (all threads, user + system), as the C floor measures its own: on a
    // shared machine wall time mostly measures the neighbours. Async batch ops are counted
    // on the libuv thread that makes the syscall; the JS thread waits without cost.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    // after the GC, a pause lets V8's background sweeping finish before the clock starts
    // (process CPU time counts every thread)
    const time = async (fn) => {
      gc();
      await new Promise((r) => setTimeout(r, 20));
      const t = process.cpuUsage();
      await fn();
      const d = process.cpuUsage(t);
      return (d.user + d.system) / 1e6;
    };
    const check = (what, got) => {
      if (got !== n) throw new Error(`${what}: ${got} of ${n} entries`);
    };
    // The C floor serves one op at a time on its own map of the same shape: each JS op is
    // followed at once by its C floor, so both see the same moment of a noisy machine.
    const floor = spawn(floorBin, [String(n), 'serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const replies = createInterface({ input: floor.stdout })[Symbol.asyncIterator]();
    const cOp = async (op) => {
      floor.stdin.write(`${op}\n`);
      const r = await replies.next();
      if (r.done) throw new Error(`C floor exited during '${op}'`);
      return Number(r.value);
    };
    let got = 0;
    // [op, the C floor it is measured against, the JS op]: a column op makes the same
    // syscalls over the same bytes as the C batch op; dump and for..of against the C
    // get-next-key walk. The order keeps both maps in step (full, empty, full, ...).
    const ops = [
      [
        'set',
        'set',
        () => {
          for (let i = 0; i < n; i++) m.set(i, entries[i][1]);
        },
      ],
      [
        'get',
        'get',
        () => {
          let s = 0n;
          for (let i = 0; i < n; i++) s += m.get(i);
          return s;
        },
      ],
      [
        'delete',
        'delete',
        () => {
          for (let i = 0; i < n; i++) m.delete(i);
        },
      ],
      ['setBatch', 'setBatch', () => m.setBatch(entries)],
      [
        'dump',
        'getBatch',
        async () => {
          got = (await m.dump()).length;
          check('dump', got);
        },
      ],
      [
        'for..of',
        'iterate',
        () => {
          got = 0;
          for (const _ of m) got++;
          check('for..of', got);
        },
      ],
      ['deleteBatch', 'deleteBatch', () => m.deleteBatch(keyList)],
      ['writeColumns', 'setBatch', () => m.writeColumns(keyCol, valCol, n)],
      [
        'readColumns',
        'getBatch',
        async () => {
          got = (await m.readColumns()).count;
          check('readColumns', got);
        },
      ],
      // into Buffers the caller keeps, as a poller would (the C floor reuses its arrays too)
      [
        'readColumns into',
        'getBatch',
        async () => {
          got = (await m.readColumns({ keys: keyBuf, values: valBuf })).count;
          check('readColumns into', got);
        },
      ],
      ['deleteColumns', 'deleteBatch', () => m.deleteColumns(keyCol, n)],
    ];
    const js = Object.fromEntries(ops.map(([op]) => [op, []]));
    const c = Object.fromEntries(ops.map(([op]) => [op, []]));
    try {
      for (let r = 0; r < rounds; r++) {
        for (const [op, cop, fn] of ops) {
          js[op].push(await time(fn));
          c[op].push(await cOp(cop));
        }
      }
    } finally {
      floor.stdin.end();
    }
    const floorOf = Object.fromEntries(ops.map(([op, cop]) => [op, cop]));
    const fixed = (x) => x.toFixed(2);
    for (const [op, floor] of Object.entries(floorOf)) {
      const tj = median(js[op]);
      const tc = median(c[op]);
      const per = js[op].map((t, i) => t / c[op][i]);
      rows.push({
        op,
        entries: n,
        'js ops/s': Math.round(n / tj),
        'c ops/s': Math.round(n / tc),
        'js/c time': tj / tc,
        'js/c per round': `${fixed(Math.min(...per))}-${fixed(Math.max(...per))}`,
        'median of rounds': median(per),
        'c floor': floor,
      });
    }
    const speed = js['for..of'].map((t, i) => t / js.dump[i]);
    const dumpSpeedup = median(js['for..of']) / median(js.dump);
    rows.push({
      op: 'dump vs for..of (speedup)',
      entries: n,
      'js/c time': dumpSpeedup,
      'js/c per round': `${fixed(Math.min(...speed))}-${fixed(Math.max(...speed))}`,
    });
    m.close();
    obj.close();

    // testRun: counter vs empty program, 64-byte frame
    const frame = Buffer.alloc(64);
    frame.writeUInt16BE(0x0800, 12);
    const basic = await BpfObject.openBuiltin('xdp_basic').load();
    const cnt = await BpfObject.openBuiltin('counter').load();
    const pass = basic.xdpProgram('xdp_pass');
    const count = cnt.xdpProgram('xdp_count');
    const repeat = quick ? 200_000 : 2_000_000;
    const ns = { pass: [], count: [] };
    for (let r = 0; r < 3; r++) {
      ns.pass.push((await pass.testRun(frame, { repeat })).durationNs);
      ns.count.push((await count.testRun(frame, { repeat })).durationNs);
    }
    const np = median(ns.pass),
      nc = median(ns.count);
    rows.push({ op: 'testRun xdp_pass (floor)', entries: repeat, 'ns/packet': np });
    rows.push({ op: 'testRun xdp_count', entries: repeat, 'ns/packet': nc, 'vs floor': nc / np });
    log(`counter map sanity: ${(cnt.perCpuMap('counters', { key: u32, value: counter }).get(0) ?? []).reduce((s, x) => s + x.packets, 0n)} packets counted`);
    for (const o of [pass, count, basic, cnt]) o.close();
    const ratio = (ops) => Math.max(...rows.filter((r) => ops.includes(r.op)).map((r) => r['js/c time']));
    const paired = (ops) => Math.max(...rows.filter((r) => ops.includes(r.op)).map((r) => r['median of rounds']));
    // The goals (issue 16 part 3): single ops <= 1.25x C; batch ops <= 1.15x C, a batch read
    // being readColumns (the same BPF_MAP_LOOKUP_BATCH calls over the same bytes as C's
    // getBatch); dump() also decodes every entry into JS values, which C's floor does not,
    // so its goal is the speedup over iterating (>= 10x), and its ratio to C is reported apart.
    return {
      rows,
      summary: {
        worstSingleRatio: ratio(['set', 'get', 'delete']),
        worstSinglePaired: paired(['set', 'get', 'delete']),
        goalSingle: 1.25,
        worstBatchRatio: ratio(['setBatch', 'deleteBatch', 'readColumns']),
        worstBatchPaired: paired(['setBatch', 'deleteBatch', 'readColumns']),
        worstColumnRatio: ratio(['writeColumns', 'readColumns', 'deleteColumns']),
        worstColumnPaired: paired(['writeColumns', 'readColumns', 'deleteColumns']),
        goalBatch: 1.15,
        dumpVsGetBatch: ratio(['dump']),
        dumpVsGetBatchPaired: paired(['dump']),
        dumpSpeedup,
        goalDumpSpeedup: 10,
        rounds,
      },
    };
  },
};
