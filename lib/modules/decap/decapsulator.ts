/**
 * Decapsulator: strips VXLAN (RFC 7348) and Geneve (RFC 8926) outer headers at XDP
 * (bpf/decap.bpf.c), so the inner frame climbs the stack once, as if it had arrived on
 * the interface, instead of twice (outer packet up to the tunnel device, inner packet
 * injected again).
 *
 * ```ts
 * const decap = await Decapsulator.attach('eth0', { protocols: ['vxlan', 'geneve'], vnis: [100, 200] });
 * await decap.update({ vnis: [100, 200, 300] });   // atomic
 * console.log(decap.stats().vnis);
 * decap.close();
 * ```
 *
 * Atomic updates: the core's DoubleBuffer (lib/core/maps/swap.ts, bpf/include/bpfkit_swap.h).
 * The program reads its `struct decap_config` through the swap slot `config[0]`, which
 * points at one of two copies (config_a / config_b). An update writes the idle copy and
 * the next generation of the VNI allowlist (its keys carry the copy's index), then flips
 * the slot; the flip resolves after the kernel's grace period, so afterwards the old
 * generation is unreachable and is deleted. A packet sees the whole old or the whole new
 * settings.
 */
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { u32, u8 } from '../../core/codecs.js';
import { CpuCounters } from '../../core/maps/cpu-counters.js';
import { possibleCpus, type BpfMap } from '../../core/maps/map.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { bpfObjectPath } from '../../core/paths.js';
import { checkInterface, netnsPath } from '../../core/net/netns.js';
import { BpfObject } from '../../core/object.js';
import { DoubleBuffer } from '../../core/maps/swap.js';
import type { TestRunOptions, TestRunResult, XdpLink, XdpProgram } from '../../core/programs/program.js';
import { XdpPipeline } from '../pipeline.js';
import {
  GEN_SHIFT,
  CNT_DECAP,
  CNT_VNI_OVERFLOW,
  CNT_META_FAILED,
  CNT_PASS,
  CNT_SLOTS,
  PROTO_INDEX,
  configCodec,
  type ConfigValue,
  VNI_PROTO_SHIFT,
  counterCodec,
  OPTION_KEYS,
  LOAD_KEYS,
  ATTACH_KEYS,
  checkKeys,
  checkLimits,
  resolveSettings,
  DEFAULT_SETTINGS,
  configValue,
  interfaceMac,
} from './config.js';
import {
  DECAP_PASS_REASONS,
  TUNNEL_PROTOCOLS,
  type DecapPassReason,
  type DecapVniStats,
  type TunnelProtocol,
  type DecapAttachOptions,
  type DecapCounter,
  type DecapLimits,
  type DecapLoadOptions,
  type DecapOptions,
  type DecapSettings,
  type DecapStats,
} from './types.js';

/** Entries of each CPU's VNI cache (VNI_CACHE_SIZE in bpf/decap.bpf.c). */
const VNI_CACHE_SIZE = 256;

// ---- the Decapsulator --------------------------------------------------------------------

interface Parts {
  obj: BpfObject;
  prog: XdpProgram;
  outer: BpfMap<number, number>;
  inner: [BpfMap<number, ConfigValue>, BpfMap<number, ConfigValue>];
  /** config[0] -> config_a | config_b; the copy's index is also the VNI allowlist generation. */
  swap: DoubleBuffer<BpfMap<number, ConfigValue>>;
  vniAllow: BpfMap<number, number>;
  /** (proto << 24 | vni) -> slot in vniCounters; slots are assigned by the program. */
  vniSlot: BpfMap<number, number>;
  /** vni_counters and counters: plain arrays of possible CPUs x slots, read through their mappings. */
  vniCounterMap: BpfMap<number, DecapCounter>;
  counterMap: BpfMap<number, DecapCounter>;
  vniCounters: CpuCounters;
  counters: CpuCounters;
}

const zero = (): DecapCounter => ({ packets: 0n, bytes: 0n });
const sum = (cs: readonly DecapCounter[]): DecapCounter => cs.reduce((a, c) => ({ packets: a.packets + c.packets, bytes: a.bytes + c.bytes }), zero());

/**
 * Strips VXLAN and Geneve (IPv4 or IPv6 outer headers) at XDP, so the inner packet climbs the
 * stack once and the host needs no tunnel device; counts per protocol, per VNI and per reason
 * for passing a packet unchanged. {@link Decapsulator.attach} to an interface (or an
 * XdpPipeline), {@link Decapsulator.load} for test runs. See docs/decap.md.
 */
