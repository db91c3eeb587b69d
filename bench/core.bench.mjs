// Core: BpfMap operations from JS vs a C floor (libbpf directly, same map type and
// sizes, same run), and testRun ns/packet of the counter program vs an empty XDP_PASS.
// JS times include encoding and decoding (entry forms) but not building the inputs;
// the column ops take ready typed arrays, so they show the addon's own overhead.
// "js/c time" is median over median; "js/c per round" the spread of the per-round ratios.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { BpfObject, u32, u64, struct } from '../dist/index.js';
import { buildC, median, root } from './lib.mjs';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

export default {
  name: 'core',
  description: 'BpfMap ops/s vs libbpf C floor; testRun ns/packet counter vs empty program',
  async run({ quick, log }) {
    const n = quick ? 20_000 : 100_000;
    const rounds = quick ? 1 : 5;
    const floorBin = buildC('map_floor');
    const rows = [];
    // op -> the C floor it is measured against: a column op makes the same syscalls over
    // the same bytes as the C batch op; dump and for..of against the C get-next-key walk
    const floorOf = {
      set: 'set', get: 'get', delete: 'delete', setBatch: 'setBatch', dump: 'getBatch', deleteBatch: 'deleteBatch',
      writeColumns: 'setBatch', readColumns: 'getBatch', 'readColumns into': 'getBatch', deleteColumns: 'deleteBatch', 'for..of': 'iterate',
    };
    const js = Object.fromEntries(Object.keys(floorOf).map((k) => [k, []]));
    const c = Object.fromEntries(Object.values(floorOf).map((k) => [k, []]));
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
    const time = async (fn) => { const t = process.cpuUsage(); await fn(); const d = process.cpuUsage(t); return (d.user + d.system) / 1e6; };
    const check = (what, got) => { if (got !== n) throw new Error(`${what}: ${got} of ${n} entries`); };
    for (let r = 0; r < rounds; r++) {
      // alternate JS and C so drift on a noisy machine hits both
      js.set.push(await time(() => { for (let i = 0; i < n; i++) m.set(i, entries[i][1]); }));
      js.get.push(await time(() => { let s = 0n; for (let i = 0; i < n; i++) s += m.get(i); return s; }));
      js.delete.push(await time(() => { for (let i = 0; i < n; i++) m.delete(i); }));
      js.setBatch.push(await time(() => m.setBatch(entries)));
      let got = 0;
      js.dump.push(await time(async () => { got = (await m.dump()).length; }));
      check('dump', got);
      js['for..of'].push(await time(() => { got = 0; for (const _ of m) got++; }));
      check('for..of', got);
      js.deleteBatch.push(await time(() => m.deleteBatch(keyList)));
      js.writeColumns.push(await time(() => m.writeColumns(keyCol, valCol, n)));
      js.readColumns.push(await time(async () => { got = (await m.readColumns()).count; }));
      check('readColumns', got);
      // into Buffers the caller keeps, as a poller would (the C floor reuses its arrays too)
      js['readColumns into'].push(await time(async () => { got = (await m.readColumns({ keys: keyBuf, values: valBuf })).count; }));
      check('readColumns into', got);
      js.deleteColumns.push(await time(() => m.deleteColumns(keyCol, n)));
      const f = JSON.parse(execFileSync(floorBin, [String(n)], { encoding: 'utf8' }));
      for (const k of Object.keys(c)) c[k].push(f[k]);
    }
    const fixed = (x) => x.toFixed(2);
    for (const [op, floor] of Object.entries(floorOf)) {
      const tj = median(js[op]);
      const tc = median(c[floor]);
      const per = js[op].map((t, i) => t / c[floor][i]);
      rows.push({
        op, entries: n, 'js ops/s': Math.round(n / tj), 'c ops/s': Math.round(n / tc), 'js/c time': tj / tc,
        'js/c per round': `${fixed(Math.min(...per))}-${fixed(Math.max(...per))}`, 'c floor': floor,
      });
    }
    const speed = js['for..of'].map((t, i) => t / js.dump[i]);
    const dumpSpeedup = median(js['for..of']) / median(js.dump);
    rows.push({ op: 'dump vs for..of (speedup)', entries: n, 'js/c time': dumpSpeedup, 'js/c per round': `${fixed(Math.min(...speed))}-${fixed(Math.max(...speed))}` });
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
    const np = median(ns.pass), nc = median(ns.count);
    rows.push({ op: 'testRun xdp_pass (floor)', entries: repeat, 'ns/packet': np });
    rows.push({ op: 'testRun xdp_count', entries: repeat, 'ns/packet': nc, 'vs floor': nc / np });
    log(`counter map sanity: ${(cnt.perCpuMap('counters', { key: u32, value: counter }).get(0) ?? []).reduce((s, x) => s + x.packets, 0n)} packets counted`);
    for (const o of [pass, count, basic, cnt]) o.close();
    const ratio = (ops) => Math.max(...rows.filter((r) => ops.includes(r.op)).map((r) => r['js/c time']));
    return {
      rows,
      summary: {
        worstSingleRatio: ratio(['set', 'get', 'delete']), goalSingle: 1.25,
        worstBatchRatio: ratio(['setBatch', 'dump', 'deleteBatch']), worstColumnRatio: ratio(['writeColumns', 'readColumns', 'deleteColumns']), goalBatch: 1.15,
        dumpSpeedup, goalDumpSpeedup: 10, rounds,
      },
    };
  },
};
