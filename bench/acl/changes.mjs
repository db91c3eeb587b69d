// bench/acl.bench.mjs sections 5 and 6: rule sets of any shape (random, adversarial) and
// one-rule changes through the overlay.
import { AclFirewall, parseClassBench } from '../../dist/index.js';
import { median, pinProcess } from '../lib.mjs';
import { adversarialRules, pointsV4, randomRules } from '../acl-shapes.mjs';
import { frame4, readCB, sleep, spreadOf } from './common.mjs';

/**
 * 5. One-rule changes on a 10k set (acl1_10k less its last 100 rules, in a firewall for 10,000):
 * addRule (at the end), updateRule and removeRule by id, which go through the rule set's
 * overlay (docs/acl.md, incremental changes), each followed by the same-run reference: a
 * setRules of the whole set with that one change (a compile; it also empties the overlay,
 * so every one-rule change is the first after a compile), then add/remove pairs in a row.
 * Median ms with min and max.
 */
export async function oneRuleSection({ quick, rows, summary, iface, netns }) {
  const all = parseClassBench(readCB('acl1_10k'), { idPrefix: 'a-' }).slice(0, 10_000);
  const base = all.slice(0, all.length - 100); // (acl1_10k has fewer than 10,000 rules)
  const extra = all.slice(all.length - 100);
  const reps = quick ? 10 : 30;
  const fw = await AclFirewall.attach(iface, { netns, maxRules: 10_000, events: false, rules: base });
  try {
    const t = { add: [], update: [], remove: [], full: [] };
    const time = async (key, fn) => {
      const t0 = performance.now();
      await fn();
      t[key].push(performance.now() - t0);
    };
    let rules = [...base];
    // (then a pause: a compile readies the idle blob for the next one-rule change once the event loop is idle)
    const full = async () => {
      await time('full', () => fw.setRules(rules));
      await sleep(50);
    };
    for (let i = 0; i < reps; i++) {
      const r = { ...extra[i % extra.length], id: `x${i}` };
      await time('add', () => fw.addRule(r));
      rules = [...rules, r];
      await full();
      const at = (i * 997) % base.length;
      const u = { ...rules[at], action: rules[at].action === 'deny' ? 'allow' : 'deny' };
      await time('update', () => fw.updateRule(u));
      rules = rules.map((x, k) => (k === at ? u : x));
      await full();
      await time('remove', () => fw.removeRule(r.id));
      rules = rules.filter((x) => x.id !== r.id);
      await full();
    }
    // changes in a row (no compile between them: the overlay holds them all)
    t.row = [];
    for (let i = 0; i < reps; i++) {
      const r = { ...extra[(i + 50) % extra.length], id: `y${i}` };
      await time('row', () => fw.addRule(r));
      await time('row', () => fw.removeRule(r.id));
    }
    const f = spreadOf(t.full);
    for (const key of ['add', 'update', 'remove', 'row']) {
      const o = spreadOf(t[key]);
      rows.push({
        test: key === 'row' ? 'one-rule add/remove in a row (overlay)' : `one-rule ${key} after a compile (overlay)`,
        rules: base.length,
        ms: o.median,
        min: o.min,
        max: o.max,
        vsFullReplace: o.median / f.median,
      });
      summary[`oneRule_${key}_ms`] = o.median;
    }
    rows.push({ test: '  same-run reference: setRules with that one change', rules: base.length, ms: f.median, min: f.min, max: f.max });
    summary.oneRule_fullReplace_ms = f.median;
    summary.goalOneRuleMs = '< 5';
  } finally {
    fw.close();
  }
}

/**
 * 4. Rule sets of any shape (bench/acl-shapes.mjs): random wide-range/wildcard sets and
 * adversarial families at 10k and 100k rules, in a firewall built for that many rules.
 * Per set: validate + compile time and bytes per rule (setRules' compileInfo), a whole
 * replace (setRules into a firewall holding another set of the same shape), and the tree
 * walk in testRun (verdict cache off) against a firewall holding only the set's first
 * rule and the empty program, frame by frame in turn, pinned to one CPU (headers: points
 * inside the set's IPv4 rules). Compile and replace also as ratios to ClassBench's of the same
 * size in the same run (the machine's speed cancels out).
 */
