/**
 * BpfkitMetrics: every module's counters in a prom-client Registry, read at scrape time.
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { BpfkitMetrics } from 'bpfkit/metrics';
 * const metrics = new BpfkitMetrics({ registry: new Registry() });
 * metrics.addFirewall(fw, { interface: 'eth0' }).addDecapsulator(decap, { interface: 'eth0' });
 * http.createServer(async (_q, r) => r.end(await metrics.registry.metrics()));
 * ```
 *
 * No timers: each metric has a collect() callback, and one scrape reads each module's
 * stats() once (the callbacks of a scrape share one snapshot).
 */
import { basename } from 'node:path';
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import { BpfkitError } from '../core/errors.js';
import type { AclFirewall } from '../modules/acl/firewall.js';
import type { Decapsulator } from '../modules/decap/decapsulator.js';
import type { ServiceChainer } from '../modules/chain/chainer.js';
import type { XdpPipeline } from '../modules/pipeline.js';
import type { PacketTracer } from '../modules/tracer/tracer.js';
import type { RingBuffer } from '../core/ringbuf.js';
import { BASE_LABELS, METRICS, READERS, type MetricKind, type Reader, type Sample } from './catalog.js';

/** Labels of a network module's series. Defaults: the interface indexes, and the namespace's name where the module knows it. */
export interface MetricLabels {
  /** Interface name(s), e.g. 'eth0' (default: the ifindex, or several joined by ','). */
  interface?: string;
  /** Network namespace name (default: the module's namespace basename, or '' for the caller's). */
  netns?: string;
}

export interface BpfkitMetricsOptions {
  /** Where the metrics are registered (default: prom-client's global registry). */
  registry?: Registry;
}

interface Entry {
  kind: MetricKind;
  module: object;
  labels: Record<string, string>;
}

type Closable = { closed?: boolean };

/** The prom-client collector of bpfkit's modules (see the module comment and docs/metrics.md). */
export class BpfkitMetrics {
  readonly registry: Registry;
  readonly #entries = new Map<object, Entry>();
  readonly #registered = new Set<MetricKind>();
  #snapshot: Promise<Map<string, Sample[]>> | undefined;

  constructor(opts: BpfkitMetricsOptions = {}) {
    if (typeof opts !== 'object' || opts === null) invalidArgument('opts', 'must be an object');
    const r = opts.registry ?? defaultRegistry;
    if (typeof r !== 'object' || r === null || typeof r.registerMetric !== 'function') invalidArgument('registry', 'must be a prom-client Registry');
    this.registry = r;
  }

