import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AclFirewall, BpfObject, parseClassBench, parseClassBenchTrace, u32 } from '../../dist/index.js';
import { median, root } from '../lib.mjs';
import { isolatedReceiver } from '../lib/isolated.mjs';
import { FLOOD, counterCodec, frame4, liveRules, readCB } from './common.mjs';

// ---- 4. the isolated receiver (bench/lib/isolated.mjs) ----
// One flood flow (the 1-rule firewall, and the flood rule last behind 10k and 100k acl1
// rules) and a ClassBench trace replay (TRACE_HEADERS distinct TCP/UDP headers of the set's
// trace, cycled by test/bpf/trace_gen.bpf.c; every rule deny and the default deny, so
// every packet is dropped as by the references), against, in the same round: trivial
// XDP_DROP, parse+hash+counter (test/bpf/parse_ref.bpf.c, fed by the same generator) and
// xdp-filter with one port. Per scenario: frames B's NAPI consumed per second of wall time
// (ns/packet = 1e9 / rate) and the NAPI thread's CPU ns per consumed frame; ratios are
// medians of per-round ratios to the same round's reference.
const TRACE_HEADERS = 4096;
// ACL_ISO_ONLY=replay: only the trace replays and their reference (to compare variants of
// the program; the summary then has no flood figures); ACL_ISO_ONLY=flood: only the floods
// behind many rules (this build's and each ACL_ISO_BASE build's) and their reference.
// ACL_ISO_ROUNDS: rounds (default 3).
// ACL_ISO_BASE: the root of another build of bpfkit (package.json, dist/, build/ of an older
// commit), or several separated by commas: each one's AclFirewall replays too, in the same
// rounds (the builds attached in turn); the first is "the base" of the summary's ratios.
const only = process.env.ACL_ISO_ONLY;
const baseRoots = (process.env.ACL_ISO_BASE ?? '').split(',').filter(Boolean);
export async function isolatedPart({ quick, log, rows, summary, lab }) {
  const a = await lab.host('ia');
  const b = await lab.host('ib');
  const iso = await isolatedReceiver(lab, a, b, { aAddrs: ['198.18.4.1/24'], bAddrs: ['198.18.4.2/24'], bMac: '02:00:00:00:04:02' });
  const { iface } = iso;
  const closers = [];
  try {
    const basic = await BpfObject.openBuiltin('xdp_basic').load();
    closers.push(() => basic.close());
    const txGen = basic.xdpProgram('xdp_tx');
    const flood = frame4(FLOOD.src, FLOOD.dst, 17, FLOOD.sport, FLOOD.dport, iso.link.b.mac);
    const sizes = quick ? [1, 10000] : [1, 10000, 100000];
    const floods = only !== 'replay';
    const floodOnly = only === 'flood';
    const ruleSets = Object.fromEntries(sizes.map((n) => [n, liveRules(n)]));
    // trace replay: the set's rules, all deny; TRACE_HEADERS TCP/UDP headers spread over its trace
    const replays = sizes
      .filter((n) => n > 1 && !floodOnly)
      .map((n) => {
        const set = n === 10000 ? 'acl1_10k' : 'acl1_100k';
        const trace = parseClassBenchTrace(readCB(`${set}_trace`)).filter((h) => h.proto === 6 || h.proto === 17);
        const uniq = [...new Map(trace.map((h) => [`${h.src},${h.dst},${h.srcPort},${h.dstPort},${h.proto}`, h])).values()];
        const picks = Array.from({ length: TRACE_HEADERS }, (_, i) => uniq[Math.floor((i * uniq.length) / TRACE_HEADERS)]);
        const tbl = Buffer.alloc(16 * 8192);
        picks.forEach((h, i) => {
          tbl.writeUInt32BE(h.src >>> 0, 16 * i);
          tbl.writeUInt32BE(h.dst >>> 0, 16 * i + 4);
          tbl.writeUInt16BE(h.srcPort, 16 * i + 8);
          tbl.writeUInt16BE(h.dstPort, 16 * i + 10);
          tbl[16 * i + 12] = h.proto;
        });
        return { n, set, distinct: new Set(picks).size, rules: parseClassBench(readCB(set), { action: () => 'deny' }), tbl };
      });
    const genOf = new Map();
    for (const r of replays) {
      const o = await BpfObject.load(join(root, 'build/test-bpf/trace_gen.bpf.o'), { globals: { hdrs: r.tbl, nhdrs: TRACE_HEADERS } });
      closers.push(() => o.close());
      genOf.set(r.set, o.xdpProgram('xdp_trace_tx'));
    }
    const attachProg = async (file, prog, mapName) => {
      const o = await BpfObject.load(file);
      const l = o.xdpProgram(prog).attach(iface, { netns: b.netns });
      const m = mapName ? o.perCpuMap(mapName, { key: u32, value: counterCodec }) : null;
      const read = m ? () => Number((m.get(0) ?? []).reduce((s, x) => s + x.packets, 0n)) : undefined;
      return {
        read,
        done: async () => {
          l.close();
          m?.close();
          o.close();
        },
      };
    };
    const ref = (group, gen, frame) => ({
      id: `parse+hash+counter${group ? `, ${group}` : ''}`,
      group,
      gen,
      frame,
      ref: true,
      setup: () => attachProg(join(root, 'build/test-bpf/parse_ref.bpf.o'), 'xdp_parse_hash_count', 'ref_counters'),
    });
    const BaseFirewalls = [];
    for (const dir of baseRoots) BaseFirewalls.push((await import(pathToFileURL(join(resolve(dir), 'dist/index.js')).href)).AclFirewall);
    // base: 0 this build, k the k-th of ACL_ISO_BASE
    const baseName = (k) => (!k ? '' : baseRoots.length === 1 ? ', base build' : `, base build ${k} (${baseRoots[k - 1]})`);
    const acl = (n, opts = {}, base = 0) => ({
      id: `AclFirewall ${n === 1 ? '1 rule' : `${ruleSets[n].length} rules, flood rule last`}${opts.events === false ? ', events off' : ''}${baseName(base)}`,
      group: '',
      gen: txGen,
      frame: flood,
      n,
      setup: async () => {
        const f = await (base ? BaseFirewalls[base - 1] : AclFirewall).attach(iface, {
          netns: b.netns,
          maxRules: Math.max(n, 2048),
          rules: ruleSets[n],
          ...opts,
        });
        return { read: () => Number(f.ruleStats('flood').packets), done: async () => f.close() };
      },
    });
    const replay = (r, opts = {}, base = 0) => ({
      id: `AclFirewall ${r.set} (${r.rules.length} rules, all deny), trace replay${opts.events === false ? ', events off' : ''}${baseName(base)}`,
      group: r.set,
      gen: genOf.get(r.set),
      frame: flood,
      n: r.n,
      setup: async () => {
        const f = await (base ? BaseFirewalls[base - 1] : AclFirewall).attach(iface, {
          netns: b.netns,
          maxRules: Math.max(r.n, 2048),
          rules: r.rules,
          defaultAction: 'deny',
          ...opts,
        });
        return {
          done: async () => {
            // the share of packets that walked the trees (verdict-cache misses) over the whole attach
            const { cached, walked } = (await f.stats()).classified;
            log(`  ${r.set}${baseName(base)}: ${walked} of ${cached + walked} packets walked the trees`);
            await f.close();
          },
        };
      },
    });
    const floodScenarios = [
      {
        id: 'XDP_DROP (trivial)',
        group: '',
        gen: txGen,
        frame: flood,
        setup: async () => {
          const l = basic.xdpProgram('xdp_drop').attach(iface, { netns: b.netns });
          return { done: async () => l.close() };
        },
      },
      ref('', txGen, flood),
      {
        id: 'xdp-filter 1 port',
        group: '',
        gen: txGen,
        frame: flood,
        xf: true,
        setup: async () => {
          iso.nsenter(['xdp-filter', 'load', iface, '-m', 'native']);
          try {
            iso.nsenter(['xdp-filter', 'port', String(FLOOD.dport), '-p', 'udp']);
          } catch (e) {
            iso.nsenter(['xdp-filter', 'unload', iface]);
            throw e;
          }
          return {
            done: async () => {
              iso.nsenter(['xdp-filter', 'unload', iface]);
            },
          };
        },
      },
      ...sizes.map((n) => acl(n)),
      acl(sizes.at(-1), { events: false }),
      // the floods behind many rules of each ACL_ISO_BASE build too
      ...BaseFirewalls.flatMap((_, k) => sizes.filter((n) => n > 1).map((n) => acl(n, {}, k + 1))),
    ];
    const floodOnlyIds = new Set([ref('', txGen, flood).id, ...sizes.filter((n) => n > 1).map((n) => acl(n).id)]);
    const scenarios = [
      ...(floodOnly ? floodScenarios.filter((s) => floodOnlyIds.has(s.id) || s.id.includes(', base build')) : floods ? floodScenarios : []),
      ...replays.flatMap((r) => [
        ref(r.set, genOf.get(r.set), flood),
        replay(r),
        replay(r, { events: false }),
        ...BaseFirewalls.flatMap((_, k) => [replay(r, {}, k + 1), replay(r, { events: false }, k + 1)]),
      ]),
    ];
    const rounds = quick ? 1 : Number(process.env.ACL_ISO_ROUNDS ?? 3);
    const seconds = quick ? 0.5 : 1;
    const res = Object.fromEntries(scenarios.map((s) => [s.id, []]));
    for (let round = 0; round < rounds; round++) {
      for (const s of round % 2 ? [...scenarios].reverse() : scenarios) {
        const st = await s.setup();
        try {
          const m = await iso.measure({ gen: s.gen, frame: s.frame, seconds, read: st.read });
          res[s.id].push(m);
          log(
            `isolated round ${round + 1} ${s.id}: ${m.nsPerPkt.toFixed(0)} ns/pkt (${(m.pps / 1e6).toFixed(2)} Mpps consumed of ${(m.offered / 1e6).toFixed(2)} offered), NAPI CPU ${m.napiNsPerPkt.toFixed(0)} ns/pkt${m.counted !== undefined ? `, counted/consumed ${(m.counted / m.consumed).toFixed(3)}` : ''}`,
          );
        } finally {
          await st.done();
        }
      }
    }
    const refOf = (s) => scenarios.find((x) => x.ref && x.group === s.group).id;
    const xfId = 'xdp-filter 1 port';
    const paired = (id, other, key) => median(res[id].map((m, i) => res[other][i][key] / m[key]));
    const spread = (id, key) => `${Math.min(...res[id].map((m) => m[key])).toFixed(0)}..${Math.max(...res[id].map((m) => m[key])).toFixed(0)}`;
    for (const s of scenarios) {
      const r = refOf(s);
      rows.push({
        test: `isolated ${s.id}`,
        rules: s.n,
        'Mpps consumed': median(res[s.id].map((m) => m.pps)) / 1e6,
        'ns/pkt': median(res[s.id].map((m) => m.nsPerPkt)),
        'ns/pkt min..max': spread(s.id, 'nsPerPkt'),
        'NAPI CPU ns/pkt': median(res[s.id].map((m) => m.napiNsPerPkt)),
        'CPU min..max': spread(s.id, 'napiNsPerPkt'),
        'vs ref (rate)': paired(s.id, r, 'nsPerPkt'),
        'vs ref (CPU)': paired(s.id, r, 'napiNsPerPkt'),
        'vs xdp-filter (rate)': s.group || !floods || floodOnly ? undefined : paired(s.id, xfId, 'nsPerPkt'),
      });
    }
    for (const n of floods ? sizes.filter((k) => !floodOnly || k > 1) : []) {
      const id = acl(n).id;
      summary[`isolated_flood_${n}_vs_ref`] = paired(id, refOf(acl(n)), 'nsPerPkt');
      summary[`isolated_flood_${n}_vs_ref_cpu`] = paired(id, refOf(acl(n)), 'napiNsPerPkt');
      if (!floodOnly) summary[`isolated_flood_${n}_vs_xdpfilter`] = paired(id, xfId, 'nsPerPkt');
      // this build's NAPI CPU per packet over the first base build's, paired by round (< 1: cheaper)
      if (n > 1 && BaseFirewalls.length) summary[`isolated_flood_${n}_vs_base_cpu`] = 1 / paired(id, acl(n, {}, 1).id, 'napiNsPerPkt');
    }
    for (const r of replays) {
      summary[`isolated_replay_${r.n}_vs_ref`] = paired(replay(r).id, refOf(replay(r)), 'nsPerPkt');
      summary[`isolated_replay_${r.n}_vs_ref_cpu`] = paired(replay(r).id, refOf(replay(r)), 'napiNsPerPkt');
      for (let k = 1; k <= BaseFirewalls.length; k++) {
        const base = k === 1 ? 'base' : `base${k}`;
        summary[`isolated_replay_${r.n}_${base}_vs_ref_cpu`] = paired(replay(r, {}, k).id, refOf(replay(r)), 'napiNsPerPkt');
        // this build's NAPI CPU per packet over the base build's, paired by round (< 1: cheaper)
        summary[`isolated_replay_${r.n}_vs_${base}_cpu`] = 1 / paired(replay(r).id, replay(r, {}, k).id, 'napiNsPerPkt');
        summary[`isolated_replay_${r.n}_events_off_vs_${base}_cpu`] =
          1 / paired(replay(r, { events: false }).id, replay(r, { events: false }, k).id, 'napiNsPerPkt');
      }
    }
    summary.goalIsolated = 'flood rule last at 10k/100k >= 0.8 of parse+hash+counter and >= 2x xdp-filter; trace replay >= 0.6 of parse+hash+counter';
  } finally {
    for (const c of closers.reverse()) c();
    iso.close();
  }
}
