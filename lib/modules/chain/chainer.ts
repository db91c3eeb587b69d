/**
 * ServiceChainer: sends unserviced traffic through a service (firewall, IDS ...) and
 * the traffic the service hands back upstream, by classifying packets at XDP
 * (bpf/chain.bpf.c, tuple-space search) and routing on the mark with Linux policy
 * routing (one PolicyRoute per service and one for upstream).
 *
 * ```ts
 * const chain = await ServiceChainer.attach(['eth0', 'fw0'], {   // client side and service return
 *   services: [{ name: 'fw', mark: 0x10, table: 100, nexthops: [{ via: '198.18.1.2' }] }],
 *   upstream: { mark: 0x20, table: 200, nexthops: [{ via: '198.18.2.2' }] },
 *   rules: [
 *     { iface: 'fw0', action: 'upstream' },                  // back from the firewall
 *     { src: '198.18.0.0/24', action: 'fw' },                // everything else from there
 *   ],
 * });
 * await chain.update({ rules: [...] });   // atomic
 * console.log(chain.stats());
 * await chain.close();                    // detaches and removes the policy routes
 * ```
 *
 * On each interface tc_chain_mark (TC ingress: metadata mark -> skb->mark) is attached
 * before the XDP program, so no marked packet meets a missing copier; close() detaches
 * XDP first, then TC, then removes the routes.
 *
 * Atomic updates: the config (shape table, marks) through a DoubleBuffer, the rule hash
 * by the generation in its key (the copy's index). See docs/service-chaining.md.
 */
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { u32 } from '../../core/codecs.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { bpfObjectPath } from '../../core/paths.js';
import { checkInterface, netnsPath } from '../../core/net/netns.js';
import { BpfObject } from '../../core/object.js';
import type { TestRunOptions, TestRunResult, XdpLink, XdpProgram } from '../../core/programs/program.js';
import type { TcLink, TcProgram } from '../../core/programs/tc.js';
import type { PolicyRouteSpec } from '../../route/index.js';
import { DoubleBuffer } from '../../core/maps/swap.js';
import { XdpPipeline } from '../pipeline.js';
import {
  CNT_META_FAILED,
  CNT_PACKETS,
  CNT_UNCLASSIFIED,
  CNT_UPSTREAM,
  checkKeys,
  checkLimits,
  configCodec,
  configValue,
  counterCodec,
  key4Codec,
  key6Codec,
  ruleCodec,
} from './config.js';
import { applyRoutes, checkForeignRules, removeRoutes, staleRules } from './routes.js';
import { checkForward, forwardStats, writeEgress } from './forward.js';
import { clearGeneration, resolve, writeGeneration, type State } from './state.js';
import { isPinned, openPinned, pinAll, removePins, stateCodec, stateEntries, writeState, type Parts, type PinnedState } from './pins.js';
import type {
  ChainAdoptOptions,
  ChainAttachOptions,
  ChainCounter,
  ChainLimits,
  ChainLoadOptions,
  ChainRule,
  ChainService,
  ChainStats,
  ChainStatus,
  ChainUpdate,
} from './types.js';

const ATTACH_KEYS = new Set(['services', 'upstream', 'rules', 'rulePriority', 'limits', 'netns', 'mode', 'stage', 'forward', 'egress', 'pin']);
const LOAD_KEYS = new Set(['services', 'upstream', 'rules', 'limits', 'netns']);
const UPDATE_KEYS = new Set(['rules', 'services']);

/** How the chainer runs, beyond its rules: fixed for its life, stored with its pins. */
interface Setup {
  forward: 'stack' | 'xdp';
  /** forward 'xdp': the interfaces XDP may redirect to */
  egress: number[];
  /** the interfaces it is attached to (the pipeline's for a stage) */
  ifindexes: number[];
  pin: string | undefined;
}

const zero = (): ChainCounter => ({ packets: 0n, bytes: 0n });
const sum = (cs: readonly ChainCounter[] | undefined): ChainCounter =>
  (cs ?? []).reduce((a, c) => ({ packets: a.packets + c.packets, bytes: a.bytes + c.bytes }), zero());