  /** An AclFirewall: verdicts, per-rule counters, anomalies, event delivery and loss. */
  addFirewall(fw: AclFirewall, labels: MetricLabels = {}): this {
    const st = fw?.stage;
    return this.#add('acl', fw, 'fw', labels, {
      interface: ifaces(st ? [st.pipeline.ifindex] : fw?.ifindexes),
      netns: nsName(st?.pipeline.netns),
    });
  }

  /** A Decapsulator: decapsulated packets per protocol/family and per VNI, passed packets by reason. */
  addDecapsulator(d: Decapsulator, labels: MetricLabels = {}): this {
    const st = d?.stage;
    return this.#add('decap', d, 'decap', labels, {
      interface: ifaces(st ? [st.pipeline.ifindex] : [d?.link?.ifindex]),
      netns: nsName(st ? st.pipeline.netns : d?.link?.netns),
    });
  }

  /** A ServiceChainer: packets per rule and per service, upstream, unclassified. */
  addChainer(ch: ServiceChainer, labels: MetricLabels = {}): this {
    const st = ch?.stage;
    return this.#add('chain', ch, 'chain', labels, {
      interface: ifaces(st ? [st.pipeline.ifindex] : ch?.links?.map((l) => l.ifindex)),
      netns: nsName(ch?.netns),
    });
  }

  /** An XdpPipeline: packets in, and where each walk ended (stage, verdict). */
  addPipeline(p: XdpPipeline, labels: MetricLabels = {}): this {
    return this.#add('pipeline', p, 'pipeline', labels, { interface: ifaces([p?.ifindex]), netns: nsName(p?.netns) });
  }

  /** A PacketTracer: events seen, matched, delivered and lost; timelines. Several tracers add up. */
  addTracer(t: PacketTracer): this {
    return this.#add('tracer', t, 'tracer', {}, {});
  }

  /** A RingBuffer of your own: records read, bytes, batches, malformed, lost (the BPF side's count). */
  addRingBuffer(rb: RingBuffer<unknown>, labels: { ring?: string } = {}): this {
    return this.#add('ringbuf', rb, 'rb', labels, { ring: rb?.name ?? '' });
  }

  /** Stops exporting a module (its series vanish at the next scrape). */
  remove(module: object): boolean {
    return this.#entries.delete(module);
  }

  #add(kind: MetricKind, module: object, field: string, labelsGiven: object, defaults: Record<string, string>): this {
    if (typeof module !== 'object' || module === null || typeof (module as { stats?: unknown }).stats !== 'function') {
      invalidArgument(field, `must be a bpfkit module with stats(), got ${module === null ? 'null' : typeof module}`);
    }
    if (typeof labelsGiven !== 'object' || labelsGiven === null) invalidArgument('labels', 'must be an object');
    const given = labelsGiven as Record<string, unknown>;
    const labels: Record<string, string> = {};
    for (const name of BASE_LABELS[kind]) {
      const v = given[name] ?? defaults[name] ?? '';
      if (typeof v !== 'string') invalidArgument(`labels.${name}`, `must be a string, got ${typeof v}`);
      labels[name] = v;
    }
    for (const k of Object.keys(given))
      if (!BASE_LABELS[kind].includes(k)) invalidArgument(`labels.${k}`, `not a label of this module (labels: ${BASE_LABELS[kind].join(', ') || 'none'})`);
    this.#register(kind);
    this.#entries.set(module, { kind, module, labels });
    return this;
  }

  /** Creates the kind's metrics in the registry the first time a module of that kind is added. */
  #register(kind: MetricKind): void {
    if (this.#registered.has(kind)) return;
    const snapshot = () => this.#read();
    for (const def of METRICS[kind]) {
      const labelNames = [...BASE_LABELS[kind], ...def.labels];
      const name = def.name;
      if (def.type === 'counter') {
        new Counter({
          name,
          help: def.help,
          labelNames,
          registers: [this.registry],
          async collect() {
            const snap = await snapshot();
            this.reset();
            for (const s of snap.get(name) ?? []) this.inc(s.labels, s.value);
          },
        });
      } else {
        new Gauge({
          name,
          help: def.help,
          labelNames,
          registers: [this.registry],
          async collect() {
            const snap = await snapshot();
            this.reset();
            for (const s of snap.get(name) ?? []) this.set(s.labels, s.value);
          },
        });
      }
    }
    this.#registered.add(kind);
  }

  /**
   * One read of every module per scrape: prom-client calls every metric's collect() in
   * the same tick, so they all get the promise the first one started.
   */
  #read(): Promise<Map<string, Sample[]>> {
    if (this.#snapshot) return this.#snapshot;
    const p = this.#readAll();
    this.#snapshot = p;
    const clear = () => {
      if (this.#snapshot === p) this.#snapshot = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  async #readAll(): Promise<Map<string, Sample[]>> {
    const out = new Map<string, Sample[]>();
    for (const e of [...this.#entries.values()]) {
      // a closed module has nothing left to count: it leaves the export (ERR_CLOSED below too)
      if ((e.module as Closable).closed === true) {
        this.#entries.delete(e.module);
        continue;
      }
      const staged = new Map<string, Sample[]>();
      // one labels object per sample, shared with prom-client (never changed afterwards)
      const base = e.labels;
      const addTo = (metric: string, value: number | bigint, extra?: Record<string, string>) => {
        let list = staged.get(metric);
        if (!list) staged.set(metric, (list = []));
        list.push({ metric, labels: extra ? { ...base, ...extra } : base, value: Number(value) });
      };
      try {
        await (READERS[e.kind] as Reader<object>)(e.module, addTo);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ERR_CLOSED') throw err;
        this.#entries.delete(e.module);
        continue;
      }
      for (const [m, list] of staged) {
        const all = out.get(m);
        if (!all) out.set(m, list);
        else for (const x of list) all.push(x); // (no spread: a list can have 400,000 samples)
      }
    }
    return out;
  }
}

/** ERR_INVALID_ARGUMENT naming the field (BpfkitError is the main entry's: see tsup.config.ts). */
function invalidArgument(field: string, message: string): never {
  throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function ifaces(list: readonly (number | undefined)[] | undefined): string {
  return (list ?? []).filter((x): x is number => typeof x === 'number').join(',');
}

function nsName(path: string | undefined): string {
  return path ? basename(path) : '';
}
