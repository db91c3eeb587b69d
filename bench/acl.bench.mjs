// AclFirewall benchmark.
//
// 1. BPF_PROG_TEST_RUN ns/packet (64-byte frames) at 1,000, 10,000 and 100,000 rules
//    (ClassBench acl1 and fw1, every rule a 5-tuple of CIDRs/ranges), against the same
//    firewall with 1 rule (the set's first) and an empty XDP_PASS program, the three run
//    on the same frames in turn, frame by frame, with the process pinned to one CPU.
//    Headers are spread over each set's ClassBench trace (so they hit the set's real
//    rules); each header runs in repeat mode and the kernel's mean is averaged over the
//    headers; median of 3 rounds. Three settings: verdict cache off (every repetition
//    walks the trees: the cost of a packet of a new flow), cache on (every repetition
//    after the first is a hit: a flow's later packets), and cache + events on (the
//    defaults: deny verdicts also go through the per-flow rate limiter).
// 2. Drop rate on a lab veth: 64-byte UDP frames (198.18.0.1 -> 198.18.1.1:5000) from a
//    live-frames XDP_TX generator on host A; on host B, in turn: an XDP program that counts
//    and drops (the floor), the AclFirewall, xdp-filter (xdp-tools; exact ports/addresses
//    only, so it gets the rules it can express: the flood port, plus N addresses), iptables
//    raw PREROUTING and nftables (prerouting, priority raw) with the same rules as the
//    firewall. The big rule sets are ClassBench acl1 without the rules that match the flood,
//    with the flood's deny rule last (worst case: every tree is walked and every leaf on
//    the way checked) or first (the usual "block this source" rule). Rate = packets the
//    tool counted as dropped / generation time; a scenario stops after 2M frames or 1.5 s
//    (iptables with 10k rules drops ~10k/s). Scenarios alternate, 3 rounds, medians.
//    The flood is one flow unless the scenario says "N flows": then a generator that
//    rewrites each frame's source port cycles through N ports (every packet of a flow is
//    N packets apart), against a floor fed by the same generator. 64 flows fit the
//    per-CPU verdict cache and rate-limiter memory (256 each); with 4096 no packet finds
//    its flow in either. "cache off" scenarios attach with
//    verdictCache: false (every packet walks the trees), "events off" with events: false
//    (no per-flow rate limiter: counters only).
// 3. Time to replace a 10,000-rule set (acl1_10k <-> fw1_10k <-> ipc1_10k), on a firewall
//    built for 10,000 rules, and the compile part of it.
// 4. The same drop rate with the receiver isolated (bench/lib/isolated.mjs: threaded NAPI
//    on its own CPU, the generator on the other): see isolatedPart below. Run first.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AclFirewall, BpfObject, parseClassBench, parseClassBenchTrace, u32 } from '../dist/index.js';
import { Lab, registerForExit, unregisterForExit } from '../dist/lab.js';
import { median, pinProcess, settle } from './lib.mjs';
import { iptablesPackets } from './lib/iptables.mjs';
import {
  FEW_FLOWS,
  FLOOD,
  FLOW_PORT_BASE,
  MAX_FLOWS,
  counterCodec,
  frame4,
  iptablesRules,
  liveRules,
  nftRules,
  readCB,
  sleep,
  traceFrames,
} from './acl/common.mjs';
import { oneRuleSection, shapesSection } from './acl/changes.mjs';
import { isolatedPart } from './acl/isolated.mjs';
/** Removes each directory that is empty: never someone else's pins. */
function removeEmptyDirs(dirs) {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      /* absent or not empty */
    }
  }
}