const sameSpec = (a: PolicyRouteSpec, b: PolicyRouteSpec) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Sends traffic through services (firewall, IDS, ...) and upstream: classifies packets at XDP,
 * marks them, and routes on the mark with policy routes it owns. See the file's notes and
 * docs/service-chaining.md.
 */
export class ServiceChainer {
  #p: Parts | undefined;
  #state: State;
  /** XDP links, one per interface (not for a pipeline stage), in attach order. */
  #links: XdpLink[] = [];
  /** tc_chain_mark's ingress links, one per interface (the pipeline's for a stage). */
  #tcLinks: TcLink[] = [];
  #stage: { pipeline: XdpPipeline; name: string } | undefined;
  #routed = false;
  #closing: Promise<void> | undefined;
  #setup: Setup;
  /** Capacities in force (fixed at load). */
  readonly limits: Readonly<Required<ChainLimits>>;
  /** Path of the namespace the chainer works in (undefined: the process's own). */
  readonly netns: string | undefined;
  /** First `ip rule` priority of its policy routes. */
  readonly rulePriority: number;
  /** True if this instance took over a chainer another process (or handle) pinned. */
  readonly adopted: boolean;

  private constructor(p: Parts, state: State, limits: Required<ChainLimits>, ns: string | undefined, rulePriority: number, setup: Setup, adopted = false) {
    this.#p = p;
    this.#state = state;
    this.limits = limits;
    this.netns = ns;
    this.rulePriority = rulePriority;
    this.#setup = setup;
    this.adopted = adopted;
  }

  /** The pin directory, if pinned. */
  get pin(): string | undefined {
    return this.#setup.pin;
  }

  /**
   * Loads and configures the program without attaching it or creating routes: for
   * BPF_PROG_TEST_RUN (testRun) or for chaining the program yourself (`program`).
   */
  static async load(opts: ChainLoadOptions): Promise<ServiceChainer> {
    checkKeys(opts, LOAD_KEYS, '');
    const ns = netnsPath(opts.netns);
    const limits = checkLimits(opts.limits);
    const state = resolve(opts, limits, ns, 1000);
    return ServiceChainer.#create(state, limits, ns, 1000, { forward: 'stack', egress: [], ifindexes: [], pin: undefined });
  }

  /**
   * Takes over the chainer pinned in `dir` by another process (or an earlier handle): its
   * programs keep running, with their rules, counters, links and policy routes, while this
   * process opens them - no packet goes unmarked. The configuration comes from the pins.
   */
  static async adopt(dir: string, opts: ChainAdoptOptions = {}): Promise<ServiceChainer> {
    checkKeys(opts, new Set(['netns']), '');
    checkPin(dir);
    if (!isPinned(dir)) throw new BpfkitError('ERR_NOT_FOUND', `pin: no chainer pinned in ${dir}`, { field: 'pin' });
    const ns = netnsPath(opts.netns);
    const a = openPinned(dir, ns);
    try {
      const s = a.state;
      const limits = checkLimits({ maxRules: s.maxRules });
      const state = resolve(s, limits, ns, s.rulePriority, a.parts.swap.activeIndex);
      const c = new ServiceChainer(
        a.parts,
        state,
        limits,
        ns,
        s.rulePriority,
        { forward: s.forward, egress: s.egress, ifindexes: s.ifindexes, pin: dir },
        true,
      );
      c.#links = a.links;
      c.#tcLinks = a.tcLinks;
      c.#routed = true;
      // idempotent: puts back a policy route someone removed, changes nothing otherwise
      await applyRoutes(state.policies, ns);
      return c;
    } catch (e) {
      for (const x of [...a.links, ...a.tcLinks]) x.close();
      closeParts(a.parts);
      throw e;
    }
  }

