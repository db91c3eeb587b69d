/**
 * The metrics bpfkit exposes to Prometheus: one definition per metric (name, help, type,
 * labels) and, per kind of module, the reader that turns its stats() into samples.
 *
 * Naming follows the Prometheus conventions: `bpfkit_<module>_<what>_<unit>`, base units
 * (bytes), counters end in `_total`, labels in snake_case. Network modules carry the
 * labels `interface` and `netns`; what a counter is split by is a label (`verdict`,
 * `reason`, `rule_id`, `vni`, `protocol`, `stage`), never part of the name.
 *
 * Only types are imported from the modules: this file is bundled into `bpfkit/metrics`,
 * which must not carry a second copy of the library.
 */
import type { AclFirewall } from '../modules/acl/firewall.js';
import type { Decapsulator } from '../modules/decap/decapsulator.js';
import type { ServiceChainer } from '../modules/chain/chainer.js';
import type { XdpPipeline } from '../modules/pipeline.js';
import type { PacketTracer } from '../modules/tracer/tracer.js';
import type { RingBuffer } from '../core/ringbuf.js';

export type MetricKind = 'acl' | 'decap' | 'chain' | 'pipeline' | 'tracer' | 'ringbuf';

export interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  /** Labels beyond the module's own (interface/netns, or ring). */
  labels: readonly string[];
}

/** Labels every series of a module of this kind carries. */
export const BASE_LABELS: Record<MetricKind, readonly string[]> = {
  acl: ['interface', 'netns'],
  decap: ['interface', 'netns'],
  chain: ['interface', 'netns'],
  pipeline: ['interface', 'netns'],
  tracer: [],
  ringbuf: ['ring'],
};

const c = (name: string, help: string, labels: readonly string[] = []): MetricDef => ({ name, help, type: 'counter', labels });
const g = (name: string, help: string, labels: readonly string[] = []): MetricDef => ({ name, help, type: 'gauge', labels });

