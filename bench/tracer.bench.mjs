// PacketTracer overhead: forwarded packets/s through a router host with no tracer, with the
// tracer loaded and a filter that matches nothing (a host filter; a pcap-filter expression),
// and with no filter (every event of every packet); and event delivery: events/s Node
// receives vs a C libbpf consumer of the same ring, same producer, same run.
//
// Topology (a Lab of its own): generator G -> router R -> sink S. G sends live frames
// (XdpProgram.generate with the re-stamping XDP_TX program test/bpf/decap_gen.bpf.c) of
// 128-byte IPv4/UDP, 198.18.64.1 -> 198.19.0.10, to R's MAC; R forwards them (ip_forward=1)
// to S, where an XDP program counts and drops them. The tracer's programs are global: they
// run at every point of every packet, here in R's forwarding path (receive, FIB lookup,
// queue, transmit) and wherever else packets go.
//
// Receiver isolation (DESIGN: live benchmarks on veth): R's ingress runs threaded NAPI
// pinned to CPU 1, so the router's whole forwarding path, and the tracer's programs on it,
// are alone there; this process (generator, and the Node consumer of the ring), the C
// consumer and S's NAPI share CPU 0.
//
// Scenarios, alternating within each round (order reversed every other round):
//   tracer off                          the reference
//   tracer, host filter, no match       filter { host: 198.18.99.99 }: every point reads the
//                                       packet's headers and rejects it
//   tracer, pcap filter, no match       filter { pcap: 'tcp and dst port 80' }: the expression
//                                       runs (cBPF interpreter) at receive and queue
//   tracer, every packet, Node 'event'  no filter: every event goes to the ring; Node decodes
//                                       each into a TraceEvent for an 'event' listener (the
//                                       goal's measure)
//   ... Node 'packet'                   the same with a 'packet' listener: timelines assembled
//   ... Node, no listener (counted)     nobody listens: records are counted, not decoded
//   tracer, every packet, C             the same programs and filter, the ring consumed by
//                                       bench/c/tracer_drain.c (libbpf ring_buffer__poll)
// Rate = frames R forwarded (its egress veth's tx packets + tx dropped) / generation time;
// R's NAPI thread's CPU time per packet it received (/proc/PID/schedstat) is the steadier
// measure on a shared machine. Medians over rounds with min..max, and medians of per-round
// ratios ("paired"). Delivery, both consumers timed alike: events consumed / time from the
// generation's start to the delivery of the last batch (C: the return of the poll that
// read it; Node: the 5 ms sample that saw the count change last), and lost (ring full, the
// events_lost counter): delivered + lost = produced. Also each consumer's CPU time per
// event (Node: its main thread; C: the process), which does not depend on who else runs.
// The C handler reads every numeric field of the record, as Node's events do.
// Goals: forwarding with a non-matching filter >= 0.95 of tracer off; Node delivery >= 0.6
// of the C consumer's.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, PacketTracer, u32, u64 } from '../dist/index.js';
import { Lab } from '../dist/lab.js';
import { buildC, median, pinProcess, root } from './lib.mjs';
import { udpFrame128 } from './lib/frames.mjs';
import { cpuNsByPid, napiThreads } from './lib/napi.mjs';
import { DST_IP, GEN_CPU, pathMacs, ROUTER_CPU, routerPath } from './lib/router.mjs';

/** CPU time of this process's main thread (the Node consumer), ns. */
const mainThreadCpuNs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const MACS = pathMacs(0xcc);
const SRC_IP = '198.18.64.1';
const RING = 1 << 24;
const NODE = "tracer, every packet, Node 'event' listener";
const NODE_PACKET = "tracer, every packet, Node 'packet' listener";
const NODE_COUNT = 'tracer, every packet, Node, no listener (counted)';