  /**
   * Validates everything, then loads the program, creates the policy routes and
   * attaches to `target` (an interface, XDP native by default, or an attached
   * XdpPipeline as a stage). All or nothing: on failure nothing stays in the kernel.
   */
  static async attach(target: string | number | readonly (string | number)[] | XdpPipeline, opts: ChainAttachOptions): Promise<ServiceChainer> {
    checkKeys(opts, ATTACH_KEYS, '');
    const pipeline = target instanceof XdpPipeline ? target : undefined;
    let list: (string | number)[];
    if (pipeline) {
      if (pipeline.closed) invalidArgument('pipeline', 'the XdpPipeline is closed');
      if (pipeline.ifindex === undefined) invalidArgument('pipeline', 'the XdpPipeline is not attached to an interface (use XdpPipeline.attach)');
      for (const k of ['netns', 'mode'] as const) if (opts[k] !== undefined) invalidArgument(k, `a pipeline stage runs on the pipeline's interface: no '${k}'`);
      list = [pipeline.ifindex];
    } else {
      if (Array.isArray(target)) {
        list = [...(target as readonly (string | number)[])];
        if (list.length === 0) invalidArgument('interface', 'needs at least one interface');
        list.forEach((i, k) => checkInterface(i, `interface[${k}]`));
      } else {
        list = [checkInterface(target as string | number)];
      }
      if (opts.stage !== undefined) invalidArgument('stage', 'only for a pipeline stage: attach to an XdpPipeline');
    }
    if (opts.mode !== undefined && !['native', 'generic', 'auto'].includes(opts.mode))
      invalidArgument('mode', `must be 'native', 'generic' or 'auto', got '${String(opts.mode)}'`);
    if (opts.pin !== undefined) {
      if (pipeline) invalidArgument('pin', "a pipeline stage lives with the pipeline's process: no 'pin'");
      checkPin(opts.pin);
    }
    const base = opts.rulePriority ?? 1000;
    if (!Number.isInteger(base) || base < 1 || base > 32700)
      invalidArgument('rulePriority', `must be an integer 1..32700 (before the main table's rule), got ${String(base)}`);
    const ns = pipeline ? pipeline.netns : netnsPath(opts.netns);
    // ERR_NO_SUCH_INTERFACE before anything is loaded; an interface listed twice is refused
    const ifindexes = list.map((i) => ifIndex(i, { netns: ns }));
    ifindexes.forEach((x, k) => {
      if (ifindexes.indexOf(x) !== k) invalidArgument(`interface[${k}]`, `interface ${String(list[k])} is listed twice`);
    });
    const limits = checkLimits(opts.limits);
    const egress = checkForward(opts.forward, opts.egress, ns);
    const state = resolve(opts, limits, ns, base);
    const setup: Setup = { forward: opts.forward ?? 'stack', egress, ifindexes, pin: opts.pin };
    if (opts.pin !== undefined && isPinned(opts.pin)) return ServiceChainer.#adoptAndApply(opts.pin, ns, setup, state, limits, base);
    await checkForeignRules(state.paths, ns);

    const c = await ServiceChainer.#create(state, limits, ns, base, setup, pipeline);
    try {
      await applyRoutes(state.policies, ns);
      c.#routed = true;
      // the mark copier first on every interface: no marked packet meets a missing copier
      for (const i of ifindexes) c.#tcLinks.push(c.tcProgram.attach(i, { direction: 'ingress', ...(ns ? { netns: ns } : {}) }));
      if (pipeline) {
        const { name = 'chain', ...where } = opts.stage ?? {};
        await pipeline.add({ name, program: c.program }, where);
        c.#stage = { pipeline, name };
      } else {
        for (const i of ifindexes) c.#links.push(c.program.attach(i, { mode: opts.mode ?? 'native', ...(ns ? { netns: ns } : {}) }));
      }
      if (opts.pin !== undefined) pinAll(opts.pin, c.#parts(), c.#links, c.#tcLinks);
    } catch (e) {
      // undone in full even with a pin (what pinAll pinned it unpinned itself on failure)
      c.#closing = c.#teardown(false);
      await c.#closing.catch(() => undefined);
      throw e;
    }
    return c;
  }

  /**
   * attach() onto a pinned chainer: adopts it, checks that what cannot change does not
   * (interfaces, upstream, rulePriority, forwarding, limits) and applies the rules and
   * services given by an atomic update when they differ.
   */
  static async #adoptAndApply(
    dir: string,
    ns: string | undefined,
    setup: Setup,
    next: State,
    limits: Required<ChainLimits>,
    base: number,
  ): Promise<ServiceChainer> {
    const c = await ServiceChainer.adopt(dir, ns ? { netns: ns } : {});
    try {
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
      const had = c.#setup;
      const fixed: [string, unknown, unknown][] = [
        ['interface', [...had.ifindexes].sort(), [...setup.ifindexes].sort()],
        ['upstream', c.#state.upstream, next.upstream],
        ['rulePriority', c.rulePriority, base],
        ['forward', had.forward, setup.forward],
        ['egress', [...had.egress].sort(), [...setup.egress].sort()],
        ['limits', c.limits.maxRules, limits.maxRules],
      ];
      for (const [field, was, now] of fixed) {
        if (!same(was, now)) invalidArgument(field, `differs from the chainer pinned in ${dir} (${JSON.stringify(was)}); detach it to change this`);
      }
      if (!same(c.#state.rules, next.rules) || !same(c.#state.services, next.services)) await c.update({ rules: next.rules, services: next.services });
    } catch (e) {
      c.#release();
      throw e;
    }
    return c;
  }

  static async #create(
    state: State,
    limits: Required<ChainLimits>,
    ns: string | undefined,
    base: number,
    setup: Setup,
    pipeline?: XdpPipeline,
  ): Promise<ServiceChainer> {
    const st = pipeline?.stageOptions();
    const obj = await BpfObject.load(bpfObjectPath('chain'), {
      name: 'chain',
      maps: {
        chain_rules6: { maxEntries: 2 * limits.maxRules },
        chain_rules4: { maxEntries: 2 * limits.maxRules },
        chain_rule_stats: { maxEntries: 2 * limits.maxRules },
        chain_state: { maxEntries: stateEntries(limits.maxRules, setup.pin !== undefined) },
        ...st?.maps,
      },
      globals: { chain_forward: setup.forward === 'xdp' ? 1 : 0, ...st?.globals },
    });
    const opened: { close(): void }[] = [];
    const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
    try {
      const slot = keep(obj.map('chain_config', { key: u32, value: u32 }));
      const copies: Parts['copies'] = [
        keep(obj.map('chain_config_a', { key: u32, value: configCodec })),
        keep(obj.map('chain_config_b', { key: u32, value: configCodec })),
      ];
      const p: Parts = {
        obj,
        prog: keep(obj.xdpProgram('xdp_chain')),
        tc: keep(obj.tcProgram('tc_chain_mark')),
        slot,
        copies,
        // the static initialiser points the slot at chain_config_a (copy 0), all zeros:
        // no shapes, every packet unclassified until generation 0 is written below
        swap: new DoubleBuffer(slot, copies, 0),
        rules6: keep(obj.map('chain_rules6', { key: key6Codec, value: ruleCodec })),
        rules4: keep(obj.map('chain_rules4', { key: key4Codec, value: ruleCodec })),
        ruleStats: keep(obj.perCpuMap('chain_rule_stats', { key: u32, value: counterCodec })),
        counters: keep(obj.perCpuMap('chain_counters', { key: u32, value: counterCodec })),
        egress: keep(obj.map('chain_egress', { key: u32, value: u32 })),
        state: keep(obj.map('chain_state', stateCodec)),
      };
      writeEgress(p.egress, setup.egress);
      await writeGeneration(p, 0, state.compiled);
      const c = new ServiceChainer(p, state, limits, ns, base, setup);
      if (setup.pin !== undefined) await writeState(p.state, 0, c.#pinnedState(state));
      p.copies[0].set(0, configValue(state.compiled, 0, state.paths, limits.maxRules));
      return c;
    } catch (e) {
      for (const o of opened) o.close();
      obj.close();
      throw e;
    }
  }

  /** The loaded XDP program (testRun, pinning, a pipeline of your own). */
  get program(): XdpProgram {
    return this.#parts().prog;
  }
  /** The TC ingress program that copies the metadata mark into skb->mark. */
  get tcProgram(): TcProgram {
    return this.#parts().tc;
  }
  /** The XDP link of the first interface (undefined for a pipeline stage). */
  get link(): XdpLink | undefined {
    return this.#links[0];
  }
  /** The XDP links, one per interface, in the order given (empty for a pipeline stage). */
  get links(): readonly XdpLink[] {
    return [...this.#links];
  }
  /** tc_chain_mark's TC ingress links, one per interface (the pipeline's for a stage). */
  get tcLinks(): readonly TcLink[] {
    return [...this.#tcLinks];
  }
  /** The pipeline and stage name, when the chainer is a stage of an XdpPipeline. */
  get stage(): { pipeline: XdpPipeline; name: string } | undefined {
    return this.#stage;
  }
  /** True once closed. */
  get closed(): boolean {
    return this.#p === undefined;
  }
  /** The rules in force (as given). */
  get rules(): ChainRule[] {
    return this.#state.rules.map((r) => ({ ...r }));
  }
  /** The services in force (copies). */
  get services(): ChainService[] {
    return this.#state.services.map((s) => ({ ...s, nexthops: s.nexthops.map((h) => ({ ...h })) }));
  }
  /** Rules that can never match: an earlier rule has the same shape and fields (by index). */
  get shadowed(): number[] {
    return [...this.#state.compiled.shadowed];
  }

  /** Where the chainer stands: attached where, marks copied, routes and rules in force. */
  get status(): ChainStatus {
    return {
      attached: this.#links.length ? 'interface' : this.#stage ? 'pipeline' : 'none',
      marksSkb: this.#tcLinks.length > 0,
      routes: this.#routed ? this.#state.policies.length : 0,
      rules: this.#state.rules.length,
      shapes: this.#state.compiled.shapes.length,
      forward: this.#setup.forward,
      pin: this.#setup.pin,
    };
  }

  /** What chain_state stores for `s` (adoption rebuilds the chainer from it). */
  #pinnedState(s: State): PinnedState {
    const { forward, egress, ifindexes } = this.#setup;
    return {
      v: 1,
      services: s.services,
      upstream: s.upstream,
      rules: s.rules,
      rulePriority: this.rulePriority,
      maxRules: this.limits.maxRules,
      forward,
      egress,
      ifindexes,
    };
  }

  /**
   * Changes the rules and/or services atomically: every packet is classified by the
   * whole old or the whole new set. Everything is validated first (rules against the
   * new services); a rejected update changes nothing. Policy routes of new services are
   * in place before any packet is marked for them; those of removed services go after.
   */
  update(u: ChainUpdate): Promise<void> {
    return this.#parts().swap.serial(() => this.#update(u));
  }

  async #update(u: ChainUpdate): Promise<void> {
    const p = this.#parts();
    checkKeys(u, UPDATE_KEYS, '');
    const old = this.#state;
    const next = resolve(
      { services: u.services ?? old.services, upstream: old.upstream, rules: u.rules ?? old.rules },
      this.limits,
      this.netns,
      this.rulePriority,
      p.swap.idleIndex,
    );
    const added = next.policies.filter((s) => !old.policies.some((o) => sameSpec(o, s)));
    const stale = staleRules(old.policies, next.policies);
    if (this.#routed && added.length) await checkForeignRules(next.paths, this.netns);
    const gen = p.swap.idleIndex;
    let routesApplied = false;
    try {
      if (this.#routed && added.length) {
        await applyRoutes(next.policies, this.netns);
        routesApplied = true;
      }
      await writeGeneration(p, gen, next.compiled);
      if (this.#setup.pin !== undefined) await writeState(p.state, gen, this.#pinnedState(next));
      p.swap.idle.set(0, configValue(next.compiled, gen, next.paths, this.limits.maxRules));
      await p.swap.flip(); // after the grace period: no packet still uses the old generation
    } catch (e) {
      await clearGeneration(p, gen).catch(() => undefined);
      if (routesApplied) {
        await removeRoutes(added, this.netns).catch(() => undefined);
        await applyRoutes(old.policies, this.netns).catch(() => undefined);
      }
      throw e;
    }
    this.#state = next;
    await clearGeneration(p, p.swap.idleIndex).catch(() => undefined);
    if (this.#routed && stale.length) await removeRoutes(stale, this.netns);
    // service counters follow the service's position: zero the slots whose service changed
    const renamed = old.paths.services.map((s, i) => (next.paths.services[i]?.name !== s.name ? i : -1)).filter((i) => i >= 0);
    if (renamed.length) await p.counters.setBatch(renamed.map((i) => [i, zero()] as const));
  }

  /** Counters, summed over CPUs. */
  stats(): ChainStats {
    const p = this.#parts();
    const s = this.#state;
    const base = p.swap.activeIndex * this.limits.maxRules;
    const slot = (i: number) => sum(p.counters.get(i));
    return {
      rules: s.checked.map((r) => ({ index: r.index, id: r.id, action: r.action, ...sum(p.ruleStats.get(base + r.index)) })),
      services: s.paths.services.map((sv, i) => ({ name: sv.name, ...slot(i) })),
      upstream: slot(CNT_UPSTREAM),
      unclassified: slot(CNT_UNCLASSIFIED),
      metadataFailed: slot(CNT_META_FAILED),
      packets: slot(CNT_PACKETS),
      ...(this.#setup.forward === 'xdp' ? { forward: forwardStats(slot) } : {}),
    };
  }

  /** Runs the program on one frame with BPF_PROG_TEST_RUN (counters count it too). */
  testRun(packet: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    return this.#parts().prog.testRun(packet, opts);
  }

  /**
   * Detaches, removes the policy routes and releases the program and maps, as one unit.
   * Pinned: only releases this process's handles - the chainer keeps running with its
   * rules and routes (adopt it again, or detach() to remove it). Idempotent: later calls
   * return the first call's promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#setup.pin !== undefined ? Promise.resolve(this.#release()) : this.#teardown(false);
    return this.#closing;
  }
  /** Same as close(). */
  remove(): Promise<void> {
    return this.close();
  }

  /** Removes the chainer even when pinned: detaches, removes the routes and the pins. */
  detach(): Promise<void> {
    this.#closing ??= this.#teardown(true);
    return this.#closing;
  }

  /** Closes this process's handles only (pinned links keep the programs attached). */
  #release(): void {
    for (const l of [...this.#links.splice(0), ...this.#tcLinks.splice(0)]) l.close();
    this.#routed = false;
    const p = this.#p;
    this.#p = undefined;
    if (p) closeParts(p);
  }
  /** Same as `close()`: for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Detaches everything, removes the routes (and the pins if `unpin`), releases the handles. */
  async #teardown(unpin: boolean): Promise<void> {
    let err: unknown;
    const attempt = (f: () => void) => {
      try {
        f();
      } catch (e) {
        err ??= e;
      }
    };
    // XDP first (no new marks), then the copiers, then the routes that steered them
    const pinned = this.#setup.pin !== undefined;
    for (const l of this.#links.splice(0)) attempt(() => (pinned && l.detach(), l.close()));
    const st = this.#stage;
    this.#stage = undefined;
    if (st && !st.pipeline.closed) await st.pipeline.remove(st.name).catch((e: unknown) => (err ??= e));
    for (const l of this.#tcLinks.splice(0)) attempt(() => (pinned && l.detach(), l.close()));
    if (this.#routed) {
      await removeRoutes(this.#state.policies, this.netns).catch((e: unknown) => (err ??= e));
      this.#routed = false;
    }
    if (pinned && unpin) attempt(() => removePins(this.#setup.pin!));
    const p = this.#p;
    this.#p = undefined;
    if (p) closeParts(p);
    if (err) throw err;
  }

  #parts(): Parts {
    if (!this.#p) throw new BpfkitError('ERR_CLOSED', 'ServiceChainer is closed');
    return this.#p;
  }
}

function closeParts(p: Parts): void {
  for (const m of [p.slot, ...p.copies, p.rules6, p.rules4, p.ruleStats, p.counters, p.egress, p.state, p.prog, p.tc]) m.close();
  p.obj?.close();
}

function checkPin(dir: unknown): void {
  if (typeof dir !== 'string' || !dir.startsWith('/')) invalidArgument('pin', 'must be an absolute directory path on a BPF filesystem');
}
