// Core: BpfMap operations from JS vs a C floor (libbpf directly, same map type and
// sizes, same run), and testRun ns/packet of the counter program vs an empty XDP_PASS.
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
    const rounds = quick ? 1 : 3;
    const floorBin = buildC('map_floor');
    const rows = [];
    const js = { set: [], get: [], delete: [], setBatch: [], getBatch: [], deleteBatch: [] };
    const c = { set: [], get: [], delete: [], setBatch: [], getBatch: [], deleteBatch: [] };
    const obj = await BpfObject.load(join(root, 'build/test-bpf/maps.bpf.o'), { maps: { big_hash: { maxEntries: n } } });
    const m = obj.map('big_hash', { key: u32, value: u64 });
    const entries = Array.from({ length: n }, (_, i) => [i, BigInt(i) * 7n]);
    const time = async (fn) => { const t = process.hrtime.bigint(); await fn(); return Number(process.hrtime.bigint() - t) / 1e9; };
    for (let r = 0; r < rounds; r++) {
      // alternate JS and C so drift on a noisy machine hits both
      js.set.push(await time(() => { for (let i = 0; i < n; i++) m.set(i, entries[i][1]); }));
      js.get.push(await time(() => { let s = 0n; for (let i = 0; i < n; i++) s += m.get(i); return s; }));
      js.delete.push(await time(() => { for (let i = 0; i < n; i++) m.delete(i); }));
      js.setBatch.push(await time(() => m.setBatch(entries)));
      js.getBatch.push(await time(() => m.getBatch()));
      js.deleteBatch.push(await time(() => m.deleteBatch(entries.map((e) => e[0]))));
      const f = JSON.parse(execFileSync(floorBin, [String(n)], { encoding: 'utf8' }));
      for (const k of Object.keys(c)) c[k].push(f[k]);
    }
    for (const op of Object.keys(js)) {
      const tj = median(js[op]);
      const tc = median(c[op]);
      rows.push({ op, entries: n, 'js ops/s': Math.round(n / tj), 'c ops/s': Math.round(n / tc), 'js/c time': tj / tc });
    }
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
    const single = rows.filter((r) => ['set', 'get', 'delete'].includes(r.op)).map((r) => r['js/c time']);
    const batch = rows.filter((r) => r.op.endsWith('Batch')).map((r) => r['js/c time']);
    return { rows, summary: { worstSingleRatio: Math.max(...single), worstBatchRatio: Math.max(...batch), goalSingle: 2, goalBatch: 1.3 } };
  },
};