/** The tracer's programs and ring as PacketTracer loads them with no filter, the ring pinned for the C consumer. */
async function rawTracer(pin) {
  const obj = await BpfObject.openBuiltin('tracer', { globals: { filter: Buffer.alloc(64) }, maps: { events: { maxEntries: RING, pinPath: pin } } }).load();
  const links = [];
  for (const p of obj.programs) {
    const prog = obj.tracingProgram(p.name);
    links.push(prog.attach());
    prog.close();
  }
  const lostMap = obj.perCpuMap('events_lost', { key: u32, value: u64 });
  const lost = () => Number((lostMap.get(0) ?? []).reduce((a, b) => a + b, 0n));
  return {
    lost,
    close: () => {
      for (const l of links) l.close();
      lostMap.close();
      obj.close();
      rmSync(pin, { force: true });
    },
  };
}

export default {
  name: 'tracer',
  description:
    'PacketTracer: forwarded pkt/s with the tracer off / on with a non-matching host or pcap filter / on for every packet; events/s delivered to Node vs a C consumer',
  async run({ quick, log }) {
    const rows = [];
    const summary = {};
    const drainBin = buildC('tracer_drain');
    const lab = await Lab.create({ name: 'bench-tracer' });
    const tag = lab.netnsName('x').split('-')[1].slice(0, 4);
    const pin = `/sys/fs/bpf/bpfkit-bench-tracer-${process.pid}`;
    let unpin = () => {};
    const closers = [];
    try {
      const g = await lab.host('g');
      const { r, names, arrived, pinNapi } = await routerPath(lab, g, { tag, macs: MACS }, closers);
      const pinned = await pinNapi();
      log(
        `threaded NAPI: ${pinned.router} thread(s) for R's ingress on CPU ${ROUTER_CPU}, ${pinned.sink} for S on CPU ${GEN_CPU}; generator and consumers on CPU ${GEN_CPU}`,
      );
      unpin = pinProcess(GEN_CPU);
      const f = udpFrame128(MACS.g, MACS.rIn, SRC_IP, DST_IP);
      const genObj = await BpfObject.load(join(root, 'build/test-bpf/decap_gen.bpf.o'), { globals: { tmpl: f } });
      closers.push(() => genObj.close());
      const linkStats = async (host, ifname) => (await host.ipJson(['-s', 'link', 'show', 'dev', ifname]))[0].stats64;

      const budget = quick ? 0.4 : 0.6;
      // listen: 'event' (a TraceEvent object per event), 'packet' (timelines too), or none
      // (count only: records are not decoded)
      const tracerScenario = (id, kind, filter, listen) => ({
        id,
        kind,
        setup: async () => {
          const t = await PacketTracer.start({ ...(filter ? { filter } : {}), ringBytes: RING, idleMs: 200 });
          let got = 0;
          if (listen === 'event') t.on('event', () => got++);
          if (listen === 'packet') t.on('packet', (p) => (got += p.events.length));
          return { delivered: () => t.stats().events, lost: () => t.stats().lost ?? 0, listened: () => got, done: () => t.stop() };
        },
      });
      const scenarios = [
        { id: 'tracer off', kind: 'off', setup: async () => ({ done: async () => {} }) },
        {
          // the floor: the same programs at the same points, each returning at once (the
          // kernel's tracepoint + trampoline + call cost; what no filter can go below)
          id: "tracer's points, empty programs",
          kind: 'floor',
          setup: async () => {
            const obj = await BpfObject.openBuiltin('tracer', { globals: { filter: Buffer.alloc(64), empty_programs: 1 } }).load();
            const links = obj.programs.map((p) => {
              const prog = obj.tracingProgram(p.name);
              const l = prog.attach();
              prog.close();
              return l;
            });
            return { done: async () => (links.forEach((l) => l.close()), obj.close()) };
          },
        },
        tracerScenario('tracer, host filter, no match', 'nomatch', { host: '198.18.99.99' }),
        tracerScenario('tracer, pcap filter, no match', 'nomatch-pcap', { pcap: 'tcp and dst port 80' }),
        tracerScenario(NODE, 'all-node', undefined, 'event'),
        tracerScenario(NODE_PACKET, 'all-node-packet', undefined, 'packet'),
        tracerScenario(NODE_COUNT, 'all-node-count'),
        {
          id: 'tracer, every packet, C consumer',
          kind: 'all-c',
          setup: async () => {
            const raw = await rawTracer(pin);
            const child = spawn('taskset', ['-c', String(GEN_CPU), drainBin, pin, String(budget + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            const exited = new Promise((res) => child.on('exit', res));
            await sleep(100);
            return {
              lost: raw.lost,
              result: async () => {
                await exited;
                return JSON.parse(out.trim().split('\n').pop());
              },
              done: async () => {
                if (child.exitCode === null) child.kill('SIGKILL');
                await exited;
                raw.close();
              },
            };
          },
        },
      ];
      const rounds = quick ? 1 : 7;
      const chunk = 1_000_000;
      const results = Object.fromEntries(scenarios.map((x) => [x.id, []]));
      for (let round = 0; round < rounds; round++) {
        for (const sc of round % 2 ? [...scenarios].reverse() : scenarios) {
          const st = await sc.setup();
          const res = {};
          try {
            const p = await pinNapi();
            if (!p.router || !p.sink) log(`warning: no NAPI thread to pin (router ${p.router}, sink ${p.sink})`);
            const a0 = arrived();
            const e0 = await linkStats(r, names.rOut);
            const i0 = await linkStats(r, names.rIn);
            const napiPids = napiThreads(names.rIn);
            const c0 = cpuNsByPid(napiPids);
            const lost0 = st.lost?.() ?? 0;
            const gen = genObj.xdpProgram('xdp_stamp_tx');
            const cpu0 = mainThreadCpuNs();
            const t0 = process.hrtime.bigint();
            let secs = 0;
            for (let k = 0; k < 1000 && secs < budget; k++) {
              await gen.generate(f, { iface: names.gOut, netns: g.netns, count: chunk, batchSize: 64 });
              secs = Number(process.hrtime.bigint() - t0) / 1e9;
            }
            gen.close();
            const c1 = cpuNsByPid(napiThreads(names.rIn));
            const e1 = await linkStats(r, names.rOut);
            const i1 = await linkStats(r, names.rIn);
            const forwarded = e1.tx.packets - e0.tx.packets + (e1.tx.dropped - e0.tx.dropped);
            Object.assign(res, {
              secs,
              forwarded,
              pps: forwarded / secs,
              arrived: arrived() - a0,
              nsPerPacket: napiPids.reduce((a, q) => a + ((c1[q] ?? NaN) - c0[q]), 0) / (i1.rx.packets - i0.rx.packets),
            });
            if (st.delivered) {
              // Node: the delivered count sampled every 5 ms until it has not changed for
              // 200 ms (bounded); the last change's sample is when the last batch was
              // delivered (at most ~5 ms late)
              let last = st.delivered();
              let lastAt = process.hrtime.bigint();
              for (let k = 0; k < 4000; k++) {
                await sleep(5);
                const n = st.delivered();
                const at = process.hrtime.bigint();
                if (n !== last) {
                  last = n;
                  lastAt = at;
                } else if (Number(at - lastAt) > 200e6) break;
              }
              res.delivered = last;
              if (st.listened && st.listened() > last) throw new Error(`listener saw ${st.listened()} events, stats() counted ${last}`);
              res.deliverSecs = Number(lastAt - t0) / 1e9;
              res.lost = st.lost() - lost0;
              // the consumer's CPU: this process's main thread (the generator runs on libuv's pool)
              res.consumerCpuNs = mainThreadCpuNs() - cpu0;
            } else if (st.result) {
              const c = await st.result();
              res.delivered = c.consumed;
              // from the generation's start to its last record (the same clock: CLOCK_MONOTONIC)
              res.deliverSecs = c.lastAt - Number(t0) / 1e9;
              res.lost = st.lost() - lost0;
              res.consumerCpuNs = c.cpuSeconds * 1e9;
            }
            if (res.delivered !== undefined) {
              // a consumer whose last record came before the generation started (foreign events only) delivered none of it
              res.eventsPerSec = res.deliverSecs > 0 ? res.delivered / res.deliverSecs : 0;
              res.cpuNsPerEvent = res.delivered ? res.consumerCpuNs / res.delivered : undefined;
            }
          } finally {
            await st.done();
          }
          results[sc.id].push(res);
          log(
            `round ${round + 1} ${sc.id}: ${fmt(res.pps)}/s forwarded (${res.forwarded} in ${res.secs.toFixed(2)} s; R's NAPI ${res.nsPerPacket.toFixed(0)} ns/packet)` +
              (res.delivered !== undefined
                ? `; events delivered ${res.delivered} (${fmt(res.eventsPerSec)}/s), lost ${res.lost}` +
                  (res.cpuNsPerEvent !== undefined ? `; consumer ${res.cpuNsPerEvent.toFixed(0)} ns CPU/event` : '')
                : ''),
          );
        }
      }
      const OFF = scenarios[0].id;
      const med = (id, k = 'pps') => median(results[id].map((x) => x[k]));
      const paired = (x, y) => median(results[x].map((v, i) => v.pps / results[y][i].pps));
      const cpuPaired = (x, y) => median(results[x].map((v, i) => results[y][i].nsPerPacket / v.nsPerPacket));
      const spread = (id, k) => {
        const xs = results[id].map((x) => x[k]).filter((x) => x !== undefined);
        return xs.length ? `${fmt(Math.min(...xs))}..${fmt(Math.max(...xs))}` : '';
      };
      for (const sc of scenarios) {
        const d = results[sc.id][0].delivered !== undefined;
        rows.push({
          test: sc.id,
          rounds,
          'forwarded/s': Math.round(med(sc.id)),
          'min..max': spread(sc.id, 'pps'),
          'vs off paired': paired(sc.id, OFF),
          'NAPI ns/pkt': med(sc.id, 'nsPerPacket'),
          'ns/pkt min..max': spread(sc.id, 'nsPerPacket'),
          'CPU: vs off paired': cpuPaired(sc.id, OFF),
          'events/s': d ? Math.round(med(sc.id, 'eventsPerSec')) : undefined,
          'events/s min..max': d ? spread(sc.id, 'eventsPerSec') : undefined,
          'lost/round': d ? Math.round(med(sc.id, 'lost')) : undefined,
          'consumer CPU ns/event': d ? med(sc.id, 'cpuNsPerEvent') : undefined,
        });
      }
      const C = 'tracer, every packet, C consumer';
      summary.hostNoMatchVsOffPaired = paired('tracer, host filter, no match', OFF);
      summary.pcapNoMatchVsOffPaired = paired('tracer, pcap filter, no match', OFF);
      summary.everyPacketVsOffPaired = paired(NODE, OFF);
      summary.cpu_emptyProgramsVsOffPaired = cpuPaired("tracer's points, empty programs", OFF);
      summary.cpu_hostNoMatchVsOffPaired = cpuPaired('tracer, host filter, no match', OFF);
      summary.cpu_pcapNoMatchVsOffPaired = cpuPaired('tracer, pcap filter, no match', OFF);
      summary.cpu_everyPacketVsOffPaired = cpuPaired(NODE, OFF);
      summary.nodeVsCDeliveryPaired = median(results[NODE].map((v, i) => v.eventsPerSec / results[C][i].eventsPerSec));
      summary.nodePacketVsCDeliveryPaired = median(results[NODE_PACKET].map((v, i) => v.eventsPerSec / results[C][i].eventsPerSec));
      summary.nodeCountVsCDeliveryPaired = median(results[NODE_COUNT].map((v, i) => v.eventsPerSec / results[C][i].eventsPerSec));
      // the same per consumer-CPU time (C's ns/event over Node's): independent of what else shares the CPU
      const cpuVsC = (id) => median(results[id].map((v, i) => results[C][i].cpuNsPerEvent / v.cpuNsPerEvent));
      summary.nodeVsCCpuPerEventPaired = cpuVsC(NODE);
      summary.nodePacketVsCCpuPerEventPaired = cpuVsC(NODE_PACKET);
      summary.nodeCountVsCCpuPerEventPaired = cpuVsC(NODE_COUNT);
      summary.nodeEventsPerSec = Math.round(med(NODE, 'eventsPerSec'));
      summary.cEventsPerSec = Math.round(med(C, 'eventsPerSec'));
      summary.goal = 'noMatchVsOff >= 0.95; nodeVsCDelivery >= 0.6';
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
      rmSync(pin, { force: true });
    }
    return { rows, summary };
  },
};
