/**
 * bpfkit/metrics scraped like Prometheus would: real modules attached in a lab (an
 * XdpPipeline with decap -> acl -> chain stages on a veth, a PacketTracer, a RingBuffer of
 * a test object), real and test-run packets, then a scrape of a prom-client Registry.
 * Values are checked against each module's own stats(), and every name and label of the
 * exposition against Prometheus' naming rules.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  AclFirewall,
  BpfkitError,
  BpfObject,
  Decapsulator,
  PacketTracer,
  RingBuffer,
  ServiceChainer,
  XdpPipeline,
  struct,
  u32,
  u64,
  bytes,
} from '../../lib/index.js';
import { BpfkitMetrics, BPFKIT_METRICS } from '../../lib/metrics/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';
import { udpFrame } from '../helpers/packets.js';

let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let pipe: XdpPipeline;
let decap: Decapsulator;
let fw: AclFirewall;
let chain: ServiceChainer;
let tracer: PacketTracer;
let obj: BpfObject;
let rb: RingBuffer<{ seq: bigint }>;
let registry: Registry;
let metrics: BpfkitMetrics;

const SERVER_MAC = '02:00:00:00:00:02';
const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });

/** A VXLAN packet to the server (outer IPv4/UDP 4789, checksum 0) around an inner UDP frame. */
function vxlan(vni: number): Buffer {
  const inner = udpFrame({ src: '198.18.4.1', dst: '198.18.9.9', sport: 1000, dport: 7000 });
  const hdr = Buffer.alloc(8);
  hdr[0] = 0x08;
  hdr.writeUIntBE(vni, 4, 3);
  const f = udpFrame({ dstMac: SERVER_MAC, src: '198.18.0.1', dst: '198.18.0.2', sport: 40000, dport: 4789, payload: Buffer.concat([hdr, inner]) });
  f.writeUInt16BE(0, 14 + 20 + 6); // no UDP checksum (as VXLAN senders do)
  return f;
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'metrics' });
  client = await lab.host('client');
  server = await lab.host('server');
  link = await lab.link(client, server, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  pipe = await XdpPipeline.attach(link.b.ifname, { netns: server.netns });
  decap = await Decapsulator.attach(pipe, { interfaceMac: SERVER_MAC, rewriteMac: false, vnis: [100] });
  fw = await AclFirewall.attach(pipe, {
    maxRules: 16,
    events: false,
    rules: [
      { id: 'deny-6000', action: 'deny', proto: 'udp', dstPort: 6000 },
      { id: 'allow-7000', action: 'allow', proto: 'udp', dstPort: 7000 },
    ],
  });
  chain = await ServiceChainer.attach(pipe, {
    services: [{ name: 'fw', mark: 0x10, table: 110, nexthops: [{ via: '198.18.0.1' }] }],
    upstream: { mark: 0x20, table: 120, nexthops: [{ via: '198.18.0.1' }] },
    rules: [{ id: 'vni100', vni: 100, action: 'fw' }],
    rulePriority: 3000,
  });
  tracer = await PacketTracer.start({ filter: { host: '198.18.0.2', proto: 'udp', port: 7000 }, points: ['receive', 'drop'], idleMs: 200 });
  obj = await BpfObject.load(testObject('ringbuf_test'), { maps: { events: { maxEntries: 4096 } } });
  rb = obj.ringBuffer('events', rec64);

  registry = new Registry();
  metrics = new BpfkitMetrics({ registry })
    .addPipeline(pipe)
    .addDecapsulator(decap)
    .addFirewall(fw, { interface: link.b.ifname })
    .addChainer(chain)
    .addTracer(tracer)
    .addRingBuffer(rb, { ring: 'test_events' });

  // traffic: 50 real datagrams the firewall drops, 20 it lets through, 3 allowed VXLAN packets of VNI 100 and
  // 2 of VNI 200 (not allowed: passed), run through the whole pipeline; ring records
  // beyond what a 4 KiB ring holds while nobody reads
  await client.sendUdp('198.18.0.2', 6000, { count: 50 });
  await client.sendUdp('198.18.0.2', 7000, { count: 20 }); // allowed: the tracer sees them reach the stack
  for (let i = 0; i < 3; i++) expect((await pipe.testRun(vxlan(100))).action).toBe('pass');
  for (let i = 0; i < 2; i++) expect((await pipe.testRun(vxlan(200))).action).toBe('pass');
  await obj.xdpProgram('xdp_one_record').testRun(Buffer.alloc(64), { repeat: 200 });
  let read = 0;
  rb.on('data', () => read++);
  for (let i = 0; i < 100 && rb.stats().pendingBytes > 0; i++) await new Promise((r) => setTimeout(r, 20));
  expect(read).toBeGreaterThan(0);
}, 120_000);

