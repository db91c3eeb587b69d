// The testRun tree walk frame by frame: the bench's 48 trace headers of one ClassBench set
// (bench/acl.bench.mjs section 1, verdict cache and events off), each run on an empty XDP
// program, a firewall holding one rule and one holding the set, in turn (docs/acl.md,
// Performance, "The walk, round ten").
//
//   node bench/acl/frames.mjs [set] [one]    set: fw1_100k (default), acl1_10k, ...
//                                            one: first (the set's first rule, the bench's
//                                            reference) or any (allow everything: every
//                                            frame matches a rule)
//   env: R=5 (rounds; each frame's median over them)
//
// Prints per frame: index, empty, one rule, set (ns, the kernel's whole-ns average of
// 50,000 repetitions), then the means and the set's ratio to one rule. Compare builds by
// running each in turn: the ratio, not the ns, since the machine's speed moves between runs.
// Root: makes a lab of two hosts and removes it on exit.
import { AclFirewall, BpfObject, parseClassBench, parseClassBenchTrace } from '../../dist/index.js';
import { Lab } from '../../dist/lab.js';
import { median, pinProcess } from '../lib.mjs';
import { readCB, traceFrames } from './common.mjs';

const set = process.argv[2] ?? 'fw1_100k';
const oneRule = process.argv[3] ?? 'first';
if (!['first', 'any'].includes(oneRule)) throw new Error(`one: 'first' or 'any', not ${oneRule}`);
const rounds = Number(process.env.R ?? 5);
const repeat = 50_000;
const lab = await Lab.create({ name: 'bench-acl-frames' });
try {
  const a = await lab.host('a');
  const b = await lab.host('b');
  const l1 = await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  const l2 = await lab.link(a, b, { aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'] });
  const basic = await BpfObject.openBuiltin('xdp_basic').load();
  const empty = basic.xdpProgram('xdp_pass');
  const rules = parseClassBench(readCB(set));
  const trace = parseClassBenchTrace(readCB(`${set}_trace`));
  const frames = traceFrames(trace, 48);
  const settings = { events: false, verdictCache: false, maxRules: 100_000 };
  const one = await AclFirewall.attach(l1.b.ifname, { netns: b.netns, ...settings });
  const fw = await AclFirewall.attach(l2.b.ifname, { netns: b.netns, ...settings });
  await one.setRules(oneRule === 'any' ? [{ id: 'any', action: 'allow' }] : rules.slice(0, 1));
  await fw.setRules(rules);
  const unpin = pinProcess();
  const t = frames.map(() => ({ empty: [], one: [], set: [] }));
  try {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < frames.length; i++) {
        t[i].empty.push((await empty.testRun(frames[i], { repeat })).durationNs);
        t[i].one.push((await one.testRun(frames[i], { repeat })).durationNs);
        t[i].set.push((await fw.testRun(frames[i], { repeat })).durationNs);
      }
    }
  } finally {
    unpin();
  }
  const rows = t.map((x) => [median(x.empty), median(x.one), median(x.set)]);
  rows.forEach((r, i) => console.log([i, ...r].join('\t')));
  const mean = (k) => rows.reduce((s, r) => s + r[k], 0) / rows.length;
  console.log(
    `${set}, one rule ${oneRule}: empty ${mean(0).toFixed(1)} ns, one rule ${mean(1).toFixed(1)}, set ${mean(2).toFixed(1)}: ${(mean(2) / mean(1)).toFixed(2)}x one rule`,
  );
  one.close();
  fw.close();
} finally {
  await lab.close();
}
