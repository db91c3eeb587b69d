// PacketTracer: where did my packet go? Host a sends three UDP datagrams to host b through
// router r. One is dropped by an iptables rule on r, one reaches b where nothing listens,
// one is delivered to b's socket. The tracer (loaded at run time, filtered in the kernel to
// b's address) prints each packet's path through the namespaces, with the kernel's drop
// reason, then unloads.
//
//   a ==== r ==== b        r: iptables -A FORWARD -p udp --dport 7003 -j DROP
//
//   node examples/trace-drops.mjs          (as root)
import { statSync } from 'node:fs';
import { PacketTracer } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const B = '198.18.41.2';
const PORTS = { blocked: 7003, closed: 7002, open: 7001 };

const lab = await Lab.create({ name: 'example-trace' });
let trace;
try {
  const a = await lab.host('a');
  const r = await lab.host('r', { forwarding: true });
  const b = await lab.host('b');
  await lab.link(a, r, { aAddrs: ['198.18.40.1/24'], bAddrs: ['198.18.40.2/24'] });
  await lab.link(r, b, { aAddrs: ['198.18.41.1/24'], bAddrs: [`${B}/24`] });
  await a.addRoute('198.18.41.0/24 via 198.18.40.2');
  await b.addRoute('198.18.40.0/24 via 198.18.41.1');
  await r.exec(['iptables', '-A', 'FORWARD', '-p', 'udp', '--dport', String(PORTS.blocked), '-j', 'DROP']);
  await a.ping(B, { count: 1, timeoutMs: 3000 }); // neighbours resolved before tracing
  const sink = await b.udpSink(B, PORTS.open);
  // namespace inodes, as the tracer reports them, to host names
  const hostOf = new Map([a, r, b].map((h) => [statSync(h.netnsPath).ino, h.name]));

  trace = await PacketTracer.start({ filter: { host: B, proto: 'udp' }, idleMs: 300 });
  for (const w of trace.warnings) console.log(`note: ${w}`);
  const paths = new Map(); // destination port -> its timeline
  trace.on('packet', (p) => {
    const dport = p.events.find((e) => e.dport)?.dport;
    if (dport) paths.set(dport, p);
  });

  for (const port of Object.values(PORTS)) await a.sendUdp(B, port, { count: 1 });
  for (let i = 0; i < 100 && paths.size < 3; i++) await new Promise((res) => setTimeout(res, 20));
  await trace.stop(); // unloads the tracer: nothing of it stays in the kernel
  const st = trace.stats();

  const verdicts = {};
  for (const [name, port] of Object.entries(PORTS)) {
    const p = paths.get(port);
    if (!p) {
      console.log(`udp/${port} (${name}): no timeline`);
      continue;
    }
    verdicts[name] = p.verdict === 'dropped' ? p.dropReason : p.verdict;
    console.log(
      `udp/${port} (${name}): ${p.verdict}${p.dropReason ? `, reason ${p.dropReason}` : ''}, ${p.events.length} events in ${(p.durationNs / 1000).toFixed(1)} us`,
    );
    for (const e of p.events)
      console.log(`  +${(e.dtNs / 1000).toFixed(1).padStart(6)} us  ${(hostOf.get(e.netns) ?? '?').padEnd(2)} ${(e.ifname || '-').padEnd(5)} ${e.point}`);
  }
  console.log(`b's socket on udp/${PORTS.open} received ${sink.received()} datagram(s)`);
  console.log(`tracer: ${st.matched} events matched the filter of ${st.seen} seen machine-wide, ${st.lost} lost`);
  await sink.close();

  if (
    verdicts.blocked !== 'NETFILTER_DROP' ||
    verdicts.closed !== 'NO_SOCKET' ||
    verdicts.open === undefined ||
    verdicts.open === 'NETFILTER_DROP' ||
    sink.received() !== 1
  ) {
    throw new Error(`unexpected paths: ${JSON.stringify(verdicts)}`);
  }
  console.log('ok: each datagram traced to where it ended, with the kernel drop reason');
} finally {
  await trace?.stop();
  await lab.close();
}
