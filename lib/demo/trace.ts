/**
 * Demo section "trace": a PacketTracer filtered on one flow (UDP to B's port 6400) while
 * host A sends through router R to host B. The first datagram is forwarded across R and
 * delivered to a socket on B; then an iptables rule in R's FORWARD chain drops the flow and
 * a second datagram dies in R. Both timelines are printed: namespace, interface, point,
 * time since the packet's first event, and how it ended (with the kernel's drop reason).
 * The tracer hooks tracepoints machine-wide; the filter, evaluated in the kernel, keeps
 * everything but this flow out.
 */
import { statSync } from 'node:fs';
import { PacketTracer, type TracePacket, type TimelineEvent } from '../modules/tracer/index.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

const A = '198.18.50.1';
const B = '198.18.51.2';
const PORT = 6400;

function describeEvent(e: TimelineEvent, host: (ino: number) => string): string {
  const extra: string[] = [];
  if (e.fib) extra.push(`table ${e.fib.table} ${e.fib.result}${e.fib.gateway ? ` via ${e.fib.gateway}` : ''}`);
  if (e.rc !== undefined) extra.push(`rc ${e.rc}`);
  if (e.dropReason) extra.push(`reason ${e.dropReason}`);
  if (e.mark) extra.push(`mark 0x${e.mark.toString(16)}`);
  return `  ${`+${(e.dtNs / 1000).toFixed(1)}`.padStart(8)} us  ${host(e.netns).padEnd(3)} ${(e.ifname || '-').padEnd(6)} ${e.point.padEnd(10)} ${extra.join(', ')}`.trimEnd();
}

export const traceSection: DemoSection = {
  name: 'trace',
  title: 'trace: PacketTracer follows one flow across namespaces, a forwarded and a dropped packet',
  async run({ lab, seconds, print, signal }) {
    const [a, r, b] = await Promise.all([lab.host('a'), lab.host('r', { forwarding: true }), lab.host('b')]);
    await lab.link(a, r, { aAddrs: [`${A}/24`], bAddrs: ['198.18.50.2/24'] });
    await lab.link(r, b, { aAddrs: ['198.18.51.1/24'], bAddrs: [`${B}/24`] });
    await a.addRoute('198.18.51.0/24 via 198.18.50.2');
    await b.addRoute('198.18.50.0/24 via 198.18.51.1');
    await a.ping(B, { count: 1 }); // neighbours resolved, so the traced packets go straight through
    const names = new Map([a, r, b].map((h) => [statSync(h.netnsPath).ino, h.name]));
    const host = (ino: number) => names.get(ino) ?? '?';
    const inB = statSync(b.netnsPath).ino;
    const sink = await b.udpSink(B, PORT);

    const trace = await PacketTracer.start({ filter: { host: B, proto: 'udp', port: PORT }, idleMs: 300 });
    const packets: TracePacket[] = [];
    trace.on('packet', (p) => {
      if (p.namespaces.some((n) => names.has(n))) packets.push(p);
    });
    const waitFor = async (done: () => boolean) => {
      for (let i = 0; i < Math.max(2, seconds) * 20 && !done() && !signal.aborted; i++) await sleep(50, signal);
    };
    try {
      print(`PacketTracer on ${trace.points.length} points (${trace.points.join(', ')}), filter { host: ${B}, proto: udp, port: ${PORT} }`);
      for (const w of trace.warnings) print(`  note: ${w}`);
      await a.sendUdp(B, PORT, { count: 1, payload: 'forward me' });
      await waitFor(() => packets.some((p) => p.namespaces.includes(inB)));
      await r.exec(['iptables', '-A', 'FORWARD', '-p', 'udp', '--dport', String(PORT), '-j', 'DROP']);
      print(
        `A sent one datagram to ${B}:${PORT} (B's socket received ${await sink.waitFor(1, 2000)}); then R got 'iptables -A FORWARD -p udp --dport ${PORT} -j DROP' and A sent another`,
      );
      await a.sendUdp(B, PORT, { count: 1, payload: 'drop me' });
      await waitFor(() => packets.some((p) => p.verdict === 'dropped'));
    } finally {
      await trace.stop();
      await sink.close();
    }
    packets.sort((x, y) => (x.start < y.start ? -1 : 1));
    packets.forEach((p, i) => {
      const how =
        p.verdict === 'dropped'
          ? `dropped, reason ${p.dropReason}`
          : p.verdict === 'unfinished'
            ? 'unfinished (a datagram delivered to a socket is freed without a tracepoint)'
            : p.verdict;
      print(`packet ${i + 1}: ${p.events.length} events through ${p.namespaces.map(host).join(' -> ')} in ${(p.durationNs / 1000).toFixed(1)} us; ${how}`);
      for (const e of p.events) if (names.has(e.netns)) print(describeEvent(e, host));
    });
    const st = trace.stats();
    print(`tracer: ${st.seen} events seen at the points machine-wide, ${st.matched} matched the filter, ${st.packets} timelines, ${st.lost ?? 0} lost`);
  },
};
