// Your own XDP program: load examples/xdp_counter.bpf.c (compiled by `npm run build:native`
// into build/examples/), attach it to one end of a veth pair in a namespace lab, send
// pings over IPv4 and IPv6, and read the per-CPU counters it kept per EtherType class.
//
//   node examples/xdp-counter.mjs          (as root, from a built checkout)
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BpfObject, struct, u32, u64 } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const objectPath = fileURLToPath(new URL('../build/examples/xdp_counter.bpf.o', import.meta.url));
if (!existsSync(objectPath)) {
  console.error(`${objectPath} is missing: run \`npm run build:native\` (or compile examples/xdp_counter.bpf.c with clang -target bpf)`);
  process.exit(1);
}

const SLOTS = ['ipv4', 'ipv6', 'other'];
const counter = struct('counter', { packets: u64, bytes: u64 }); // checked against the map's BTF

const lab = await Lab.create({ name: 'example-xdp-counter' });
const obj = await BpfObject.load(objectPath);
let link;
try {
  const a = await lab.host('a');
  const b = await lab.host('b');
  const { b: bEnd } = await lab.link(a, b, {
    aAddrs: ['198.18.0.1/24', '2001:db8::1/64'],
    bAddrs: ['198.18.0.2/24', '2001:db8::2/64'],
  });

  const prog = obj.xdpProgram('xdp_count_by_type');
  link = prog.attach(bEnd.ifname, { netns: b.netns, mode: 'native' });
  console.log(`attached ${prog.name} to ${b.name}:${bEnd.ifname} (${link.mode} XDP, program id ${prog.info.id})`);

  const v4 = await a.ping('198.18.0.2', { count: 5 });
  const v6 = await a.ping('2001:db8::2', { count: 3 });
  console.log(`a pinged b: IPv4 ${v4.received}/${v4.sent} replies, IPv6 ${v6.received}/${v6.sent} replies`);

  // one value per possible CPU: sum them
  const counts = obj.perCpuMap('counts', { key: u32, value: counter });
  const totals = {};
  for (const [slot, name] of SLOTS.entries()) {
    const perCpu = counts.get(slot) ?? [];
    totals[name] = perCpu.reduce((t, c) => ({ packets: t.packets + c.packets, bytes: t.bytes + c.bytes }), { packets: 0n, bytes: 0n });
    console.log(`${name.padEnd(5)} ${totals[name].packets} packets, ${totals[name].bytes} bytes`);
  }
  counts.close();

  // every echo request b answered went through the program first
  if (totals.ipv4.packets < BigInt(v4.received) || totals.ipv6.packets < BigInt(v6.received)) {
    throw new Error('the program counted fewer packets than b answered');
  }
  console.log('ok: every packet b received was counted');
} finally {
  link?.close(); // detaches the program
  obj.close();
  await lab.close(); // deletes the namespaces (also done by an exit hook if we crash)
}