export default {
  name: 'acl',
  description:
    'AclFirewall: testRun ns/packet at 1..100k ClassBench rules vs empty XDP; veth drop rate vs XDP_DROP floor, xdp-filter, iptables raw, nftables; 10k-rule replace time',
  async run({ quick, log }) {
    const rows = [];
    const summary = {};
    const lab = await Lab.create({ name: 'bench-acl' });
    const tmp = mkdtempSync(join(tmpdir(), 'bpfkit-acl-bench-'));
    // libxdp (xdp-filter) creates its state directories on bpffs: remove the ones we caused,
    // also when the run dies of a signal (the lab's exit hooks run this after the lab's own
    // teardown; a finally block alone missed an interrupted run's empty /sys/fs/bpf/xdp)
    const libxdpDirs = ['/sys/fs/bpf/xdp-filter', '/sys/fs/bpf/xdp'].filter((d) => !existsSync(d));
    const libxdpCleanup = { closeSync: () => removeEmptyDirs(libxdpDirs) };
    registerForExit(libxdpCleanup);
    // ACL_BENCH_PARTS picks sections: testrun (1), drop (2), changes (3: replace, shapes, one-rule
    // changes), isolated (4); 'shared' means 1-3. Default: all.
    const parts = new Set(
      (process.env.ACL_BENCH_PARTS ?? 'shared,isolated').split(',').flatMap((p) => (p === 'shared' ? ['testrun', 'drop', 'changes'] : [p])),
    );
    try {
      if (parts.has('isolated')) await isolatedPart({ quick, log, rows, summary, lab });
      if (!parts.has('testrun') && !parts.has('drop') && !parts.has('changes')) return { rows, summary };
      const a = await lab.host('a');
      const b = await lab.host('b');
      const link = await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'], bMac: '02:00:00:00:00:02', gro: true });
      await b.setGro(link.b.ifname, false);
      await b.setGro(link.b.ifname, true);
      const iface = link.b.ifname;

      const link2 = await lab.link(a, b, { aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'] });
      const basic = await BpfObject.openBuiltin('xdp_basic').load();
      const empty = basic.xdpProgram('xdp_pass');
      if (parts.has('testrun')) {
        // ---- 1. testRun ns/packet ----
        // Pinned to one CPU (the two vCPUs of these VMs run test runs at different speeds),
        // and for each set the N-rule firewall, a 1-rule firewall (the set's first rule) and
        // the empty program run the same frames in turn, frame by frame.
        const headersPer = quick ? 16 : 48;
        const repeat = quick ? 20_000 : 50_000;
        const rounds1 = quick ? 1 : 3;
        const sizes = quick ? [1000, 10000] : [1000, 10000, 100000];
        const fwOne = await AclFirewall.attach(iface, { netns: b.netns, maxRules: 100_000, events: false });
        const fw = await AclFirewall.attach(link2.b.ifname, { netns: b.netns, maxRules: 100_000, events: false });
        const unpin = pinProcess();
        const modes = [
          { key: 'walk', settings: { events: false, verdictCache: false } },
          { key: 'cached', settings: { events: false, verdictCache: true } },
          { key: 'events', settings: { events: true, verdictCache: true } },
        ];
        const measure = async (frames) => {
          const t = { empty: [], one: [], acl: [] };
          for (let r = 0; r < rounds1; r++) {
            let e = 0;
            let o = 0;
            let x = 0;
            for (const f of frames) {
              e += (await empty.testRun(f, { repeat })).durationNs;
              o += (await fwOne.testRun(f, { repeat })).durationNs;
              x += (await fw.testRun(f, { repeat })).durationNs;
            }
            t.empty.push(e / frames.length);
            t.one.push(o / frames.length);
            t.acl.push(x / frames.length);
          }
          return { empty: median(t.empty), one: median(t.one), acl: median(t.acl) };
        };
        const tr = {};
        try {
          for (const family of ['acl1', 'fw1']) {
            for (const n of sizes) {
              const set = n === 1000 ? `${family}_1k` : n === 10000 ? `${family}_10k` : `${family}_100k`;
              const rules = parseClassBench(readCB(set));
              const trace = parseClassBenchTrace(readCB(`${set}_trace`));
              const frames = traceFrames(trace, headersPer);
              await fwOne.setRules(rules.slice(0, 1));
              const info = await fw.setRules(rules);
              const m = {};
              for (const mode of modes) {
                await fwOne.configure(mode.settings);
                await fw.configure(mode.settings);
                m[mode.key] = await measure(frames);
              }
              tr[`${family}:${n}`] = Object.fromEntries(modes.map(({ key }) => [key, m[key].acl / m[key].one]));
              rows.push({
                test: `testRun ${family} ${rules.length} rules`,
                rules: rules.length,
                'blob MB': info.bytes / 1e6,
                'ns/pkt empty': m.walk.empty,
                'ns/pkt 1 rule (walk)': m.walk.one,
                'ns/pkt acl (walk)': m.walk.acl,
                'vs 1 rule (walk)': m.walk.acl / m.walk.one,
                'ns/pkt 1 rule (cached)': m.cached.one,
                'ns/pkt acl (cached)': m.cached.acl,
                'vs 1 rule (cached)': m.cached.acl / m.cached.one,
                'ns/pkt acl (cached+events)': m.events.acl,
                'vs 1 rule (cached+events)': m.events.acl / m.events.one,
              });
              const f = (x) => x.toFixed(1);
              log(
                `testRun ${set}: walk ${f(m.walk.acl)} ns vs 1 rule ${f(m.walk.one)}; cached ${f(m.cached.acl)} vs ${f(m.cached.one)}; cached+events ${f(m.events.acl)} vs ${f(m.events.one)}; empty ${f(m.walk.empty)} ns, compile ${info.compileMs.toFixed(0)} ms`,
              );
            }
          }
        } finally {
          unpin();
          fwOne.close();
          fw.close();
        }
        for (const family of ['acl1', 'fw1']) {
          const top = sizes[sizes.length - 1];
          summary[`testRun_${family}_${top}_vs_1rule_walk`] = tr[`${family}:${top}`].walk;
          summary[`testRun_${family}_${top}_vs_1rule_cached`] = tr[`${family}:${top}`].cached;
          summary[`testRun_${family}_${top}_vs_1rule_cached_events`] = tr[`${family}:${top}`].events;
        }
        summary.goalTestRun100kVs1 = '<= 1.5';
      }

      // ---- 2. drop rate on the veth ----
      if (parts.has('drop')) {
        const gen = basic.xdpProgram('xdp_tx');
        // floods of FEW_FLOWS (fit the per-CPU verdict cache and flow memory) and MAX_FLOWS
        // (do not) flows: one generator each, keyed by the scenario label
        const flowGens = new Map();
        for (const n of [FEW_FLOWS, MAX_FLOWS]) {
          const o = await BpfObject.openBuiltin('xdp_basic', { globals: { tx_flows: n, tx_port_base: FLOW_PORT_BASE } }).load();
          flowGens.set(`${n} flows`, { obj: o, prog: o.xdpProgram('xdp_tx_flows') });
        }
        const fewFlows = `${FEW_FLOWS} flows`;
        const manyFlows = `${MAX_FLOWS} flows`;
        const flood = frame4(FLOOD.src, FLOOD.dst, 17, FLOOD.sport, FLOOD.dport, link.b.mac);
        const count = quick ? 400_000 : 2_000_000;
        const chunk = quick ? 200_000 : 500_000;
        const rounds = quick ? 1 : 3;
        const budget = quick ? 0.5 : 1.5;
        const nsenter = (args) => execFileSync('nsenter', [`--net=${b.netnsPath}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const liveSizes = quick ? [1, 10000] : [1, 10000, 100000];
        const ruleSets = Object.fromEntries(liveSizes.map((n) => [n, liveRules(n)]));
        const xdpfilterCount = () => {
          const out = nsenter(['xdp-filter', 'status']);
          const m = /XDP_DROP\s+(\d+) pkts/.exec(out);
          return m ? Number(m[1]) : 0;
        };
        const floorScenario = (flows) => ({
          id: `XDP_DROP floor (count + drop)${flows ? `, ${flows}` : ''}`,
          rules: 0,
          flows,
          gen: flows ? flowGens.get(flows).prog : gen,
          setup: async () => {
            const o = await BpfObject.openBuiltin('counter', { globals: { verdict: 1 } }).load();
            const p = o.xdpProgram('xdp_count');
            const l = p.attach(iface, { netns: b.netns });
            const m = o.perCpuMap('counters', { key: u32, value: counterCodec });
            const read = () => Number((m.get(0) ?? []).reduce((s, x) => s + x.packets, 0n));
            return {
              read,
              done: async () => {
                l.close();
                p.close();
                m.close();
                o.close();
              },
            };
          },
        });
        // the firewall with the n-rule set, flood rule last (or first), verdict cache on/off
        const aclScenario = (n, { first = false, cache = true, flows, events = true } = {}) => ({
          id: `AclFirewall ${n === 1 ? '1 rule' : `${ruleSets[n].length} rules, flood rule ${first ? 'first' : 'last'}`}${flows ? `, ${flows}` : ''}${cache ? '' : ', cache off'}${events ? '' : ', events off'}`,
          rules: ruleSets[n].length,
          flows,
          gen: flows ? flowGens.get(flows).prog : gen,
          setup: async () => {
            const rules = first ? [ruleSets[n].at(-1), ...ruleSets[n].slice(0, -1)] : ruleSets[n];
            const f = await AclFirewall.attach(iface, { netns: b.netns, maxRules: Math.max(n, 2048), rules, verdictCache: cache, events });
            const read = () => f.ruleStats('flood').packets;
            return { read, done: async () => f.close() };
          },
        });
        const big = liveSizes.filter((n) => n > 1);
        const scenarios = [
          floorScenario(),
          aclScenario(1),
          ...big.flatMap((n) => [aclScenario(n), aclScenario(n, { first: true }), aclScenario(n, { cache: false })]),
          floorScenario(fewFlows),
          aclScenario(10000, { flows: fewFlows }),
          aclScenario(10000, { flows: fewFlows, events: false }),
          floorScenario(manyFlows),
          aclScenario(10000, { flows: manyFlows }),
          aclScenario(10000, { flows: manyFlows, cache: false }),
          aclScenario(10000, { flows: manyFlows, events: false }),
          ...[1, 10000].map((n) => ({
            id: `xdp-filter ${n === 1 ? '1 port' : `1 port + ${n - 1} addresses`}`,
            rules: n,
            setup: async () => {
              nsenter(['xdp-filter', 'load', iface, '-m', 'native']);
              nsenter(['xdp-filter', 'port', String(FLOOD.dport), '-p', 'udp']);
              if (n > 1) {
                // addresses it can express: exact source IPs (10.x, never the flood's), written
                // into its pinned map in one bpftool batch (what `xdp-filter ip A -m src` writes:
                // the mode bit 1 on every CPU), not 9,999 CLI runs
                nsenter(['xdp-filter', 'ip', '10.255.255.255', '-m', 'src']);
                const cmds = Array.from(
                  { length: n - 2 },
                  (_, i) => `map update pinned /sys/fs/bpf/xdp-filter/filter_ipv4 key 10 ${(i >> 16) & 255} ${(i >> 8) & 255} ${i & 255} value 1 0 0 0 0 0 0 0`,
                );
                writeFileSync(join(tmp, 'xf.batch'), `${cmds.join('\n')}\n`);
                execFileSync('bpftool', ['batch', 'file', join(tmp, 'xf.batch')], { stdio: 'ignore' });
              }
              return {
                read: xdpfilterCount,
                done: async () => {
                  nsenter(['xdp-filter', 'unload', iface]);
                },
              };
            },
          })),
          ...[1, 10000].map((n) => ({
            id: `iptables raw PREROUTING ${n === 1 ? '1 rule' : `${ruleSets[n].length} rules`}`,
            rules: ruleSets[n].length,
            setup: async () => {
              writeFileSync(join(tmp, 'ipt.rules'), iptablesRules(ruleSets[n]));
              await b.exec(['iptables-restore', join(tmp, 'ipt.rules')]);
              const read = () => iptablesPackets(b.netns, { table: 'raw', chain: 'PREROUTING', match: '198.18.0.0/24' });
              return {
                read,
                done: async () => {
                  await b.exec(['iptables', '-t', 'raw', '-F', 'PREROUTING']);
                },
              };
            },
          })),
          ...[1, 10000].map((n) => ({
            id: `nftables prerouting ${n === 1 ? '1 rule' : `${ruleSets[n].length} rules`}`,
            rules: ruleSets[n].length,
            setup: async () => {
              writeFileSync(join(tmp, 'nft.rules'), nftRules(ruleSets[n]));
              await b.exec(['nft', '-f', join(tmp, 'nft.rules')]);
              const read = () => {
                const j = JSON.parse(
                  execFileSync('ip', ['netns', 'exec', b.netns, 'nft', '-j', 'list', 'chain', 'ip', 'bkbench', 'pre'], {
                    encoding: 'utf8',
                    maxBuffer: 1 << 28,
                  }),
                );
                for (const e of j.nftables) for (const x of e.rule?.expr ?? []) if (x.counter) return x.counter.packets;
                return 0;
              };
              return {
                read,
                done: async () => {
                  await b.exec(['nft', 'delete', 'table', 'ip', 'bkbench']);
                },
              };
            },
          })),
        ];
        const results = Object.fromEntries(scenarios.map((s) => [s.id, []]));
        for (let r = 0; r < rounds; r++) {
          for (const s of scenarios) {
            const st = await s.setup();
            try {
              await settle();
              const before = st.read();
              // chunks grow from 20k frames while the receiver keeps up; a scenario ends after
              // `count` frames or `budget` seconds (slow receivers: iptables with 10k rules)
              const t0 = process.hrtime.bigint();
              let sent = 0;
              let n = 20_000;
              let secs = 0;
              while (sent < count) {
                await (s.gen ?? gen).generate(flood, { iface: link.a.ifname, netns: a.netns, count: n, batchSize: 64 });
                sent += n;
                secs = Number(process.hrtime.bigint() - t0) / 1e9;
                if (secs > budget) break;
                n = Math.min(chunk, n * 2, count - sent);
              }
              await sleep(100);
              const dropped = st.read() - before;
              results[s.id].push({ secs, sent, dropped, pps: dropped / secs, offered: sent / secs });
              log(
                `round ${r + 1} ${s.id}: ${Math.round(dropped / secs).toLocaleString('en-US')} dropped/s (${dropped} of ${sent} offered at ${Math.round(sent / secs).toLocaleString('en-US')}/s)`,
              );
            } finally {
              await st.done();
            }
          }
        }
        const pick = (id) => median(results[id].map((x) => x.pps));
        const floor = pick(scenarios[0].id);
        const floorOf = (flows) => (flows ? pick(floorScenario(flows).id) : floor);
        for (const s of scenarios) {
          rows.push({
            test: `drop ${s.id}`,
            rules: s.rules || undefined,
            'dropped pkt/s': Math.round(pick(s.id)),
            'dropped/offered': median(results[s.id].map((x) => x.dropped / x.sent)),
            'vs floor': pick(s.id) / floorOf(s.flows),
          });
        }
        const xf = pick('xdp-filter 1 port');
        for (const n of big) {
          for (const [key, opts] of [
            ['last', {}],
            ['first', { first: true }],
            ['last_cache_off', { cache: false }],
          ]) {
            const id = aclScenario(n, opts).id;
            summary[`drop_${n}_${key}_vs_floor`] = pick(id) / floor;
            summary[`drop_${n}_${key}_vs_xdpfilter`] = pick(id) / xf;
          }
        }
        for (const [key, opts] of [
          ['', {}],
          ['_events_off', { events: false }],
        ]) {
          summary[`drop_10000_last_${FEW_FLOWS}flows${key}_vs_floor`] = pick(aclScenario(10000, { flows: fewFlows, ...opts }).id) / floorOf(fewFlows);
        }
        for (const [key, opts] of [
          ['', {}],
          ['_cache_off', { cache: false }],
          ['_events_off', { events: false }],
        ]) {
          summary[`drop_10000_last_${MAX_FLOWS}flows${key}_vs_floor`] = pick(aclScenario(10000, { flows: manyFlows, ...opts }).id) / floorOf(manyFlows);
        }
        summary.drop_1rule_vs_floor = pick('AclFirewall 1 rule') / floor;
        summary.xdpfilter_vs_floor = xf / floor;
        summary.drop_10k_vs_iptables_10k =
          pick(`AclFirewall ${ruleSets[10000].length} rules, flood rule last`) / pick(`iptables raw PREROUTING ${ruleSets[10000].length} rules`);
        summary.drop_10k_vs_nftables_10k =
          pick(`AclFirewall ${ruleSets[10000].length} rules, flood rule last`) / pick(`nftables prerouting ${ruleSets[10000].length} rules`);
        summary.goalDrop = '>= xdp-filter and >= 0.8 of floor at 10k/100k; >= 100x iptables at 10k';
        gen.close();
        for (const { obj, prog } of flowGens.values()) {
          prog.close();
          obj.close();
        }
      }

      // ---- 3. replace a 10,000-rule set ----
      if (parts.has('changes')) {
        const sets = ['acl1_10k', 'fw1_10k', 'ipc1_10k'].map((s) => parseClassBench(readCB(s), { idPrefix: `${s}-` }).slice(0, 10_000));
        const fw10 = await AclFirewall.attach(iface, { netns: b.netns, maxRules: 10_000, rules: sets[0] });
        const times = [];
        const compiles = [];
        const reps = quick ? 3 : 9;
        for (let i = 1; i <= reps; i++) {
          const t0 = performance.now();
          const info = await fw10.setRules(sets[i % sets.length]);
          times.push(performance.now() - t0);
          compiles.push(info.compileMs);
        }
        rows.push({ test: 'replace a 10k-rule set (setRules, total)', rules: 10_000, ms: median(times) });
        rows.push({ test: '  of which validate + compile', rules: 10_000, ms: median(compiles) });
        rows.push({ test: '  of which kernel write + swap', rules: 10_000, ms: median(times.map((t, i) => t - compiles[i])) });
        summary.replace10kMs = median(times);
        summary.goalReplace10kMs = '< 50';
        fw10.close();
        await shapesSection({ quick, log, rows, summary, ifaces: [iface, link2.b.ifname], netns: b.netns, empty });
        await oneRuleSection({ quick, rows, summary, iface, netns: b.netns });
      }
      empty.close();
      basic.close();
    } finally {
      await lab.close();
      rmSync(tmp, { recursive: true, force: true });
      unregisterForExit(libxdpCleanup);
      removeEmptyDirs(libxdpDirs);
    }
    return { rows, summary };
  },
};
