// ServiceChainer benchmark: forwarded packets/s through a router host.
//
// Topology (a Lab of its own): generator G -> router R -> sink S, twice (R0 -> S0 for the
// scenarios without policy routes, R1 -> S1 for those with: see makePath). G sends live frames
// (XdpProgram.generate with the re-stamping XDP_TX program test/bpf/decap_gen.bpf.c: R
// rewrites MACs and TTL in pages live-frames mode recycles, so every frame is stamped
// afresh) of 128-byte IPv4/UDP, src FLOW_SRC -> 198.19.0.10, to R's MAC. R forwards them
// (ip_forward=1) to S, where an XDP program counts and drops them ("arrived at S").
// Every route to 198.19.0.0/24 - main table, the policy routing tables - has the same
// next hop (S), so forwarding works with and without a mark; the mark only costs.
//
// Receiver isolation (DESIGN: live benchmarks on veth): R's ingress runs threaded NAPI
// pinned to CPU 1; this process (the generator) and S's threaded NAPI share CPU 0. So the
// router's work - XDP, TC, the stack's forwarding, netfilter, fib rules - is alone on CPU 1.
//
// Scenarios, alternating within each round (order reversed every other round):
//   plain forwarding                  the ceiling: no XDP, no rules
//   empty XDP_PASS on R               the reference: what an XDP program at all costs
//   plain forwarding, R1              diagnostic: router 1 once it has had fib rules
//   ip rule + table only              diagnostic: the policy route, nothing marks
//   iptables + ip rule, N rules       the status quo: N rules in mangle PREROUTING
//                                     (`-s X/32 -j MARK --set-mark 0x10`, iptables-nft) and
//                                     `ip rule fwmark 0x10 table 110`
//   ServiceChainer, N rules           ServiceChainer.attach on R's ingress, N rules
//                                     `{ src: X/32, action: 'svc' }` -> mark 0x10, table 110
//   ServiceChainer + XDP forward, N   the same with forward: 'xdp' (egress: R's veth to S):
//                                     XDP routes the marked packets itself (bpf_fib_lookup
//                                     with the mark through the same ip rule and table)
//   plain XDP forwarding              the reference for it: the chainer's forwarding code
//                                     alone (test/bpf/chain_fwd_ref.bpf.c: FIB lookup,
//                                     rewrite, redirect; no classification, no mark), on
//                                     router 0 (no fib rules) and, diagnostic, on router 1
//                                     with the ip rule + table in place
// with N = 1, 100, 1,000 and the measured flow's rule always the LAST in the set. The
// nftables table iptables-nft creates is deleted after each iptables scenario, so no other
// scenario pays its hook. Rate = frames R forwarded (its egress veth's tx packets + tx
// dropped: S, sharing CPU 0 with the generator, does not take all) / generation time;
// medians over rounds with min..max, and medians of per-round ratios ("paired":
// scenarios measured seconds apart share the machine's load).
// Also, steadier on a shared machine: the CPU time R's NAPI thread (where R's whole
// forwarding path runs) spent per packet it received (/proc/PID/schedstat), and from it
// packets/s per CPU (1e9 / ns); "CPU:" ratios compare those, paired.
// Goals: ServiceChainer >= 0.9 of plain forwarding at 1,000 rules, >= 1.5x iptables. With
// forward: 'xdp' the chainer replaces the stack's forwarding, so it is reported against plain
// (stack) forwarding, the goal's ceiling, and against plain XDP forwarding, its own.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject, ServiceChainer, struct, u32, u64 } from '../dist/index.js';
import { Lab } from '../dist/lab.js';
import { median, pinProcess, root } from './lib.mjs';
import { udpFrame128 } from './lib/frames.mjs';
import { iptablesPackets } from './lib/iptables.mjs';
import { cpuNsByPid, napiThreads } from './lib/napi.mjs';
import { DST_IP, GEN_CPU, pathMacs, ROUTER_CPU, routerPath, SINK_IP } from './lib/router.mjs';

const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const MACS = pathMacs(0xcb);
const MARK = 0x10;
const TABLE = 110;
/** N classification sources: 198.18.64.0 + i; the measured flow is the last one. */
const srcOf = (i) => `198.18.${64 + (i >> 8)}.${i & 255}`;
const FLOW_SRC = srcOf(999);
const srcSet = (n) => [...Array.from({ length: n - 1 }, (_, i) => srcOf(i)), FLOW_SRC];

