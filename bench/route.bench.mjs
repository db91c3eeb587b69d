// Policy routing: bpfkit (libnl through the addon) vs `ip -batch` doing the same kernel
// work in the same lab namespace, same run.
//
// Workloads (full / quick): R rules (1,000 / 200) and 10 routes per rule (10,000 / 2,000):
//   rules add/del    IpRule.add/delete(all)        vs ip -batch "rule add|del pref P fwmark M lookup T proto 165"
//   routes add/del   IpRoute.add/delete(all)       vs ip -batch "route add|del 198.19.a.b/32 via 198.18.1.2 table T proto 165"
//   policy apply     PolicyRoute.applyAll(R specs) vs ip -batch with the same rule + route adds
//   policy re-apply  applyAll again (no change)    (no ip equivalent: reported alone)
//   policy remove    PolicyRoute.remove(R specs)   vs ip -batch with the same deletes
// ops/s counts kernel objects (rules + routes) per second of wall time; the ip side
// includes starting the ip process (~2 ms), the bpfkit side includes validation, the
// dumps that apply/delete need, and the worker round trip. After every step both sides
// are checked to leave the same `ip rule` / `ip route` state. Medians of 5 rounds (2
// with --quick) after one untimed bpfkit warm-up; the side that goes first alternates.
// Also CPU time (user + system, kernel work included) on both sides: on a loaded
// machine wall time mostly measures the neighbours, CPU time the work done.
// speedup = ip wall / bpfkit wall; cpu ratio = ip CPU / bpfkit CPU (> 1: bpfkit cheaper).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BPFKIT_ROUTE_PROTOCOL, IpRoute, IpRule, PolicyRoute } from '../dist/index.js';
import { Lab } from '../dist/lab.js';
import { median } from './lib.mjs';

const P = BPFKIT_ROUTE_PROTOCOL;
const PER_RULE = 10;

// CPU seconds of waited-for children (cutime + cstime in /proc/self/stat; 10 ms ticks).
function childCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[13]) + Number(rest[14])) / 100;
}