export const METRICS: Record<MetricKind, readonly MetricDef[]> = {
  acl: [
    c(
      'bpfkit_acl_packets_total',
      'Packets judged by the ACL firewall, by verdict (allow, log, deny) and what decided it (rule, default, non_ip, no_rules). Malformed packets are counted apart.',
      ['verdict', 'reason'],
    ),
    c('bpfkit_acl_bytes_total', 'Bytes of the packets in bpfkit_acl_packets_total.', ['verdict', 'reason']),
    c('bpfkit_acl_rule_packets_total', 'Packets matched by each rule in force.', ['rule_id', 'action']),
    c('bpfkit_acl_rule_bytes_total', 'Bytes matched by each rule in force.', ['rule_id', 'action']),
    c('bpfkit_acl_malformed_packets_total', 'Packets with a broken IPv4/IPv6 header (the default action in force applied).'),
    c('bpfkit_acl_no_l4_packets_total', 'Packets classified without their L4 header (also in bpfkit_acl_packets_total), by reason (unparsed, fragment).', [
      'reason',
    ]),
    c('bpfkit_acl_classified_packets_total', 'IP packets classified, by method (cache: per-CPU verdict cache; walk: rule trees).', ['method']),
    c('bpfkit_acl_events_emitted_total', 'Policy events written to the ring by the program.'),
    c('bpfkit_acl_events_suppressed_total', 'Packets not reported because their flow and rule had an event within the interval.'),
    c('bpfkit_acl_events_lost_total', 'Policy events that did not fit in the ring (consumer too slow or not reading).'),
    c('bpfkit_acl_events_delivered_total', 'Policy events this process read from the ring.'),
    g('bpfkit_acl_rules', 'Rules in force.'),
    g('bpfkit_acl_rule_set_generation', 'Generation of the rule set in force (one more per atomic swap).'),
  ],
  decap: [
    c('bpfkit_decap_packets_total', 'Tunnel packets decapsulated, by tunnel protocol and outer IP family.', ['protocol', 'family']),
    c('bpfkit_decap_bytes_total', 'Inner-frame bytes of the decapsulated packets.', ['protocol', 'family']),
    c('bpfkit_decap_vni_packets_total', 'Decapsulated packets per (protocol, VNI).', ['protocol', 'vni']),
    c('bpfkit_decap_vni_bytes_total', 'Inner-frame bytes per (protocol, VNI).', ['protocol', 'vni']),
    c('bpfkit_decap_vni_overflow_packets_total', 'Decapsulated packets of VNIs that found the per-VNI table full.'),
    c('bpfkit_decap_metadata_failed_packets_total', 'Decapsulated packets whose metadata could not be written.'),
    c('bpfkit_decap_passed_packets_total', 'Tunnel packets passed to the stack unchanged, by reason.', ['reason']),
    c('bpfkit_decap_passed_bytes_total', 'Bytes of the tunnel packets passed unchanged, by reason.', ['reason']),
  ],
  chain: [
    c('bpfkit_chain_packets_total', 'Packets the service chainer saw.'),
    c('bpfkit_chain_bytes_total', 'Bytes of the packets the service chainer saw.'),
    c('bpfkit_chain_rule_packets_total', 'Packets matched by each chain rule of the set in force (zero again after an update).', ['rule_id', 'action']),
    c('bpfkit_chain_service_packets_total', 'Packets marked for each service.', ['service']),
    c('bpfkit_chain_service_bytes_total', 'Bytes marked for each service.', ['service']),
    c('bpfkit_chain_upstream_packets_total', 'Packets marked for the upstream path.'),
    c('bpfkit_chain_unclassified_packets_total', 'Packets no chain rule matched (passed unmarked).'),
    c('bpfkit_chain_metadata_failed_packets_total', 'Matched packets whose metadata could not be written.'),
  ],
  pipeline: [
    c('bpfkit_pipeline_packets_total', 'Packets into the pipeline root program.'),
    c('bpfkit_pipeline_empty_packets_total', 'Packets passed with no stage to run.'),
    c('bpfkit_pipeline_stage_packets_total', 'Packets whose walk ended at a stage, by XDP verdict.', ['stage', 'verdict']),
  ],
  tracer: [
    c('bpfkit_tracer_seen_events_total', 'Events the tracing programs saw at their points (matching or not).'),
    c('bpfkit_tracer_matched_events_total', 'Events that matched the filter.'),
    c('bpfkit_tracer_delivered_events_total', 'Events delivered to JavaScript.'),
    c('bpfkit_tracer_lost_events_total', 'Events lost because the ring buffer was full.'),
    c('bpfkit_tracer_packets_total', 'Packet timelines finished.'),
    g('bpfkit_tracer_open_timelines', 'Packet timelines still open.'),
  ],
  ringbuf: [
    c('bpfkit_ringbuf_records_total', 'Records read from the ring and decoded.'),
    c('bpfkit_ringbuf_read_bytes_total', 'Payload bytes of the records read.'),
    c('bpfkit_ringbuf_batches_total', 'Batches read from the ring.'),
    c('bpfkit_ringbuf_malformed_records_total', 'Records shorter than the codec (skipped).'),
    c('bpfkit_ringbuf_lost_records_total', 'Records the BPF program could not reserve because the ring was full.'),
    g('bpfkit_ringbuf_pending_bytes', 'Bytes in the kernel ring not yet read.'),
    g('bpfkit_ringbuf_size_bytes', 'Ring size.'),
  ],
};

