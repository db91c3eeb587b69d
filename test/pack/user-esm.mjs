// What a user writes after `npm install bpfkit` (ESM). Run by test/pack/install.test.ts
// inside the clean root, in a namespace the test made: attach bpfkit's shipped counter
// to IFACE, send COUNT UDP datagrams from SRC to DST (routed out through IFACE's peer),
// read the per-CPU counters map, print one JSON line.
import { readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { BpfObject, struct, u32, u64 } from 'bpfkit';

const { IFACE, SRC, DST } = process.env;
const COUNT = Number(process.env.COUNT ?? 5);
const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

const obj = await BpfObject.openBuiltin('counter').load();
const prog = obj.xdpProgram('xdp_count');
const counters = obj.perCpuMap('counters', { key: u32, value: counter });
const link = prog.attach(IFACE);
try {
  const sock = dgram.createSocket('udp4');
  await new Promise((resolve) => sock.bind(0, SRC, resolve));
  for (let i = 0; i < COUNT; i++) await new Promise((resolve, reject) => sock.send(Buffer.from('bpfkit'), 9, DST, (e) => (e ? reject(e) : resolve())));
  sock.close();
  const packets = () => (counters.get(0) ?? []).reduce((s, c) => s + c.packets, 0n);
  for (let i = 0; i < 100 && packets() < BigInt(COUNT); i++) await new Promise((r) => setTimeout(r, 20));
  const addon = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('.node'))?.split(/\s+/).pop();
  console.log(JSON.stringify({ module: 'esm', mode: link.mode, packets: Number(packets()), addon }));
} finally {
  link.close();
  counters.close();
  prog.close();
  obj.close();
}