function ipBatch(netns, lines) {
  const input = `${lines.join('\n')}\n`;
  const c = childCpu();
  const t = process.hrtime.bigint();
  const r = spawnSync('ip', ['-n', netns, '-batch', '-'], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr.slice(0, 500)}`);
  return { wall, cpu: childCpu() - c };
}

// wall time, and CPU time of this process (all threads: JS, libuv workers, and the
// kernel work done in their system calls)
async function time(fn) {
  const c = process.cpuUsage();
  const t = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  const u = process.cpuUsage(c);
  return { wall, cpu: (u.user + u.system) / 1e6 };
}

function ip(netns, args) {
  const r = spawnSync('ip', ['-n', netns, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export default {
  name: 'route',
  description: `IpRule/IpRoute/PolicyRoute ops/s vs ip -batch (same namespace, same run)`,
  async run({ quick, log }) {
    const R = quick ? 200 : 1000;
    const rounds = quick ? 2 : 5;
    const lab = await Lab.create({ name: 'bench-route' });
    try {
      const host = await lab.host('r');
      const peer = await lab.host('p');
      await lab.link(host, peer, { aName: 'eth0', aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'] });
      const ns = host.netns;
      const opts = { netns: ns };

      const rules = Array.from({ length: R }, (_, i) => ({ priority: 1000 + i, fwmark: i + 1, table: 1000 + i }));
      const routeOf = (i, j) => `198.19.${(i * PER_RULE + j) >> 8}.${(i * PER_RULE + j) & 255}/32`;
      const routes = rules.flatMap((r, i) => Array.from({ length: PER_RULE }, (_, j) => ({ dst: routeOf(i, j), via: '198.18.1.2', table: r.table })));
      const specs = rules.map((r, i) => ({ ...r, routes: Array.from({ length: PER_RULE }, (_, j) => ({ dst: routeOf(i, j), via: '198.18.1.2' })) }));
      const ruleLines = (cmd) => rules.map((r) => `rule ${cmd} pref ${r.priority} fwmark ${r.fwmark} lookup ${r.table} proto ${P}`);
      const routeLines = (cmd) => routes.map((r) => `route ${cmd} ${r.dst} via 198.18.1.2 table ${r.table} proto ${P}`);

      const baseRules = ip(ns, ['rule', 'show']);
      const snapshot = () => `${ip(ns, ['rule', 'show'])}\n${ip(ns, ['route', 'show', 'table', 'all', 'proto', String(P)])}`;
      const empty = snapshot();
      const check = (what, want) => {
        const got = snapshot();
        if (got !== want) throw new Error(`${what}: kernel state differs from the expected one`);
        return got;
      };

      const t = {};
      const push = (k, v) => (t[k] ??= []).push(v);
      // Expected kernel states, taken from the ip side the first time it runs.
      const want = {};
      const expectState = (key, what) => {
        if (want[key] === undefined) want[key] = snapshot();
        else check(what, want[key]);
      };
      let changes;
      const sides = {
        rules: {
          ip: () => {
            push('ip rules add', ipBatch(ns, ruleLines('add')));
            expectState('rules', 'ip rule add');
            push('ip rules del', ipBatch(ns, ruleLines('del')));
            check('ip rule del', empty);
          },
          bpfkit: async () => {
            push('bpfkit rules add', await time(() => IpRule.add(rules, opts)));
            expectState('rules', 'IpRule.add');
            push('bpfkit rules del', await time(() => IpRule.delete(rules, opts)));
            check('IpRule.delete', empty);
          },
        },
        routes: {
          ip: () => {
            push('ip routes add', ipBatch(ns, routeLines('add')));
            expectState('routes', 'ip route add');
            push('ip routes del', ipBatch(ns, routeLines('del')));
            check('ip route del', empty);
          },
          bpfkit: async () => {
            push('bpfkit routes add', await time(() => IpRoute.add(routes, opts)));
            expectState('routes', 'IpRoute.add');
            push('bpfkit routes del', await time(() => IpRoute.delete(routes, opts)));
            check('IpRoute.delete', empty);
          },
        },
        policy: {
          ip: () => {
            push('ip policy apply', ipBatch(ns, [...routeLines('add'), ...ruleLines('add')]));
            expectState('policy', 'ip policy apply');
            push('ip policy remove', ipBatch(ns, [...ruleLines('del'), ...routeLines('del')]));
            check('ip policy remove', empty);
          },
          bpfkit: async () => {
            push('bpfkit policy apply', await time(async () => (changes = await PolicyRoute.applyAll(specs, opts))));
            if (changes.rulesAdded !== R || changes.routesAdded !== R * PER_RULE) throw new Error(`applyAll: ${JSON.stringify(changes)}`);
            expectState('policy', 'PolicyRoute.applyAll');
            push('bpfkit policy re-apply', await time(async () => (changes = await PolicyRoute.applyAll(specs, opts))));
            if (changes.rulesUnchanged !== R || changes.routesUnchanged !== R * PER_RULE) throw new Error(`re-apply: ${JSON.stringify(changes)}`);
            expectState('policy', 'PolicyRoute.applyAll (again)');
            push('bpfkit policy remove', await time(async () => (changes = await PolicyRoute.remove(specs, opts))));
            if (changes.rulesDeleted !== R || changes.routesDeleted !== R * PER_RULE) throw new Error(`remove: ${JSON.stringify(changes)}`);
            check('PolicyRoute.remove', empty);
          },
        },
      };
      // one untimed warm-up of the bpfkit side (JIT), then alternate who goes first
      await sides.policy.bpfkit();
      for (const k of Object.keys(t)) delete t[k];
      for (let round = 0; round < rounds; round++) {
        log(`round ${round + 1}/${rounds}`);
        for (const w of Object.values(sides)) {
          if (round % 2 === 0) {
            w.ip();
            await w.bpfkit();
          } else {
            await w.bpfkit();
            w.ip();
          }
        }
      }
      if (ip(ns, ['rule', 'show']) !== baseRules) throw new Error('rules left behind');

      const rows = [];
      const row = (op, objects, bk, ipKey) => {
        const tb = median(t[bk].map((x) => x.wall));
        const cb = median(t[bk].map((x) => x.cpu));
        const r = { op, objects, 'bpfkit ms': tb * 1e3, 'bpfkit ops/s': Math.round(objects / tb) };
        if (ipKey) {
          const ti = median(t[ipKey].map((x) => x.wall));
          const ci = median(t[ipKey].map((x) => x.cpu));
          Object.assign(r, { 'ip -batch ms': ti * 1e3, 'ip ops/s': Math.round(objects / ti), speedup: ti / tb });
          Object.assign(r, { 'bpfkit cpu ms': cb * 1e3, 'ip cpu ms': ci * 1e3, 'cpu ratio': ci / cb });
        } else {
          r['bpfkit cpu ms'] = cb * 1e3;
        }
        rows.push(r);
      };
      row('rules add', R, 'bpfkit rules add', 'ip rules add');
      row('rules delete', R, 'bpfkit rules del', 'ip rules del');
      row('routes add', R * PER_RULE, 'bpfkit routes add', 'ip routes add');
      row('routes delete', R * PER_RULE, 'bpfkit routes del', 'ip routes del');
      row('policy apply (rules+routes)', R * (PER_RULE + 1), 'bpfkit policy apply', 'ip policy apply');
      row('policy re-apply (no change)', R * (PER_RULE + 1), 'bpfkit policy re-apply');
      row('policy remove', R * (PER_RULE + 1), 'bpfkit policy remove', 'ip policy remove');
      const summary = { rules: R, routes: R * PER_RULE, rounds };
      for (const r of rows) if (r.speedup !== undefined) summary[`speedup ${r.op}`] = Number(r.speedup.toFixed(2));
      for (const r of rows) if (r['cpu ratio'] !== undefined) summary[`cpu ratio ${r.op}`] = Number(r['cpu ratio'].toFixed(2));
      return { rows, summary };
    } finally {
      await lab.close();
    }
  },
};