/** One value of one metric. */
export interface Sample {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

type Add = (metric: string, value: number | bigint, labels?: Record<string, string>) => void;

/** What a reader is given: the module, and `add` bound to its base labels. */
export type Reader<M> = (module: M, add: Add) => void | Promise<void>;

const acl: Reader<AclFirewall> = async (fw, add) => {
  const s = await fw.stats();
  const by = new Map<string, { packets: number; bytes: number }>();
  for (const r of s.rules) {
    add('bpfkit_acl_rule_packets_total', r.packets, { rule_id: r.id, action: r.action });
    add('bpfkit_acl_rule_bytes_total', r.bytes, { rule_id: r.id, action: r.action });
    const t = by.get(r.action) ?? { packets: 0, bytes: 0 };
    t.packets += r.packets;
    t.bytes += r.bytes;
    by.set(r.action, t);
  }
  const judged = (verdict: string, reason: string, x: { packets: number; bytes: number }) => {
    add('bpfkit_acl_packets_total', x.packets, { verdict, reason });
    add('bpfkit_acl_bytes_total', x.bytes, { verdict, reason });
  };
  for (const v of ['allow', 'log', 'deny']) judged(v, 'rule', by.get(v) ?? { packets: 0, bytes: 0 });
  judged('allow', 'default', s.default.allowed);
  judged('deny', 'default', s.default.denied);
  judged('allow', 'non_ip', s.nonIp);
  judged('allow', 'no_rules', s.noRules);
  add('bpfkit_acl_malformed_packets_total', s.malformed.packets);
  add('bpfkit_acl_no_l4_packets_total', s.unparsed.packets, { reason: 'unparsed' });
  add('bpfkit_acl_no_l4_packets_total', s.fragments.packets, { reason: 'fragment' });
  add('bpfkit_acl_classified_packets_total', s.classified.cached, { method: 'cache' });
  add('bpfkit_acl_classified_packets_total', s.classified.walked, { method: 'walk' });
  add('bpfkit_acl_events_emitted_total', s.events.emitted);
  add('bpfkit_acl_events_suppressed_total', s.events.suppressed);
  add('bpfkit_acl_events_lost_total', s.events.lost);
  add('bpfkit_acl_events_delivered_total', s.events.delivered);
  add('bpfkit_acl_rules', s.rules.length);
  add('bpfkit_acl_rule_set_generation', s.generation);
};

const decap: Reader<Decapsulator> = (d, add) => {
  const s = d.stats();
  for (const [protocol, p] of Object.entries(s.protocols)) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      add('bpfkit_decap_packets_total', p[family].packets, { protocol, family });
      add('bpfkit_decap_bytes_total', p[family].bytes, { protocol, family });
    }
  }
  for (const v of s.vnis) {
    add('bpfkit_decap_vni_packets_total', v.packets, { protocol: v.protocol, vni: String(v.vni) });
    add('bpfkit_decap_vni_bytes_total', v.bytes, { protocol: v.protocol, vni: String(v.vni) });
  }
  add('bpfkit_decap_vni_overflow_packets_total', s.vniOverflow.packets);
  add('bpfkit_decap_metadata_failed_packets_total', s.metadataFailed.packets);
  for (const [reason, x] of Object.entries(s.passed)) {
    add('bpfkit_decap_passed_packets_total', x.packets, { reason });
    add('bpfkit_decap_passed_bytes_total', x.bytes, { reason });
  }
};

const chain: Reader<ServiceChainer> = (ch, add) => {
  const s = ch.stats();
  add('bpfkit_chain_packets_total', s.packets.packets);
  add('bpfkit_chain_bytes_total', s.packets.bytes);
  for (const r of s.rules) add('bpfkit_chain_rule_packets_total', r.packets, { rule_id: r.id, action: r.action });
  for (const sv of s.services) {
    add('bpfkit_chain_service_packets_total', sv.packets, { service: sv.name });
    add('bpfkit_chain_service_bytes_total', sv.bytes, { service: sv.name });
  }
  add('bpfkit_chain_upstream_packets_total', s.upstream.packets);
  add('bpfkit_chain_unclassified_packets_total', s.unclassified.packets);
  add('bpfkit_chain_metadata_failed_packets_total', s.metadataFailed.packets);
};

const pipeline: Reader<XdpPipeline> = (p, add) => {
  const s = p.stats();
  add('bpfkit_pipeline_packets_total', s.packets);
  add('bpfkit_pipeline_empty_packets_total', s.empty);
  for (const st of s.stages) {
    for (const [verdict, n] of Object.entries(st.ended)) add('bpfkit_pipeline_stage_packets_total', n, { stage: st.name, verdict });
  }
};

const tracer: Reader<PacketTracer> = (t, add) => {
  const s = t.stats();
  add('bpfkit_tracer_seen_events_total', s.seen);
  add('bpfkit_tracer_matched_events_total', s.matched);
  add('bpfkit_tracer_delivered_events_total', s.events);
  if (s.lost !== null) add('bpfkit_tracer_lost_events_total', s.lost);
  add('bpfkit_tracer_packets_total', s.packets);
  add('bpfkit_tracer_open_timelines', s.open);
};

const ringbuf: Reader<RingBuffer<unknown>> = (rb, add) => {
  const s = rb.stats();
  add('bpfkit_ringbuf_records_total', s.records);
  add('bpfkit_ringbuf_read_bytes_total', s.bytes);
  add('bpfkit_ringbuf_batches_total', s.batches);
  add('bpfkit_ringbuf_malformed_records_total', s.malformed);
  if (s.lost !== null) add('bpfkit_ringbuf_lost_records_total', s.lost);
  add('bpfkit_ringbuf_pending_bytes', s.pendingBytes);
  add('bpfkit_ringbuf_size_bytes', s.size);
};

export const READERS = { acl, decap, chain, pipeline, tracer, ringbuf } as const;