export class Decapsulator {
  #p: Parts | undefined;
  #link: XdpLink | undefined;
  #settings: DecapSettings;
  /** Map capacities in force (fixed at load). */
  readonly limits: Readonly<Required<DecapLimits>>;
  #iface: { iface: string | number; ns: string | undefined; macGiven: boolean } | undefined;
  #stage: { pipeline: XdpPipeline; name: string } | undefined;
  /** decap_config.version of the copy in force: per-CPU VNI cache entries of older versions are stale. */
  #version = 0;

  private constructor(p: Parts, settings: DecapSettings, limits: Required<DecapLimits>) {
    this.#p = p;
    this.#settings = settings;
    this.limits = limits;
  }

  /**
   * Loads the program and applies `opts` without attaching it anywhere: for
   * BPF_PROG_TEST_RUN (testRun) or for chaining the program yourself (`program`).
   * Without `interfaceMac`, `rewriteMac` must be false and the outer MAC is not checked.
   */
  static async load(opts: DecapLoadOptions = {}): Promise<Decapsulator> {
    checkKeys(opts, LOAD_KEYS, 'Decapsulator.load');
    const limits = checkLimits(opts.limits);
    const settings = resolveSettings(DEFAULT_SETTINGS, stripLimits(opts), limits);
    if (settings.rewriteMac && !settings.interfaceMac) {
      invalidArgument('interfaceMac', 'rewriteMac needs the receiving interface MAC: give interfaceMac, set rewriteMac: false, or use attach()');
    }
    return Decapsulator.#create(settings, limits);
  }

  /**
   * Loads the program, configures it and attaches it to `iface` (XDP, native mode by
   * default). The interface's MAC is read from the kernel unless `interfaceMac` is given.
   *
   * Given an attached {@link XdpPipeline} instead of an interface, the program becomes a
   * stage of it (named `stage.name`, default 'decap', placed by `stage.before/after/index`,
   * default last) on the pipeline's interface: decapsulated and untouched packets alike
   * continue with the next stage.
   */
  static async attach(target: string | number | XdpPipeline, opts: DecapAttachOptions = {}): Promise<Decapsulator> {
    checkKeys(opts, ATTACH_KEYS, 'Decapsulator.attach');
    const pipeline = target instanceof XdpPipeline ? target : undefined;
    if (pipeline) {
      if (pipeline.closed) invalidArgument('pipeline', 'the XdpPipeline is closed');
      if (pipeline.ifindex === undefined) invalidArgument('pipeline', 'the XdpPipeline is not attached to an interface (use XdpPipeline.attach)');
      for (const k of ['netns', 'mode'] as const) if (opts[k] !== undefined) invalidArgument(k, `a pipeline stage runs on the pipeline's interface: no '${k}'`);
    } else {
      checkInterface(target as string | number);
      if (opts.stage !== undefined) invalidArgument('stage', 'only for a pipeline stage: attach to an XdpPipeline');
    }
    const iface = pipeline ? pipeline.ifindex! : (target as string | number);
    const limits = checkLimits(opts.limits);
    const { netns, mode, stage, ...rest } = opts;
    if (mode !== undefined && !['native', 'generic', 'auto'].includes(mode))
      invalidArgument('mode', `must be 'native', 'generic' or 'auto', got '${String(mode)}'`);
    const stageName = stage?.name ?? 'decap';
    let settings = resolveSettings(DEFAULT_SETTINGS, stripLimits(rest), limits);
    const ns = pipeline ? pipeline.netns : netnsPath(netns);
    ifIndex(iface, { netns: ns }); // ERR_NO_SUCH_INTERFACE before anything is loaded
    if (!settings.interfaceMac) {
      const m = await interfaceMac(iface, ns);
      if (!m && settings.rewriteMac) {
        throw new BpfkitError(
          'ERR_UNSUPPORTED',
          `${String(iface)} has no Ethernet address to rewrite inner frames to: give interfaceMac or set rewriteMac: false`,
          { field: 'rewriteMac' },
        );
      }
      settings = { ...settings, interfaceMac: m };
    }
    const d = await Decapsulator.#create(settings, limits, pipeline);
    try {
      if (pipeline) {
        const { name: _n, ...where } = stage ?? {};
        await pipeline.add({ name: stageName, program: d.program }, where);
        d.#stage = { pipeline, name: stageName };
      } else {
        d.#link = d.program.attach(iface, { mode: mode ?? 'native', ...(netns !== undefined ? { netns } : {}) });
      }
    } catch (e) {
      d.close();
      throw e;
    }
    d.#iface = { iface, ns, macGiven: opts.interfaceMac !== undefined };
    return d;
  }

