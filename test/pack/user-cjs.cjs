// The same as user-esm.mjs, written as a CommonJS user would (require, no top-level await).
/* global require, process, console, Buffer, setTimeout */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS user's script, on purpose */
'use strict';
const { readFileSync } = require('node:fs');
const dgram = require('node:dgram');
const { BpfObject, struct, u32, u64 } = require('bpfkit');

const { IFACE, SRC, DST } = process.env;
const COUNT = Number(process.env.COUNT ?? 5);
const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const obj = await BpfObject.openBuiltin('counter').load();
  const prog = obj.xdpProgram('xdp_count');
  const counters = obj.perCpuMap('counters', { key: u32, value: counter });
  const link = prog.attach(IFACE);
  try {
    const sock = dgram.createSocket('udp4');
    await new Promise((resolve) => sock.bind(0, SRC, resolve));
    for (let i = 0; i < COUNT; i++) await new Promise((resolve, reject) => sock.send(Buffer.from('bpfkit'), 9, DST, (e) => (e ? reject(e) : resolve())));
    sock.close();
    const packets = () => (counters.get(0) || []).reduce((s, c) => s + c.packets, 0n);
    for (let i = 0; i < 100 && packets() < BigInt(COUNT); i++) await sleep(20);
    const addon = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('.node'));
    console.log(JSON.stringify({ module: 'cjs', mode: link.mode, packets: Number(packets()), addon: addon && addon.split(/\s+/).pop() }));
  } finally {
    link.close();
    counters.close();
    prog.close();
    obj.close();
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
