// G -> R -> S: the forwarding path the chain and tracer benches measure. G (no addresses)
// sends frames to R's MAC; R forwards (ip_forward=1) 198.19.0.0/24 to S through a static
// neighbour entry (S drops everything at XDP, ARP too); an XDP program on S counts and drops
// what arrives. R's ingress runs GRO (a veth without XDP takes XDP_TX'd frames only when it
// runs NAPI) and threaded NAPI pinned to ROUTER_CPU; S's NAPI shares GEN_CPU with the
// generator.
import { BpfObject, struct, u32, u64 } from '../../dist/index.js';
import { threadNapi } from './napi.mjs';

export const GEN_CPU = 0;
export const ROUTER_CPU = 1;
export const SINK_IP = '198.18.1.2';
export const DST_IP = '198.19.0.10';
const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });

/** MACs of a bench's path: G's, R's ingress and S's, from one prefix byte (e.g. 0xcb). */
export function pathMacs(prefix) {
  const p = prefix.toString(16).padStart(2, '0');
  return { g: `02:00:00:00:${p}:01`, rIn: `02:00:00:00:${p}:02`, s: `02:00:00:00:${p}:04` };
}

/**
 * Hosts R and S (named `r${id}`, `s${id}`) behind G, linked and routed as above. `tag` keeps
 * the veth names unique on the machine (their NAPI threads are found by name). Closers for
 * what it loads are pushed onto `closers`. Returns the hosts, the veth names, `arrived()`
 * (packets S counted) and `pinNapi()` (re-pin the NAPI threads: attaching XDP can recreate them).
 */
export async function routerPath(lab, g, { id = '', tag, macs }, closers) {
  const names = { gOut: `g${tag}${id}`, rIn: `r${tag}${id}i`, rOut: `r${tag}${id}o`, sIn: `s${tag}${id}` };
  const r = await lab.host(`r${id}`);
  const s = await lab.host(`s${id}`);
  await lab.link(g, r, { aName: names.gOut, bName: names.rIn, aMac: macs.g, bAddrs: ['198.18.0.2/24'], bMac: macs.rIn, gro: true });
  await lab.link(r, s, { aName: names.rOut, bName: names.sIn, aAddrs: ['198.18.1.1/24'], bAddrs: [`${SINK_IP}/24`], bMac: macs.s });
  await r.setGro(names.rIn, false);
  await r.setGro(names.rIn, true);
  await r.sysctl({ 'net.ipv4.ip_forward': 1 });
  await r.batch([`neigh replace ${SINK_IP} lladdr ${macs.s} dev ${names.rOut} nud permanent`, `route add 198.19.0.0/24 via ${SINK_IP}`]);
  const sinkObj = await BpfObject.openBuiltin('counter', { globals: { verdict: 1 } }).load();
  closers.push(() => sinkObj.close());
  const sinkLink = sinkObj.xdpProgram('xdp_count').attach(names.sIn, { netns: s.netns });
  closers.push(() => sinkLink.close());
  const sinkMap = sinkObj.perCpuMap('counters', { key: u32, value: counterCodec });
  const arrived = () => Number((sinkMap.get(0) ?? []).reduce((a, x) => a + x.packets, 0n));
  const pinNapi = async () => ({ router: await threadNapi(r, names.rIn, ROUTER_CPU), sink: await threadNapi(s, names.sIn, GEN_CPU) });
  return { id, r, s, names, arrived, pinNapi };
}
