// Where a whole ACL replace goes, step by step: `replaceSteps` (lib/modules/acl/swap.ts, an
// internal switch that dist/ does not export) read from a bundle of lib/ made here with
// esbuild, and optionally the same from another git revision's lib/ in the same process,
// the two firewalls replacing in alternation (docs/acl.md, "Replacing", round six).
//
//   node bench/acl/steps.mjs [git-rev]    env: SIZES=10000,100000 KINDS=random,wide REPS=5 PAUSE=0
//
// Prints per size, shape and code: the whole replace's median (min-max) and each step's
// median, ms. Each shape's two seeds in turn, as the bench's shapes section does. PAUSE: ms
// idle after each replace (a service's replaces are apart: the work a firewall does when
// idle after a compile, and its garbage, then falls between them, not in the next). Root: it
// makes a network namespace with two veth pairs and removes it on exit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseClassBench } from '../../dist/index.js';
import { adversarialRules, randomRules } from '../acl-shapes.mjs';
import { median, root } from '../lib.mjs';
import { readCB } from './common.mjs';

const rev = process.argv[2];
const sizes = (process.env.SIZES ?? '10000,100000').split(',').map(Number);
const kinds = (process.env.KINDS ?? 'classbench,random,wide,crossing,nested').split(',');
const reps = Number(process.env.REPS ?? 5);
const pause = Number(process.env.PAUSE ?? 0);

// the bundles live under build/ (so that the addon is found from them); the other revision's lib/ in a temporary directory
const tmp = mkdtempSync(join(tmpdir(), 'bpfkit-steps-'));
const ns = `bpfkit-steps-${process.pid}`;
const bundle = (name, lib) => {
  const entry = join(tmp, `${name}.ts`);
  writeFileSync(entry, `export { AclFirewall } from '${lib}/modules/acl/firewall.ts';\nexport { replaceSteps } from '${lib}/modules/acl/swap.ts';\n`);
  const out = join(root, 'build', 'steps', `${name}.mjs`);
  execFileSync(join(root, 'node_modules/.bin/esbuild'), [
    entry,
    '--bundle',
    '--platform=node',
    '--format=esm',
    `--outfile=${out}`,
    '--external:node-gyp-build',
    '--log-level=warning',
  ]);
  return out;
};
const make = (kind, n, seed) =>
  kind === 'classbench'
    ? parseClassBench(readCB(`${seed === 1 ? 'acl1' : 'fw1'}_${n === 10_000 ? '10k' : '100k'}`)).slice(0, n)
    : kind === 'random'
      ? randomRules(n, seed)
      : adversarialRules(kind, n, seed);

try {
  const codes = { this: bundle('this', join(root, 'lib')) };
  if (rev) {
    execFileSync('sh', ['-c', `git -C "$1" archive "$2" lib | tar -x -C "$3"`, 'sh', root, rev, tmp]);
    codes[rev] = bundle('rev', join(tmp, 'lib'));
  }
  const names = Object.keys(codes);
  const mods = {};
  for (const v of names) mods[v] = await import(codes[v]);
  execFileSync('ip', ['netns', 'add', ns]);
  for (let k = 0; k < names.length; k++) {
    execFileSync('ip', ['-n', ns, 'link', 'add', `s${k}`, 'type', 'veth', 'peer', 'name', `p${k}`]);
    for (const d of [`s${k}`, `p${k}`]) execFileSync('ip', ['-n', ns, 'link', 'set', d, 'up']);
  }
  for (const n of sizes) {
    const fws = {};
    try {
      for (let k = 0; k < names.length; k++) fws[names[k]] = await mods[names[k]].AclFirewall.attach(`s${k}`, { netns: ns, maxRules: n, events: false });
      for (const kind of kinds) {
        const sets = [1, 2].map((seed) => make(kind, n, seed));
        const whole = {};
        const steps = {};
        for (const v of names) {
          whole[v] = [];
          steps[v] = {};
          await fws[v].setRules(sets[1]);
        }
        for (let i = 0; i < reps; i++) {
          for (const v of i % 2 ? [...names].reverse() : names) {
            const rs = mods[v].replaceSteps;
            rs.on = true;
            const t0 = performance.now();
            await fws[v].setRules(sets[i % 2]);
            whole[v].push(performance.now() - t0);
            rs.on = false;
            for (const [s, ms] of Object.entries(rs.ms)) (steps[v][s] ??= []).push(ms);
            if (pause > 0) await new Promise((r) => setTimeout(r, pause));
          }
        }
        for (const v of names) {
          const w = whole[v];
          const st = Object.entries(steps[v]).map(([s, a]) => `${s} ${median(a).toFixed(1)}`);
          console.log(`${n} ${kind} [${v}] whole ${median(w).toFixed(1)} (${Math.min(...w).toFixed(1)}-${Math.max(...w).toFixed(1)}): ${st.join(', ')}`);
        }
      }
    } finally {
      for (const fw of Object.values(fws)) fw.close();
    }
  }
} finally {
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* not made */
  }
  rmSync(tmp, { recursive: true, force: true });
}