  static async #create(settings: DecapSettings, limits: Required<DecapLimits>, pipeline?: XdpPipeline): Promise<Decapsulator> {
    const st = pipeline?.stageOptions();
    const cpus = possibleCpus();
    const obj = await BpfObject.load(bpfObjectPath('decap'), {
      name: 'decap',
      maps: {
        vni_allow: { maxEntries: 2 * limits.allowedVnis },
        vni_slot: { maxEntries: limits.vniStats },
        // plain arrays used as per-CPU ones: so many entries per possible CPU
        vni_counters: { maxEntries: limits.vniStats * cpus },
        counters: { maxEntries: CNT_SLOTS * cpus },
        vni_cache: { maxEntries: VNI_CACHE_SIZE * cpus },
        ...st?.maps,
      },
      globals: { ...st?.globals, vni_slots: limits.vniStats },
    });
    const opened: { close(): void }[] = [];
    const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
    try {
      const outer = keep(obj.map('config', { key: u32, value: u32 }));
      const inner: Parts['inner'] = [keep(obj.map('config_a', { key: u32, value: configCodec })), keep(obj.map('config_b', { key: u32, value: configCodec }))];
      const vniCounterMap = keep(obj.map('vni_counters', { key: u32, value: counterCodec }));
      const counterMap = keep(obj.map('counters', { key: u32, value: counterCodec }));
      const parts: Parts = {
        obj,
        prog: keep(obj.xdpProgram('xdp_decap')),
        outer,
        inner,
        // the object's static initialiser points config[0] at config_a (copy 0)
        swap: new DoubleBuffer(outer, inner, 0),
        vniAllow: keep(obj.map('vni_allow', { key: u32, value: u8 })),
        vniSlot: keep(obj.map('vni_slot', { key: u32, value: u32 })),
        vniCounterMap,
        counterMap,
        vniCounters: new CpuCounters(vniCounterMap, cpus),
        counters: new CpuCounters(counterMap, cpus),
      };
      const d = new Decapsulator(parts, DEFAULT_SETTINGS, limits);
      // The object's static initialiser points config[0] at config_a (generation 0), which
      // is all zeros (no ports): write it before anything can see traffic.
      await d.#writeGeneration(parts, 0, settings);
      parts.inner[0].set(0, configValue(settings, 0, d.#version));
      d.#settings = settings;
      return d;
    } catch (e) {
      for (const o of opened) o.close();
      obj.close();
      throw e;
    }
  }

  /** The loaded XDP program (for testRun, pinning, or tail calls from a pipeline). */
  get program(): XdpProgram {
    return this.#parts().prog;
  }

  /** The XDP attachment, when made by attach(). */
  get link(): XdpLink | undefined {
    return this.#link;
  }

  /** The settings in force (a copy). */
  get settings(): DecapSettings {
    const s = this.#settings;
    return {
      ...s,
      protocols: [...s.protocols],
      ports: { vxlan: [...s.ports.vxlan], geneve: [...s.ports.geneve] },
      vnis: s.vnis && [...s.vnis],
      localAddresses: s.localAddresses && [...s.localAddresses],
    };
  }

  /**
   * Changes the fields given (others keep their values) atomically: every packet is
   * handled by the whole old or the whole new settings. Everything is validated first;
   * a rejected update changes nothing. When attached, the interface MAC is read again
   * (unless `interfaceMac` was given). Concurrent calls apply in call order.
   */
  update(opts: DecapOptions): Promise<void> {
    return this.#parts().swap.serial(() => this.#update(opts));
  }

  async #update(opts: DecapOptions): Promise<void> {
    const p = this.#parts();
    checkKeys(opts, OPTION_KEYS, 'update');
    let next = resolveSettings(this.#settings, opts, this.limits);
    if (this.#iface && opts.interfaceMac === undefined && !this.#iface.macGiven) {
      next = { ...next, interfaceMac: await interfaceMac(this.#iface.iface, this.#iface.ns) };
    }
    if (next.rewriteMac && !next.interfaceMac) invalidArgument('interfaceMac', 'rewriteMac needs the receiving interface MAC');
    const gen = p.swap.idleIndex;
    try {
      await this.#writeGeneration(p, gen, next);
      p.swap.idle.set(0, configValue(next, gen, (this.#version + 1) >>> 0));
      // Returns after the grace period, so no program still runs with the old config
      // when the old generation is deleted below.
      await p.swap.flip();
    } catch (e) {
      await this.#clearGeneration(p, gen).catch(() => undefined);
      throw e;
    }
    const old = p.swap.idleIndex;
    this.#version = (this.#version + 1) >>> 0;
    this.#settings = next;
    if (this.#iface && opts.interfaceMac !== undefined) this.#iface.macGiven = true;
    // Best effort: leftovers of the old generation are also cleared before its next use.
    await this.#clearGeneration(p, old).catch(() => undefined);
  }

  /** Writes generation `gen` of the VNI allowlist (cleared first). */
  async #writeGeneration(p: Parts, gen: number, s: DecapSettings): Promise<void> {
    await this.#clearGeneration(p, gen);
    if (s.vnis) await p.vniAllow.setBatch(s.vnis.map((v) => [(gen << GEN_SHIFT) | v, 1] as const));
  }

  async #clearGeneration(p: Parts, gen: number): Promise<void> {
    const vnis = [...p.vniAllow.keys()].filter((k) => k >>> GEN_SHIFT === gen);
    if (vnis.length) await p.vniAllow.deleteBatch(vnis);
  }

  /** Counters, summed over CPUs (see DecapStats). */
  stats(): DecapStats {
    const p = this.#parts();
    const slots: DecapCounter[] = [];
    for (let i = 0; i < CNT_SLOTS; i++) slots.push(p.counters.read(i));
    const proto = (name: TunnelProtocol) => {
      const base = CNT_DECAP + PROTO_INDEX[name] * 2;
      const ipv4 = slots[base]!;
      const ipv6 = slots[base + 1]!;
      return { ...sum([ipv4, ipv6]), ipv4, ipv6 };
    };
    const protocols = { vxlan: proto('vxlan'), geneve: proto('geneve') };
    const passed = {} as Record<DecapPassReason, DecapCounter>;
    DECAP_PASS_REASONS.forEach((r, i) => (passed[r] = slots[CNT_PASS + i]!));
    const vnis: DecapVniStats[] = [];
    for (const [k, slot] of p.vniSlot.entries()) {
      const c = slot < p.vniCounters.slots ? p.vniCounters.read(slot) : zero();
      // a slot is taken before the packet is decapsulated; one whose packet then failed
      // (adjust_head) has counted nothing yet
      if (c.packets === 0n) continue;
      vnis.push({ protocol: TUNNEL_PROTOCOLS[k >>> VNI_PROTO_SHIFT] ?? 'vxlan', vni: k & 0xffffff, ...c });
    }
    vnis.sort((a, b) => PROTO_INDEX[a.protocol] - PROTO_INDEX[b.protocol] || a.vni - b.vni);
    return {
      decapsulated: sum([protocols.vxlan, protocols.geneve]),
      protocols,
      vnis,
      vniOverflow: slots[CNT_VNI_OVERFLOW]!,
      metadataFailed: slots[CNT_META_FAILED]!,
      passed,
      passedTotal: sum(Object.values(passed)),
    };
  }

  /** Runs the program on one frame with BPF_PROG_TEST_RUN (counters count it too). */
  testRun(packet: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    return this.#parts().prog.testRun(packet, opts);
  }

  /** The pipeline this decapsulator is a stage of, and its stage name. */
  get stage(): { pipeline: XdpPipeline; name: string } | undefined {
    return this.#stage;
  }

  /**
   * Detaches (unless the link was pinned) and releases the program and maps. Idempotent.
   * A pipeline stage is removed from its pipeline by a change queued there (the stage
   * keeps running until it completes; `await pipeline.remove(name)` first to order it).
   */
  close(): void {
    this.#link?.close();
    this.#link = undefined;
    const st = this.#stage;
    this.#stage = undefined;
    if (st && !st.pipeline.closed) st.pipeline.remove(st.name).catch(() => undefined);
    const p = this.#p;
    this.#p = undefined;
    if (!p) return;
    for (const m of [p.outer, ...p.inner, p.vniAllow, p.vniSlot, p.vniCounterMap, p.counterMap, p.prog]) m.close();
    p.obj.close();
  }

  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #parts(): Parts {
    if (!this.#p) throw new BpfkitError('ERR_CLOSED', 'Decapsulator is closed');
    return this.#p;
  }
}

function stripLimits<T extends { limits?: unknown }>(o: T): Omit<T, 'limits'> {
  const { limits: _l, ...rest } = o;
  return rest;
}