export async function shapesSection({ quick, log, rows, summary, ifaces, netns, empty }) {
  const sizes = quick ? [10_000] : [10_000, 100_000];
  // ClassBench (acl1 and fw1 in turn) is the same-run reference for the times
  const kinds = quick ? ['classbench', 'random', 'wide'] : ['classbench', 'random', 'wide', 'crossing', 'nested'];
  const reps = quick ? 3 : 5;
  const headersPer = quick ? 16 : 48;
  const repeat = quick ? 20_000 : 50_000;
  const cb = (set) => parseClassBench(readCB(set)).slice(0, set.endsWith('100k') ? 100_000 : 10_000);
  const make = (kind, n, seed) =>
    kind === 'classbench'
      ? cb(`${seed === 1 ? 'acl1' : 'fw1'}_${n === 10_000 ? '10k' : '100k'}`)
      : kind === 'random'
        ? randomRules(n, seed)
        : adversarialRules(kind, n, seed);
  for (const n of sizes) {
    // the same-run reference of each size: ClassBench's medians (the first kind)
    let ref;
    const fw = await AclFirewall.attach(ifaces[0], { netns, maxRules: n, events: false, verdictCache: false });
    const one = await AclFirewall.attach(ifaces[1], { netns, maxRules: 16, events: false, verdictCache: false });
    try {
      for (const kind of kinds) {
        const sets = [1, 2].map((seed) => make(kind, n, seed));
        const compile = [];
        const replace = [];
        let info;
        for (let i = 0; i < reps; i++) {
          const t0 = performance.now();
          info = await fw.setRules(sets[i % 2]);
          replace.push(performance.now() - t0);
          compile.push(info.compileMs);
        }
        // the walk over the set in force (sets[(reps - 1) % 2]) and over its first rule
        const set = sets[(reps - 1) % 2];
        await one.setRules(set.slice(0, 1));
        const frames = pointsV4(set, headersPer, 7).map((h) => frame4(h.src, h.dst, h.proto, h.srcPort, h.dstPort));
        const t = { empty: [], one: [], acl: [] };
        const unpin = pinProcess(); // the walk only: the compile uses the thread pool
        for (let round = 0; round < 3; round++) {
          let e = 0;
          let o = 0;
          let x = 0;
          for (const f of frames) {
            e += (await empty.testRun(f, { repeat })).durationNs;
            o += (await one.testRun(f, { repeat })).durationNs;
            x += (await fw.testRun(f, { repeat })).durationNs;
          }
          t.empty.push(e / frames.length);
          t.one.push(o / frames.length);
          t.acl.push(x / frames.length);
        }
        unpin();
        const c = spreadOf(compile);
        const rp = spreadOf(replace);
        const walk = median(t.acl) / median(t.one);
        if (kind === 'classbench') ref = { compile: c.median, replace: rp.median };
        rows.push({
          test: `shape ${kind} ${n} rules`,
          rules: n,
          'bytes/rule': info.bytes / n,
          trees: info.trees.length,
          'compile ms (median)': c.median,
          'compile ms (min-max)': `${c.min.toFixed(0)}-${c.max.toFixed(0)}`,
          'replace ms (median)': rp.median,
          'replace ms (min-max)': `${rp.min.toFixed(0)}-${rp.max.toFixed(0)}`,
          'compile vs ClassBench': c.median / ref.compile,
          'replace vs ClassBench': rp.median / ref.replace,
          'ns/pkt empty': median(t.empty),
          'ns/pkt 1 rule (walk)': median(t.one),
          'ns/pkt set (walk)': median(t.acl),
          'walk vs 1 rule': walk,
        });
        summary[`shape_${kind}_${n}_bytesPerRule`] = info.bytes / n;
        summary[`shape_${kind}_${n}_compileMs`] = c.median;
        summary[`shape_${kind}_${n}_replaceMs`] = rp.median;
        summary[`shape_${kind}_${n}_walk_vs_1rule`] = walk;
        summary[`shape_${kind}_${n}_compile_vs_classbench`] = c.median / ref.compile;
        summary[`shape_${kind}_${n}_replace_vs_classbench`] = rp.median / ref.replace;
        log(
          `shape ${kind} ${n}: ${(info.bytes / n).toFixed(0)} B/rule, ${info.trees.length} trees, compile ${c.median.toFixed(0)} ms (${c.min.toFixed(0)}-${c.max.toFixed(0)}), replace ${rp.median.toFixed(0)} ms, walk ${median(t.acl).toFixed(1)} ns vs 1 rule ${median(t.one).toFixed(1)} (${walk.toFixed(2)}x)`,
        );
      }
    } finally {
      one.close();
      fw.close();
    }
  }
  summary.goalShapeBytesPerRule = '<= 1000';
  summary.goalShapeCompile100kMs = '< 2000';
  summary.goalShapeReplaceMs = '10k < 50, 100k < 500';
  summary.goalShapeWalkAdversarial = '<= 3x one rule';
}
