// Cold import: wall time of a fresh `node` process that imports (or requires) bpfkit and
// exits, against the floor of the same fresh process doing nothing, in the same run.
//
// The package is resolved the way a user's code resolves it: by name ('bpfkit',
// 'bpfkit/lab', 'bpfkit/metrics'), through the package's self-reference (its package.json
// `exports`), from a script in this package. So the files timed are dist/index.js (import)
// and dist/index.cjs (require) as `npm run build:ts` leaves them: run `npx tsup` first.
//
// Each round runs every case once, in a shuffled order, so load changes hit all alike.
// Rows: median wall ms of a process with spread (min..max), the median of
// (case - floor of the same round) as 'over floor', and the in-process ms of the import
// alone (performance.now() around it), which excludes node's own start-up, and the CPU
// time of that import (process.cpuUsage(), all threads), which suffers least from a loaded machine.
// Floors: `node -e ''` (start-up and exit), and an import/require of an empty module
// (the module loader's first use). No speed is asserted: the goal (< 50 ms) is reported.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, root } from './lib.mjs';

const GOAL_MS = 50;

/** A script run from inside bench/, so the bare specifier resolves through the self-reference. */
const report = 'const d = process.cpuUsage(c); process.stdout.write(JSON.stringify([performance.now() - t, (d.user + d.system) / 1000]));';
const esm = (spec) => `const t = performance.now(); const c = process.cpuUsage(); await import(${JSON.stringify(spec)}); ${report}`;
const cjs = (spec) => `const t = performance.now(); const c = process.cpuUsage(); require(${JSON.stringify(spec)}); ${report}`;

function cases(empty) {
  return [
    { id: 'node -e ""', floor: true, args: ['-e', ''] },
    { id: 'import(empty module)', floor: true, args: ['--input-type=module', '-e', esm(join(empty, 'empty.mjs'))] },
    { id: 'require(empty module)', floor: true, args: ['-e', cjs(join(empty, 'empty.cjs'))] },
    { id: "import('bpfkit')", main: true, args: ['--input-type=module', '-e', esm('bpfkit')] },
    { id: "require('bpfkit')", main: true, args: ['-e', cjs('bpfkit')] },
    { id: "import('bpfkit/lab')", args: ['--input-type=module', '-e', esm('bpfkit/lab')] },
    { id: "import('bpfkit/metrics')", args: ['--input-type=module', '-e', esm('bpfkit/metrics')] },
    { id: "require('bpfkit/metrics')", args: ['-e', cjs('bpfkit/metrics')] },
  ];
}

function once(c) {
  const t0 = process.hrtime.bigint();
  // cwd bench/: `-e` code resolves bare specifiers from the working directory
  const r = spawnSync(process.execPath, c.args, { cwd: join(root, 'bench'), encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${c.id} failed (${r.status}): ${r.stderr}`);
  const [inProcess, cpu] = r.stdout ? JSON.parse(r.stdout) : [];
  return { wall, inProcess, cpu };
}

function shuffle(xs) {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export default {
  name: 'import',
  description: `cold import('bpfkit') / require('bpfkit') in a fresh node process vs the same process doing nothing (goal < ${GOAL_MS} ms)`,
  async run({ quick, log }) {
    const rounds = quick ? 5 : 21;
    const empty = mkdtempSync(join(tmpdir(), 'bpfkit-import-'));
    try {
      writeFileSync(join(empty, 'empty.mjs'), '');
      writeFileSync(join(empty, 'empty.cjs'), '');
      const list = cases(empty);
      for (const c of list) once(c); // warm the page cache and check every case runs
      const samples = new Map(list.map((c) => [c.id, { wall: [], over: [], overEmpty: [], inProcess: [], cpu: [] }]));
      for (let r = 0; r < rounds; r++) {
        const round = new Map(shuffle(list).map((c) => [c.id, once(c)]));
        const floor = round.get('node -e ""').wall;
        for (const c of list) {
          const s = samples.get(c.id);
          const x = round.get(c.id);
          s.wall.push(x.wall);
          s.over.push(x.wall - floor);
          if (x.inProcess !== undefined) s.inProcess.push(x.inProcess);
          if (x.cpu !== undefined) s.cpu.push(x.cpu);
          const emptyId = c.args.includes('--input-type=module') ? 'import(empty module)' : 'require(empty module)';
          s.overEmpty.push(x.wall - round.get(emptyId).wall);
        }
      }
      log(`${rounds} rounds, ${list.length} fresh processes each, node ${process.version}; specifiers resolved through the package self-reference (dist/)`);
      const rows = list.map((c) => {
        const s = samples.get(c.id);
        const w = [...s.wall].sort((a, b) => a - b);
        return {
          case: c.id,
          'wall ms': median(s.wall),
          spread: `${w[0].toFixed(1)}..${w[w.length - 1].toFixed(1)}`,
          'over node -e': median(s.over),
          'over empty import': c.floor ? '' : median(s.overEmpty),
          'in-process ms': s.inProcess.length ? median(s.inProcess) : '',
          'in-process cpu ms': s.cpu.length ? median(s.cpu) : '',
        };
      });
      const main = rows.filter((r) => list.find((c) => c.id === r.case).main);
      return {
        rows,
        summary: {
          goalMs: GOAL_MS,
          ...Object.fromEntries(
            main.map((r) => [
              r.case,
              { wallMs: r['wall ms'], overFloorMs: r['over node -e'], inProcessMs: r['in-process ms'], inProcessCpuMs: r['in-process cpu ms'] },
            ]),
          ),
        },
      };
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  },
};
