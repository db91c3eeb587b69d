/**
 * Demo section "pipeline": one interface, one XdpPipeline, two stages: the Decapsulator
 * then the AclFirewall. Host A sends UDP through a kernel VXLAN device (VNI 100) to two
 * inner ports; B has no tunnel device. The firewall denies inner port 7001, so it sees the
 * decapsulated packet and drops it, while port 7002 walks on to B's stack. Every second:
 * where the walks ended per stage (`pipe.stats()`) and the firewall's deny count. Half-way
 * the stages are reordered live (acl first): the firewall now sees only the outer VXLAN
 * header, its deny count stops and port 7001 reaches B. Ends by checking that every packet
 * into the root ended exactly once, at one stage of one chain (the change was atomic).
 */
import { XdpPipeline, type PipelineStats } from '../modules/pipeline.js';
import { Decapsulator } from '../modules/decap/index.js';
import { AclFirewall } from '../modules/acl/index.js';
import type { XdpAction } from '../core/programs/program.js';
import type { UdpSink } from '../lab/index.js';
import type { DemoSection } from './context.js';
import { sleep } from './context.js';

const WORLD_MAC = '02:00:00:00:bb:02';
const RATE = 200; // datagrams per second per port
const DENIED = 7001;
const ALLOWED = 7002;
const INNER = '198.19.40.2';

/** 'decap: pass 12 drop 3' from one stage's ended counters, non-zero verdicts only. */
function ended(s: PipelineStats['stages'][number], before: Record<XdpAction, bigint> | undefined): string {
  const parts = Object.entries(s.ended)
    .map(([v, n]) => [v, n - (before?.[v as XdpAction] ?? 0n)] as const)
    .filter(([, n]) => n > 0n)
    .map(([v, n]) => `${v} +${n}`);
  return `[${s.position}] ${s.name}: ${parts.length ? parts.join(' ') : 'no walk ended here'}`;
}

export const pipelineSection: DemoSection = {
  name: 'pipeline',
  title: 'pipeline: Decapsulator -> AclFirewall as XDP stages on one interface, live reorder',
  async run({ lab, seconds, print, signal }) {
    const a = await lab.host('a');
    const b = await lab.host('b');
    await lab.link(a, b, { aAddrs: ['198.18.40.1/24'], bAddrs: ['198.18.40.2/24'] });
    await a.batch([
      'link add vx100 type vxlan id 100 local 198.18.40.1 remote 198.18.40.2 dstport 4789 dev eth0',
      'link set vx100 addrgenmode none',
      'addr add 198.19.40.1/24 dev vx100',
      'link set vx100 up',
      `neigh add ${INNER} lladdr ${WORLD_MAC} dev vx100 nud permanent`,
    ]);
    await b.addAddr('lo', `${INNER}/32`);
    await a.ping('198.18.40.2', { count: 1 });

    const pipe = await XdpPipeline.attach('eth0', { netns: b.netns });
    const sinks: UdpSink[] = [];
    let decap: Decapsulator | undefined;
    let fw: AclFirewall | undefined;
    try {
      decap = await Decapsulator.attach(pipe, { vnis: [100] });
      fw = await AclFirewall.attach(pipe, { rules: [{ id: 'no-7001', action: 'deny', proto: 'udp', dstPort: DENIED }] });
      print(
        `B:eth0 runs an XdpPipeline (root prog id ${pipe.program.info.id}, ${pipe.link?.mode} XDP), stages ${JSON.stringify(pipe.stages)}; ACL rule no-7001 denies inner udp/${DENIED}`,
      );
      print(`A: kernel vxlan device vx100 (VNI 100); ${RATE} datagrams/s to ${INNER}:${DENIED} and :${ALLOWED} through it`);
      for (const port of [DENIED, ALLOWED]) sinks.push(await b.udpSink(INNER, port));
      const denies = async () => (await fw!.stats()).rules.find((r) => r.id === 'no-7001')?.packets ?? 0;
      let last = pipe.stats();
      let lastDeny = 0;
      for (let s = 1; s <= seconds && !signal.aborted; s++) {
        // one second of traffic per step, so an abort never waits for more than that
        await Promise.all([DENIED, ALLOWED].map((port) => a.sendUdp(INNER, port, { count: RATE, intervalMs: 1000 / RATE })));
        const st = pipe.stats();
        const deny = await denies();
        print(
          `  t=${s}s  root +${st.packets - last.packets} | ${st.stages.map((x) => ended(x, last.stages[x.position]?.ended)).join(' | ')} | firewall denied ${deny} (+${deny - lastDeny}) | B received :${DENIED} ${sinks[0]!.received()}, :${ALLOWED} ${sinks[1]!.received()}`,
        );
        last = st;
        lastDeny = deny;
        if (s === Math.ceil(seconds / 2)) {
          await pipe.reorder(['acl', 'decap']);
          print(
            `  reorder: stages now ${JSON.stringify(pipe.stages)} (one atomic flip): the firewall sees only the outer VXLAN header, udp/${DENIED} gets through (stats count per position, so the next line mixes the two chains)`,
          );
        }
      }
      await sleep(200);
      const st = pipe.stats();
      const walks = st.stages.reduce((n, x) => n + Object.values(x.ended).reduce((m, v) => m + v, 0n), st.empty);
      print(
        `root saw ${st.packets} packets; walks ended: ${walks} (${st.packets === walks ? 'each packet exactly once: no walk mixed the two chains' : 'MISMATCH'})`,
      );
      print(
        `firewall denied ${await denies()} packets in all; B received :${DENIED} ${sinks[0]!.received()} (only after the reorder), :${ALLOWED} ${sinks[1]!.received()}`,
      );
      await pipe.remove('acl');
      print(`remove('acl'): stages now ${JSON.stringify(pipe.stages)}; closing the modules and the pipeline`);
    } finally {
      await Promise.all(sinks.map((k) => k.close()));
      fw?.close();
      decap?.close();
      pipe.close();
    }
  },
};
