// The isolated-receiver topology for live XDP benchmarks on a veth pair (DESIGN: "a live
// benchmark on a veth pair measures the receiver alone only when ..."):
//
//   host A (generator)                          host B (receiver under test)
//   live-frames XDP_TX program  --- veth --->   threaded NAPI kthread, pinned to RX_CPU
//   this process pinned to GEN_CPU              runs the receiver's XDP program
//
// BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs on the calling thread, so pinning
// every thread of this process (the libuv pool included) pins the generator; the frames it
// transmits are queued to B's veth and consumed by B's NAPI thread alone on the other CPU.
// The rate is what B's NAPI consumed (`ethtool -S` rx_queue_0_xdp_packets) per second of
// wall time, so a receiver slower than the generator is measured as itself, not diluted
// by the sender's cost. Alongside: the CPU time B's NAPI thread ran per packet
// (/proc/PID/schedstat), which also holds when the receiver is not saturated, and
// what the generator offered.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pinProcess, settle } from '../lib.mjs';
import { napiThreads } from './napi.mjs';

export { napiThreads };

export const GEN_CPU = 0;
export const RX_CPU = 1;

const cpuNs = (pids) =>
  pids.reduce((s, p) => {
    try {
      return s + Number(readFileSync(`/proc/${p}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      return s;
    }
  }, 0);

/**
 * A veth link from host `a` to host `b` whose `b` side is an isolated receiver: threaded
 * NAPI, its kthread(s) pinned to RX_CPU; and this process pinned to GEN_CPU until
 * `close()`. The interfaces get names unique on the machine (NAPI threads are found by
 * name, and every namespace may have an eth0). `linkOpts` go to `lab.link` (addresses,
 * MACs); GRO is on so the veth runs NAPI with or without XDP. Returns the link and the
 * helpers the scenarios use.
 */
export async function isolatedReceiver(lab, a, b, { genCpu = GEN_CPU, rxCpu = RX_CPU, ...linkOpts } = {}) {
  const tag = lab.netnsName('x').split('-')[1].slice(0, 6);
  const link = await lab.link(a, b, { aName: `ig${tag}`, bName: `ir${tag}`, ...linkOpts, gro: true });
  const iface = link.b.ifname;
  const nsenter = (args) => execFileSync('nsenter', [`--net=${b.netnsPath}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // `ip netns exec` mounts the namespace's own sysfs (nsenter --net would write the
  // host's /sys/class/net)
  const setThreaded = () => execFileSync('ip', ['netns', 'exec', b.netns, 'sh', '-c', `echo 1 > /sys/class/net/${iface}/threaded`], { stdio: 'ignore' });
  /** Threaded NAPI on the receiver, its thread(s) pinned (again: XDP attach/detach may re-create them). */
  const pin = () => {
    setThreaded();
    const pids = napiThreads(iface);
    if (pids.length === 0) throw new Error(`no NAPI thread for ${iface}: does the veth run NAPI (GRO on or XDP attached)?`);
    for (const pid of pids) execFileSync('taskset', ['-p', '-c', String(rxCpu), pid], { stdio: 'ignore' });
    return pids;
  };
  /** rx_queue_0_xdp_packets of the receiving veth: frames its XDP program ran on. */
  const rxXdpPackets = () => {
    const m = /rx_queue_0_xdp_packets:\s+(\d+)/.exec(nsenter(['ethtool', '-S', iface]));
    if (!m) throw new Error(`ethtool -S ${iface}: no rx_queue_0_xdp_packets`);
    return Number(m[1]);
  };
  pin();
  const unpin = pinProcess(genCpu);

  /**
   * Floods `frame` through `gen` (a live-frames XDP_TX program on A's side) for about
   * `seconds` after a warm-up, and returns what B's NAPI consumed: pps (per second of wall
   * time), ns/packet (1e9 / pps), NAPI CPU ns per packet, offered frames/s, and the
   * receiver's own count over the same window when `read` is given (a cross-check).
   */
  const measure = async ({ gen, frame, seconds = 1, warmup = 200_000, chunk = 1_000_000, read }) => {
    // what the scenario's setup left running must not take the generator's CPU
    await settle();
    const pids = pin();
    const send = (count) => gen.generate(frame, { iface: link.a.ifname, netns: a.netns, count, batchSize: 64 });
    await send(warmup);
    const c0 = rxXdpPackets();
    const r0 = read?.();
    const s0 = cpuNs(pids);
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let secs = 0;
    // bounded: at least one chunk, at most 100
    for (let i = 0; i < 100 && secs < seconds; i++) {
      await send(chunk);
      sent += chunk;
      secs = Number(process.hrtime.bigint() - t0) / 1e9;
    }
    // read at once: what the ring still holds (at most a few hundred frames) is left out
    const c1 = rxXdpPackets();
    const s1 = cpuNs(pids);
    const r1 = read?.();
    const consumed = c1 - c0;
    const pps = consumed / secs;
    return {
      secs,
      sent,
      consumed,
      pps,
      nsPerPkt: 1e9 / pps,
      offered: sent / secs,
      napiNsPerPkt: consumed > 0 ? (s1 - s0) / consumed : NaN,
      counted: read ? Number(r1) - Number(r0) : undefined,
    };
  };
  return { link, iface, nsenter, pin, rxXdpPackets, measure, close: () => unpin() };
}