function iptablesRules(srcs) {
  const lines = ['*mangle', ':PREROUTING ACCEPT [0:0]'];
  for (const s of srcs) lines.push(`-A PREROUTING -s ${s}/32 -j MARK --set-mark 0x${MARK.toString(16)}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export default {
  name: 'chain',
  description: 'ServiceChainer: forwarded pkt/s through a router vs plain forwarding, empty XDP and iptables MARK + ip rule, at 1/100/1,000 rules',
  async run({ quick, log }) {
    const rows = [];
    const summary = {};
    const tmp = mkdtempSync(join(tmpdir(), 'bpfkit-chain-bench-'));
    const lab = await Lab.create({ name: 'bench-chain' });
    const tag = lab.netnsName('x').split('-')[1].slice(0, 4);
    let unpin = () => {};
    const closers = [];
    try {
      const g = await lab.host('g');
      const linkStats = async (host, ifname) => {
        const j = await host.ipJson(['-s', 'link', 'show', 'dev', ifname]);
        return j[0].stats64;
      };
      // Two identical router paths: custom fib rules, once added to a namespace, keep its
      // route lookups on the fib-rules path after they are removed (fib_has_custom_rules is
      // never reset), so the ceiling and the empty-XDP reference run on router 0, which
      // never gets a rule, and every scenario with policy routes on router 1. G has no
      // addresses: it only transmits frames.
      const makePath = (i) => routerPath(lab, g, { id: i, tag, macs: MACS }, closers);
      const p0 = await makePath(0);
      const p1 = await makePath(1);
      const { r, names } = p1;
      for (const p of [p0, p1]) {
        const pinned = await p.pinNapi();
        log(
          `router ${p.id}: threaded NAPI, ${pinned.router} thread(s) for R's ingress on CPU ${ROUTER_CPU}, ${pinned.sink} for S on CPU ${GEN_CPU}; generator on CPU ${GEN_CPU}`,
        );
      }
      unpin = pinProcess(GEN_CPU);

      const f = udpFrame128(MACS.g, MACS.rIn, FLOW_SRC, DST_IP);
      const genObj = await BpfObject.load(join(root, 'build/test-bpf/decap_gen.bpf.o'), { globals: { tmpl: f } });
      closers.push(() => genObj.close());

      const sizes = [1, 100, 1000];
      const ipt = (n) => ({
        id: `iptables MARK + ip rule, ${n} rule${n > 1 ? 's' : ''}`,
        kind: 'iptables',
        n,
        path: p1,
        setup: async () => {
          writeFileSync(join(tmp, `ipt${n}`), iptablesRules(srcSet(n)));
          await r.exec(['iptables-nft-restore', join(tmp, `ipt${n}`)]);
          await r.batch([`route add default via ${SINK_IP} table ${TABLE}`, `rule add fwmark ${MARK} table ${TABLE} priority 1000`]);
          const read = () => iptablesPackets(r.netns, { bin: 'iptables-nft', table: 'mangle', chain: 'PREROUTING', match: FLOW_SRC });
          return {
            read,
            done: async () => {
              await r.batch([`rule del fwmark ${MARK} table ${TABLE} priority 1000`, `route del default table ${TABLE}`]);
              await r.exec(['nft', 'delete', 'table', 'ip', 'mangle']);
            },
          };
        },
      });
      const chain = (n) => ({
        id: `ServiceChainer, ${n} rule${n > 1 ? 's' : ''}`,
        kind: 'chain',
        n,
        path: p1,
        setup: async () => {
          const c = await ServiceChainer.attach(names.rIn, {
            netns: r.netns,
            services: [{ name: 'svc', mark: MARK, table: TABLE, nexthops: [{ via: SINK_IP }] }],
            upstream: { mark: 0x20, table: TABLE + 10, nexthops: [{ via: SINK_IP }] },
            rules: srcSet(n).map((x) => ({ src: `${x}/32`, action: 'svc' })),
            rulePriority: 1000,
          });
          const read = () => Number(c.stats().rules.at(-1).packets);
          return { read, done: async () => c.close() };
        },
      });
      const chainx = (n) => ({
        id: `ServiceChainer + XDP forward, ${n} rule${n > 1 ? 's' : ''}`,
        kind: 'chainx',
        n,
        path: p1,
        setup: async () => {
          const c = await ServiceChainer.attach(names.rIn, {
            netns: r.netns,
            services: [{ name: 'svc', mark: MARK, table: TABLE, nexthops: [{ via: SINK_IP }] }],
            upstream: { mark: 0x20, table: TABLE + 10, nexthops: [{ via: SINK_IP }] },
            rules: srcSet(n).map((x) => ({ src: `${x}/32`, action: 'svc' })),
            rulePriority: 1000,
            forward: 'xdp',
            egress: [names.rOut],
          });
          const read = () => Number(c.stats().rules.at(-1).packets);
          const redirected = () => Number(c.stats().forward.redirected.packets);
          return { read, redirected, done: async () => c.close() };
        },
      });
      // plain XDP forwarding: the chainer's forwarding code alone (mark 0, every frame)
      const xdpRef = (P, withRule) => async () => {
        const o = await BpfObject.load(join(root, 'build/test-bpf/chain_fwd_ref.bpf.o'));
        const egress = o.map('chain_egress', { key: u32, value: u32 });
        const out = (await P.r.ipJson(['link', 'show', 'dev', P.names.rOut]))[0].ifindex;
        egress.set(out, out);
        const stats = o.perCpuMap('fwd_counters', { key: u32, value: counterCodec });
        const p = o.xdpProgram('xdp_fwd_ref');
        if (withRule) await P.r.batch([`route add default via ${SINK_IP} table ${TABLE}`, `rule add fwmark ${MARK} table ${TABLE} priority 1000`]);
        const l = p.attach(P.names.rIn, { netns: P.r.netns });
        const redirected = () => Number((stats.get(0) ?? []).reduce((a, x) => a + x.packets, 0n));
        return {
          redirected,
          done: async () => {
            l.close();
            p.close();
            egress.close();
            stats.close();
            o.close();
            if (withRule) await P.r.batch([`rule del fwmark ${MARK} table ${TABLE} priority 1000`, `route del default table ${TABLE}`]);
          },
        };
      };
      const XREF = 'plain XDP forwarding (reference)';
      const scenarios = [
        { id: 'plain forwarding (ceiling)', kind: 'plain', path: p0, setup: async () => ({ done: async () => {} }) },
        {
          id: 'empty XDP_PASS on R ingress',
          kind: 'xdp',
          path: p0,
          setup: async () => {
            const o = await BpfObject.openBuiltin('xdp_basic').load();
            const p = o.xdpProgram('xdp_pass');
            const l = p.attach(p0.names.rIn, { netns: p0.r.netns });
            return {
              done: async () => {
                l.close();
                p.close();
                o.close();
              },
            };
          },
        },
        // diagnostic: no rules on router 1, where rules have been (from round 1 on)
        { id: 'plain forwarding, R1 (had fib rules)', kind: 'plain1', path: p1, setup: async () => ({ done: async () => {} }) },
        // diagnostic: the policy routes alone (nothing marks): what custom fib rules cost
        {
          id: 'ip rule + table only, nothing marks',
          kind: 'rules',
          path: p1,
          setup: async () => {
            await r.batch([`route add default via ${SINK_IP} table ${TABLE}`, `rule add fwmark ${MARK} table ${TABLE} priority 1000`]);
            return { done: async () => r.batch([`rule del fwmark ${MARK} table ${TABLE} priority 1000`, `route del default table ${TABLE}`]) };
          },
        },
        ...sizes.map(ipt),
        ...sizes.map(chain),
        { id: XREF, kind: 'xref', path: p0, setup: xdpRef(p0, false) },
        // diagnostic: the same on router 1 with the policy route in place (fib rules in the lookup)
        { id: 'plain XDP forwarding + ip rule, R1', kind: 'xref1', path: p1, setup: xdpRef(p1, true) },
        ...sizes.map(chainx),
      ];
      const budget = quick ? 0.4 : 0.5;
      const chunk = 1_000_000;
      const rounds = quick ? 1 : 15;
      const results = Object.fromEntries(scenarios.map((x) => [x.id, []]));
      for (let round = 0; round < rounds; round++) {
        for (const sc of round % 2 ? [...scenarios].reverse() : scenarios) {
          const st = await sc.setup();
          const res = {};
          try {
            // attaching or detaching XDP may re-create R's NAPI (and its thread)
            const P = sc.path;
            const p = await P.pinNapi();
            if (!p.router || !p.sink) log(`warning: no NAPI thread to pin (router ${p.router}, sink ${p.sink})`);
            const a0 = P.arrived();
            const m0 = st.read?.() ?? 0;
            const x0 = st.redirected?.() ?? 0;
            const e0 = await linkStats(P.r, P.names.rOut);
            const i0 = await linkStats(P.r, P.names.rIn);
            const napiPids = napiThreads(P.names.rIn);
            const c0 = cpuNsByPid(napiPids);
            const gen = genObj.xdpProgram('xdp_stamp_tx');
            // the generator offers ~10x what R forwards: send chunks until the time budget
            const t0 = process.hrtime.bigint();
            let sent = 0;
            let secs = 0;
            for (let k = 0; k < 1000 && secs < budget; k++) {
              await gen.generate(f, { iface: P.names.gOut, netns: g.netns, count: chunk, batchSize: 64 });
              sent += chunk;
              secs = Number(process.hrtime.bigint() - t0) / 1e9;
            }
            gen.close();
            await sleep(100);
            const c1 = cpuNsByPid(napiThreads(P.names.rIn));
            // R's whole forwarding path (XDP, TC, stack, netfilter, fib, egress veth) runs in
            // its NAPI thread: its CPU time per packet does not depend on how much CPU the
            // thread got on a machine shared with other work (a re-created thread: NaN)
            const napiNs = napiPids.reduce((a, p) => a + ((c1[p] ?? NaN) - c0[p]), 0);
            const got = P.arrived() - a0;
            const matched = (st.read?.() ?? 0) - m0;
            const redirected = (st.redirected?.() ?? 0) - x0;
            const e1 = await linkStats(P.r, P.names.rOut);
            const i1 = await linkStats(P.r, P.names.rIn);
            // forwarded = what R handed to its egress veth: sent on, or dropped there because
            // S's queue was full (S shares CPU 0 with the generator); either way R did the work
            const forwarded = e1.tx.packets - e0.tx.packets + (e1.tx.dropped - e0.tx.dropped);
            Object.assign(res, {
              secs,
              sent,
              forwarded,
              pps: forwarded / secs,
              arrived: got,
              arrivedPps: got / secs,
              offeredPps: sent / secs,
              matched,
              redirected,
              routerRx: i1.rx.packets - i0.rx.packets,
              routerTxDropped: e1.tx.dropped - e0.tx.dropped,
              nsPerPacket: napiNs / (i1.rx.packets - i0.rx.packets),
            });
          } finally {
            await st.done();
          }
          results[sc.id].push(res);
          log(
            `round ${round + 1} ${sc.id}: ${fmt(res.pps)}/s forwarded (${res.forwarded} in ${res.secs.toFixed(2)} s; R's NAPI thread ${res.nsPerPacket.toFixed(0)} ns/packet; R rx ${res.routerRx}; arrived at S ${res.arrived}, dropped at R's egress ${res.routerTxDropped}; offered ${fmt(res.offeredPps)}/s` +
              (sc.kind.startsWith('chain') || sc.kind === 'iptables' ? `; last rule matched ${res.matched}` : '') +
              (st.redirected ? `; redirected by XDP ${res.redirected})` : ')'),
          );
          if (st.redirected && res.redirected < res.forwarded * 0.99)
            throw new Error(`${sc.id}: XDP redirected ${res.redirected} packets, ${res.forwarded} forwarded`);
          if (sc.kind.startsWith('chain') || sc.kind === 'iptables') {
            // the measured flow must have been classified by the last rule: every packet of it
            // R forwarded (R's own few packets, IPv6 ND/MLD, count as forwarded too)
            if (res.matched < res.forwarded * 0.99) throw new Error(`${sc.id}: last rule matched ${res.matched} packets, ${res.forwarded} forwarded`);
          }
        }
      }
      const PLAIN = scenarios[0].id;
      const XDP = scenarios[1].id;
      const med = (id) => median(results[id].map((x) => x.pps));
      const paired = (x, y) => median(results[x].map((v, i) => v.pps / results[y][i].pps));
      // per-CPU capacity: 1e9 / R's NAPI-thread ns per packet
      const cap = (id) => median(results[id].map((x) => 1e9 / x.nsPerPacket));
      const capPaired = (x, y) => median(results[x].map((v, i) => results[y][i].nsPerPacket / v.nsPerPacket));
      for (const sc of scenarios) {
        const xs = results[sc.id].map((x) => x.pps);
        const row = {
          test: sc.id,
          rounds,
          'forwarded/s': Math.round(med(sc.id)),
          'min..max': `${fmt(Math.min(...xs))}..${fmt(Math.max(...xs))}`,
          'arrived at S/s': Math.round(median(results[sc.id].map((x) => x.arrivedPps))),
          'vs plain': med(sc.id) / med(PLAIN),
          'vs plain paired': paired(sc.id, PLAIN),
          'vs empty XDP paired': paired(sc.id, XDP),
          'vs iptables paired': sc.kind.startsWith('chain') ? paired(sc.id, ipt(sc.n).id) : undefined,
          'NAPI ns/pkt': median(results[sc.id].map((x) => x.nsPerPacket)),
          'ns/pkt min..max': `${Math.min(...results[sc.id].map((x) => x.nsPerPacket)).toFixed(0)}..${Math.max(...results[sc.id].map((x) => x.nsPerPacket)).toFixed(0)}`,
          'pkt/s per CPU': Math.round(cap(sc.id)),
          'CPU: vs plain paired': capPaired(sc.id, PLAIN),
          'CPU: vs empty XDP paired': capPaired(sc.id, XDP),
          'CPU: vs iptables paired': sc.kind.startsWith('chain') ? capPaired(sc.id, ipt(sc.n).id) : undefined,
          'CPU: vs plain XDP fwd paired': capPaired(sc.id, XREF),
        };
        rows.push(row);
      }
      summary.emptyXdpVsPlainPaired = paired(XDP, PLAIN);
      summary.cpu_emptyXdpVsPlainPaired = capPaired(XDP, PLAIN);
      for (const n of sizes) {
        summary[`chain${n}VsPlainPaired`] = paired(chain(n).id, PLAIN);
        summary[`chain${n}VsEmptyXdpPaired`] = paired(chain(n).id, XDP);
        summary[`chain${n}VsIptablesPaired`] = paired(chain(n).id, ipt(n).id);
        summary[`iptables${n}VsPlainPaired`] = paired(ipt(n).id, PLAIN);
        summary[`cpu_chain${n}VsPlainPaired`] = capPaired(chain(n).id, PLAIN);
        summary[`cpu_chain${n}VsEmptyXdpPaired`] = capPaired(chain(n).id, XDP);
        summary[`cpu_chain${n}VsIptablesPaired`] = capPaired(chain(n).id, ipt(n).id);
        summary[`cpu_iptables${n}VsPlainPaired`] = capPaired(ipt(n).id, PLAIN);
        summary[`chainx${n}VsPlainPaired`] = paired(chainx(n).id, PLAIN);
        summary[`chainx${n}VsIptablesPaired`] = paired(chainx(n).id, ipt(n).id);
        summary[`cpu_chainx${n}VsPlainPaired`] = capPaired(chainx(n).id, PLAIN);
        summary[`cpu_chainx${n}VsXdpFwdPaired`] = capPaired(chainx(n).id, XREF);
        summary[`cpu_chainx${n}VsIptablesPaired`] = capPaired(chainx(n).id, ipt(n).id);
      }
      summary.cpu_xdpFwdVsPlainPaired = capPaired(XREF, PLAIN);
      summary.cpu_xdpFwdR1VsXdpFwdPaired = capPaired('plain XDP forwarding + ip rule, R1', XREF);
      const RULES = 'ip rule + table only, nothing marks';
      summary.cpu_policyRoutesOnlyVsPlainPaired = capPaired(RULES, PLAIN);
      summary.cpu_plainR1VsPlainPaired = capPaired('plain forwarding, R1 (had fib rules)', PLAIN);
      summary.cpu_chain1000VsPolicyRoutesOnlyPaired = capPaired(chain(1000).id, RULES);
      summary.cpu_iptables1VsPolicyRoutesOnlyPaired = capPaired(ipt(1).id, RULES);
      summary.plainPps = Math.round(med(PLAIN));
      summary.plainNsPerPacket = median(results[PLAIN].map((x) => x.nsPerPacket));
      summary.goal = 'chain1000VsPlain >= 0.9; chain1000VsIptables >= 1.5 (with forward: xdp, chainx1000VsPlain / chainx1000VsIptables)';
    } finally {
      unpin();
      for (const c of closers.reverse()) {
        try {
          await c();
        } catch {
          /* closing what is left */
        }
      }
      await lab.close();
      rmSync(tmp, { recursive: true, force: true });
    }
    return { rows, summary };
  },
};