afterAll(async () => {
  await tracer?.stop();
  rb?.close();
  obj?.close();
  await chain?.close();
  fw?.close();
  decap?.close();
  pipe?.close();
  await lab?.close();
});

type Json = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
function value(json: Json, name: string, labels: Record<string, string> = {}): number | undefined {
  const m = json.find((x) => x.name === name);
  const v = (m?.values ?? []).find((s) => Object.entries(labels).every(([k, want]) => String((s.labels as Record<string, unknown>)[k]) === want));
  return v?.value;
}

describe('bpfkit/metrics: a scrape with real modules attached', () => {
  it("values equal the modules' own stats()", async () => {
    const json = await registry.getMetricsAsJSON();
    const acl = await fw.stats();
    const deny = acl.rules.find((r) => r.id === 'deny-6000')!;
    expect(deny.packets).toBe(50);
    const fwLabels = { interface: link.b.ifname, netns: server.netns };
    expect(value(json, 'bpfkit_acl_rule_packets_total', { ...fwLabels, rule_id: 'deny-6000', action: 'deny' })).toBe(50);
    expect(value(json, 'bpfkit_acl_rule_bytes_total', { rule_id: 'deny-6000' })).toBe(deny.bytes);
    expect(value(json, 'bpfkit_acl_packets_total', { verdict: 'deny', reason: 'rule' })).toBe(50);
    expect(value(json, 'bpfkit_acl_rules', fwLabels)).toBe(2);
    expect(value(json, 'bpfkit_acl_rule_set_generation')).toBe(fw.generation);
    expect(value(json, 'bpfkit_acl_events_emitted_total')).toBe(acl.events.emitted);

    // the other modules' default labels: the pipeline's interface index and namespace
    const at = { interface: String(link.b.ifindex), netns: server.netns };
    const d = decap.stats();
    expect(d.vnis).toEqual([{ protocol: 'vxlan', vni: 100, packets: 3n, bytes: expect.any(BigInt) }]);
    expect(value(json, 'bpfkit_decap_vni_packets_total', { ...at, protocol: 'vxlan', vni: '100' })).toBe(3);
    expect(value(json, 'bpfkit_decap_vni_bytes_total', { vni: '100' })).toBe(Number(d.vnis[0]!.bytes));
    expect(value(json, 'bpfkit_decap_packets_total', { protocol: 'vxlan', family: 'ipv4' })).toBe(3);
    expect(value(json, 'bpfkit_decap_passed_packets_total', { reason: 'vniNotAllowed' })).toBe(Number(d.passed.vniNotAllowed.packets));
    expect(d.passed.vniNotAllowed.packets).toBe(2n);

    const ch = chain.stats();
    expect(ch.services).toEqual([{ name: 'fw', packets: 3n, bytes: expect.any(BigInt) }]);
    expect(value(json, 'bpfkit_chain_service_packets_total', { ...at, service: 'fw' })).toBe(3);
    expect(value(json, 'bpfkit_chain_rule_packets_total', { rule_id: 'vni100', action: 'fw' })).toBe(3);

    const ps = pipe.stats();
    const aclStage = ps.stages.find((s) => s.name === 'acl')!;
    expect(aclStage.ended.drop).toBe(50n);
    expect(value(json, 'bpfkit_pipeline_stage_packets_total', { ...at, stage: 'acl', verdict: 'drop' })).toBe(50);

    const r = rb.stats();
    expect(r.lost).toBeGreaterThan(0); // 200 records into a ring that holds ~56
    expect(value(json, 'bpfkit_ringbuf_lost_records_total', { ring: 'test_events' })).toBe(r.lost);
    expect(value(json, 'bpfkit_ringbuf_records_total', { ring: 'test_events' })).toBe(r.records);
    expect(r.records + r.lost!).toBe(200);
    expect(value(json, 'bpfkit_ringbuf_size_bytes', { ring: 'test_events' })).toBe(4096);

    // the tracer counts every packet of the machine it sees: bracket it between two reads
    const before = tracer.stats();
    const scraped = await registry.getMetricsAsJSON();
    const after = tracer.stats();
    expect(before.matched).toBeGreaterThanOrEqual(20);
    const matched = value(scraped, 'bpfkit_tracer_matched_events_total')!;
    expect(matched).toBeGreaterThanOrEqual(before.matched);
    expect(matched).toBeLessThanOrEqual(after.matched);
  });

  it('every name, type, unit and label follows the Prometheus conventions', async () => {
    const text = await registry.metrics();
    const help = new Map<string, string>();
    const type = new Map<string, string>();
    const series = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let m: RegExpMatchArray | null;
      if ((m = line.match(/^# HELP (\S+) (.+)$/))) help.set(m[1]!, m[2]!);
      else if ((m = line.match(/^# TYPE (\S+) (counter|gauge)$/))) type.set(m[1]!, m[2]!);
      else if ((m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/))) {
        const [, name, labels = '', v] = m;
        expect(Number.isFinite(Number(v)) && Number(v) >= 0, line).toBe(true);
        for (const pair of labels.match(/[^,=]+="(?:[^"\\]|\\.)*"/g) ?? []) {
          const key = pair.slice(0, pair.indexOf('='));
          expect(key, line).toMatch(/^[a-z][a-z0-9_]*$/); // Prometheus: [a-zA-Z_][a-zA-Z0-9_]*, __ reserved; ours snake_case
          expect(['job', 'instance', 'le', 'quantile'], `${key} is reserved`).not.toContain(key);
        }
        series.set(name!, (series.get(name!) ?? 0) + 1);
      } else {
        throw new Error(`not exposition format: ${line}`);
      }
    }
    const defined = Object.values(BPFKIT_METRICS).flat();
    for (const def of defined) {
      const n = def.name;
      expect(help.get(n), n).toBeTruthy();
      expect(type.get(n), n).toBe(def.type);
      expect(series.get(n) ?? 0, `${n} has series`).toBeGreaterThan(0);
      expect(n).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/); // the Prometheus name rule
      expect(n).toMatch(/^bpfkit_[a-z0-9]+(_[a-z0-9]+)+$/); // namespace prefix, snake_case, no colons (recording rules)
      if (def.type === 'counter') expect(n).toMatch(/_total$/);
      else expect(n).not.toMatch(/_total$/);
      // base units only, as the name's suffix (before _total)
      expect(n).not.toMatch(/_(milli|micro|nano|kilo|mega|giga)?(seconds|ms|us|ns|kb|mb|gb|kib|mib|bits|percent)(_|$)/);
      if (/bytes/.test(n)) expect(n).toMatch(/_bytes(_total)?$/);
    }
    // and nothing but the defined metrics
    expect([...type.keys()].sort()).toEqual(defined.map((d) => d.name).sort());
  });

  it('a closed module leaves the export; bad input is a BpfkitError naming the field', async () => {
    const probe = await BpfObject.load(testObject('ringbuf_test'));
    const other = probe.ringBuffer('other', u64);
    let json: Json;
    try {
      metrics.addRingBuffer(other, { ring: 'closing' });
      json = await registry.getMetricsAsJSON();
      expect(value(json, 'bpfkit_ringbuf_size_bytes', { ring: 'closing' })).toBe(16 * 1024);
    } finally {
      other.close();
      probe.close();
    }
    json = await registry.getMetricsAsJSON();
    expect(value(json, 'bpfkit_ringbuf_size_bytes', { ring: 'closing' })).toBeUndefined();
    expect(value(json, 'bpfkit_ringbuf_size_bytes', { ring: 'test_events' })).toBe(4096);

    const bad: [() => unknown, string][] = [
      [() => metrics.addFirewall(null as unknown as AclFirewall), 'fw'],
      [() => metrics.addDecapsulator(decap, { interface: 3 as unknown as string }), 'labels.interface'],
      [() => metrics.addPipeline(pipe, { vni: '1' } as never), 'labels.vni'],
      [() => new BpfkitMetrics({ registry: {} as Registry }), 'registry'],
    ];
    for (const [fn, field] of bad) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err, field).toBeInstanceOf(BpfkitError);
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field });
    }
  });
});
