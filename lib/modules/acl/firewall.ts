/**
 * AclFirewall: network ACLs enforced at XDP (bpf/acl/prog.h), with per-rule
 * counters and deny/log events streamed to Node.
 *
 * ```ts
 * const fw = await AclFirewall.attach('eth0', { defaultAction: 'allow', pin: '/sys/fs/bpf/myfw' });
 * await fw.setRules([
 *   { id: 'no-ssh', action: 'deny', src: '198.18.0.0/24', proto: 'tcp', dstPort: 22 },
 *   { id: 'web', action: 'log', dst: ['198.18.1.10', '2001:db8::10'], proto: 'tcp', dstPort: [80, 443] },
 * ]);
 * fw.on('deny', (ev) => analytics.send(ev));
 * console.log(await fw.stats());
 * ```
 *
 * The rooms: options.ts (options, settings, result types, variants), install.ts (loading,
 * pinning, attaching, adoption), swap.ts (the rule set in force and atomic swaps),
 * owners.ts (which rule an event names), stats.ts (counters), events.ts (the event stream).
 */
import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { checkInteger } from '../../core/validate.js';
import { checkInterface, netnsPath } from '../../core/net/netns.js';
import type { TestRunOptions, TestRunResult, XdpMode, XdpProgram } from '../../core/programs/program.js';
import type { CompileOptions } from './classifier.js';
import { AclEventStream, isEventName, type AclEvent } from './events.js';
import { adoptLinks, closeHandles, install, isPinned, openPinned, removePins, type Handles } from './install.js';
import {
  ACL_MAX_RULES,
  DEFAULT_SETTINGS,
  VARIANTS,
  checkSettings,
  type AclCompileInfo,
  type AclCounter,
  type AclDefaultAction,
  type AclFirewallEvents,
  type AclFirewallOptions,
  type AclStats,
  type Settings,
  type Variant,
} from './options.js';
import type { AclRule } from './rules.js';
import { readStats } from './stats.js';
import { RuleSets } from './swap.js';
import { XdpPipeline } from '../pipeline.js';

export {
  ACL_MAX_RULES,
  type AclCompileInfo,
  type AclCounter,
  type AclDefaultAction,
  type AclFirewallEvents,
  type AclFirewallOptions,
  type AclRuleStats,
  type AclStats,
} from './options.js';

export class AclFirewall extends EventEmitter<AclFirewallEvents> implements AsyncIterable<AclEvent> {
  /** Interface indexes the firewall is attached to. */
  readonly ifindexes: readonly number[];
  /** Pin directory, if pinned. */
  readonly pin: string | undefined;
  /** Most rules a rule set may have. */
  readonly maxRules: number;
  /** True if this instance took over a firewall another process pinned. */
  readonly adopted: boolean;
  /** The BPF object variant ('acl_s', 'acl', 'acl_xl'). */
  readonly variant: string;

  #h: Handles | undefined;
  readonly #ns: string | undefined;
  readonly #ifnames = new Map<number, string>();
  readonly #rs: RuleSets;
  readonly #stream: AclEventStream;
  #queue: Promise<unknown> = Promise.resolve();
  #stage: { pipeline: XdpPipeline; name: string } | undefined;

  private constructor(init: {
    ifindexes: number[];
    pin: string | undefined;
    maxRules: number;
    adopted: boolean;
    variant: Variant;
    ns: string | undefined;
    compile: CompileOptions;
  }) {
    super({ captureRejections: false });
    this.ifindexes = init.ifindexes;
    this.pin = init.pin;
    this.maxRules = init.maxRules;
    this.adopted = init.adopted;
    this.variant = init.variant.name;
    this.#ns = init.ns;
    this.#rs = new RuleSets({ maxRules: init.maxRules, variant: init.variant, compile: init.compile, resolveIface: (v) => ifIndex(v, { netns: this.#ns }) });
    this.#stream = new AclEventStream(this, this.#rs.owners);
    this.on('newListener', (ev) => {
      if (isEventName(ev)) queueMicrotask(() => this.#stream.updateListening());
      if (ev === 'lost') queueMicrotask(() => this.#stream.forwardLost());
    });
    this.on('removeListener', (ev) => {
      if (isEventName(ev)) this.#stream.updateListening();
    });
  }

  #open(h: Handles): void {
    this.#h = h;
    this.#stream.open(h.rb);
  }

  /**
   * Attaches the firewall to one or more interfaces, or adopts the firewall pinned at
   * `opts.pin` by an earlier process (its rules keep being enforced; `rules` and the
   * other settings, when given, then replace them atomically).
   */
  static async attach(target: string | number | readonly (string | number)[] | XdpPipeline, opts: AclFirewallOptions = {}): Promise<AclFirewall> {
    if (typeof opts !== 'object' || opts === null) invalidArgument('opts', 'must be an object');
    const pipeline = target instanceof XdpPipeline ? target : undefined;
    if (pipeline) {
      if (pipeline.closed) invalidArgument('pipeline', 'the XdpPipeline is closed');
      if (pipeline.ifindex === undefined) invalidArgument('pipeline', 'the XdpPipeline is not attached to an interface (use XdpPipeline.attach)');
      for (const k of ['netns', 'mode', 'pin'] as const) {
        if (opts[k] !== undefined) invalidArgument(k, `a pipeline stage runs on the pipeline's interface and lives with this process: no '${k}'`);
      }
    } else if (opts.stage !== undefined) {
      invalidArgument('stage', 'only for a pipeline stage: attach to an XdpPipeline');
    }
    const ifaces = pipeline ? pipeline.ifindex! : (target as string | number | readonly (string | number)[]);
    const list = Array.isArray(ifaces) ? [...ifaces] : [ifaces as string | number];
    if (list.length === 0) invalidArgument('iface', 'needs at least one interface');
    for (const i of list) checkInterface(i, 'iface');
    const ns = pipeline ? pipeline.netns : netnsPath(opts.netns);
    const mode = opts.mode ?? 'native';
    if (!['native', 'generic', 'auto'].includes(mode)) invalidArgument('mode', `must be 'native', 'generic' or 'auto', got ${String(mode)}`);
    const maxRules = opts.maxRules === undefined ? undefined : checkInteger(opts.maxRules, 'maxRules', 1, ACL_MAX_RULES);
    const ringBytes = opts.ringBytes ?? 1 << 20;
    if (!Number.isInteger(ringBytes) || ringBytes < 4096 || ringBytes > 1 << 30 || (ringBytes & (ringBytes - 1)) !== 0) {
      invalidArgument('ringBytes', `must be a power of two in 4096..2^30, got ${String(ringBytes)}`);
    }
    const flowTableSize = checkInteger(opts.flowTableSize ?? 65536, 'flowTableSize', 1, 1 << 24);
    const settings = checkSettings(opts, DEFAULT_SETTINGS);
    if (opts.rules !== undefined && !Array.isArray(opts.rules)) invalidArgument('rules', 'must be an array of rules');
    if (opts.pin !== undefined && (typeof opts.pin !== 'string' || !opts.pin.startsWith('/')))
      invalidArgument('pin', 'must be an absolute directory path on a BPF filesystem');
    const ifindexes = list.map((i) => ifIndex(i, { netns: ns }));
    const names = new Map<number, string>();
    list.forEach((i, k) => typeof i === 'string' && names.set(ifindexes[k]!, i));
    if (opts.pin !== undefined && isPinned(opts.pin)) {
      return AclFirewall.#adopt(ifindexes, names, ns, mode, opts, maxRules);
    }
    const cap = maxRules ?? 10_000;
    const variant = VARIANTS.find((v) => v.maxRules >= cap)!;
    const fw = new AclFirewall({ ifindexes, pin: opts.pin, maxRules: cap, adopted: false, variant, ns, compile: opts.compile ?? {} });
    for (const [k, v] of names) fw.#ifnames.set(k, v);
    // validate and compile the first rule set before the kernel sees anything
    const first = await fw.#rs.prepare(opts.rules ?? [], settings);
    const h = await install(variant, {
      maxRules: cap,
      mode,
      ringBytes,
      flowTableSize,
      pin: opts.pin,
      ifindexes: pipeline ? [] : ifindexes,
      ns,
      first: (h) => fw.#rs.commit(h, first),
      ...(pipeline ? { stage: pipeline.stageOptions() } : {}),
    });
    fw.#open(h);
    if (pipeline) {
      const { name = 'acl', ...where } = opts.stage ?? {};
      try {
        await pipeline.add({ name, program: h.prog }, where);
      } catch (e) {
        fw.close();
        throw e;
      }
      fw.#stage = { pipeline, name };
    }
    return fw;
  }

  static async #adopt(
    ifindexes: number[],
    names: Map<number, string>,
    ns: string | undefined,
    mode: XdpMode,
    opts: AclFirewallOptions,
    maxRules: number | undefined,
  ): Promise<AclFirewall> {
    const dir = opts.pin!;
    const a = openPinned(dir, maxRules);
    const created: string[] = [];
    try {
      const fw = new AclFirewall({ ifindexes, pin: dir, maxRules: a.maxRules, adopted: true, variant: a.variant, ns, compile: opts.compile ?? {} });
      for (const [k, v] of names) fw.#ifnames.set(k, v);
      fw.#open(a.h);
      fw.#rs.adopt(a.h, a.active);
      adoptLinks(a, dir, ifindexes, mode, ns, created);
      const changes: Partial<Settings> = {};
      if (opts.defaultAction !== undefined) changes.defaultAction = opts.defaultAction;
      if (opts.eventIntervalMs !== undefined) changes.eventIntervalMs = opts.eventIntervalMs;
      if (opts.defaultDenyEvents !== undefined) changes.defaultDenyEvents = opts.defaultDenyEvents;
      if (opts.events !== undefined) changes.events = opts.events;
      if (opts.verdictCache !== undefined) changes.verdictCache = opts.verdictCache;
      if (opts.rules !== undefined || Object.keys(changes).length > 0) {
        const settings = checkSettings(changes, fw.#rs.settings);
        await fw.#rs.commit(a.h, await fw.#rs.prepare(opts.rules ?? fw.#rs.ownRules(), settings));
      }
      return fw;
    } catch (e) {
      for (const p of created) {
        try {
          unlinkSync(p);
        } catch {
          /* best effort */
        }
      }
      for (const x of a.opened.reverse()) x.close();
      throw e;
    }
  }

  /** Runs `fn` after every earlier change finished (changes are applied one at a time). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Replaces the whole rule set atomically. Everything is validated first: a bad rule
   * rejects the call (ERR_INVALID_RULE with `ruleId` and `field`) and the kernel keeps
   * the old set.
   */
  setRules(rules: readonly AclRule[]): Promise<AclCompileInfo> {
    return this.#serial(async () => {
      this.#live();
      const p = await this.#rs.prepare(rules, this.#rs.settings);
      await this.#rs.commit(this.#live(), p);
      return p.info;
    });
  }

  /**
   * Adds a rule (at the end, or before/after the rule with the given id). Atomic. At the
   * end it goes into the rule set's overlay without compiling (docs/acl.md, incremental
   * changes) while the overlay has room.
   */
  addRule(rule: AclRule, where: { before?: string; after?: string } = {}): Promise<AclCompileInfo> {
    return this.#serial(async () => {
      if (where?.before === undefined && where?.after === undefined) {
        const info = await this.#rs.change(this.#live(), { kind: 'add', rule });
        if (info) return info;
      }
      const list = this.#rs.ownRules();
      let at = list.length;
      if (where.before !== undefined || where.after !== undefined) {
        const ref = (where.before ?? where.after)!;
        const i = list.findIndex((r) => r.id === ref);
        if (i < 0)
          throw new BpfkitError('ERR_NOT_FOUND', `${where.before !== undefined ? 'before' : 'after'}: no rule with id '${ref}'`, {
            field: where.before !== undefined ? 'before' : 'after',
          });
        at = where.before !== undefined ? i : i + 1;
      }
      list.splice(at, 0, rule);
      const p = await this.#rs.prepare(list, this.#rs.settings);
      await this.#rs.commit(this.#live(), p);
      return p.info;
    });
  }

  /** Removes the rule with this id. Resolves false if there was none. Atomic. */
  removeRule(id: string): Promise<boolean> {
    return this.#serial(async () => {
      if (typeof id === 'string' && (await this.#rs.change(this.#live(), { kind: 'remove', id }))) return true;
      const list = this.#rs.ownRules();
      const i = list.findIndex((r) => r.id === id);
      if (i < 0) return false;
      list.splice(i, 1);
      const p = await this.#rs.prepare(list, this.#rs.settings);
      await this.#rs.commit(this.#live(), p);
      return true;
    });
  }

  /** Replaces the rule with the same id, in place (its counters continue). Atomic. */
  updateRule(rule: AclRule): Promise<AclCompileInfo> {
    return this.#serial(async () => {
      const info = await this.#rs.change(this.#live(), { kind: 'update', rule });
      if (info) return info;
      const list = this.#rs.ownRules();
      const id = (rule as { id?: unknown })?.id;
      const i = list.findIndex((r) => r.id === id);
      if (i < 0)
        throw new BpfkitError('ERR_NOT_FOUND', `id: no rule with id '${String(id)}'`, { field: 'id', ...(typeof id === 'string' ? { ruleId: id } : {}) });
      list[i] = rule;
      const p = await this.#rs.prepare(list, this.#rs.settings);
      await this.#rs.commit(this.#live(), p);
      return p.info;
    });
  }

  /** Changes the default action / event settings (an atomic swap with the same rules). */
  configure(settings: {
    defaultAction?: AclDefaultAction;
    eventIntervalMs?: number;
    defaultDenyEvents?: boolean;
    events?: boolean;
    verdictCache?: boolean;
  }): Promise<void> {
    return this.#serial(async () => {
      const s = checkSettings(settings, this.#rs.settings);
      const p = await this.#rs.prepare(this.#rs.ownRules(), s);
      await this.#rs.commit(this.#live(), p);
    });
  }

  /** The rule set in force (canonical form: CIDRs normalised, ports as numbers or [from, to]). */
  rules(): AclRule[] {
    return this.#rs.ownRules().map((r) => structuredClone(r));
  }

  /** The verdict for packets no rule matches. */
  get defaultAction(): AclDefaultAction {
    return this.#rs.settings.defaultAction;
  }
  /** At most one event per flow and rule per this many milliseconds (0: every packet). */
  get eventIntervalMs(): number {
    return this.#rs.settings.eventIntervalMs;
  }
  /** Generation of the rule set in force. */
  get generation(): number {
    return this.#rs.generation;
  }
  /** Shape and size of the last compiled rule set (undefined after adoption until a change). */
  get compileInfo(): AclCompileInfo | undefined {
    return this.#rs.lastInfo;
  }

  /** The XDP program (for BPF_PROG_TEST_RUN, e.g. `fw.program.testRun(frame)`). */
  get program(): XdpProgram {
    return this.#live().prog;
  }

  /** Runs the program on one frame with BPF_PROG_TEST_RUN (counters and events count it). */
  testRun(frame: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    return this.#live().prog.testRun(frame, opts);
  }

  // ---- counters ----------------------------------------------------------------------

  /** Counters: per rule, default action, unparsed/fragment/malformed packets, events. */
  stats(): Promise<AclStats> {
    return readStats(this.#live(), this.#rs, this.#stream.delivered);
  }

  /** Packets and bytes of one rule (undefined if no rule has this id). */
  ruleStats(id: string): AclCounter | undefined {
    const i = this.#rs.indexOf(id);
    return i !== undefined ? this.#live().ruleCounters.read(this.#rs.slots[i]!) : undefined;
  }

  // ---- events ------------------------------------------------------------------------

  /**
   * Events as an async iterator (deny and log). While the loop is slower than the
   * traffic, events wait in the kernel ring (and are counted as lost when it fills).
   */
  events(): AsyncIterableIterator<AclEvent> {
    return this.#stream.iterator();
  }

  /** Same as `events()`: for `for await`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<AclEvent> {
    return this.events();
  }

  /** Lets the process exit while events are being read. */
  unref(): this {
    this.#stream.unref();
    return this;
  }

  // ---- lifetime ----------------------------------------------------------------------

  #live(): Handles {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', 'the firewall is closed');
    return this.#h;
  }

  /** True once closed (or detached). */
  get closed(): boolean {
    return this.#h === undefined;
  }

  /** The pipeline this firewall is a stage of, and its stage name. */
  get stage(): { pipeline: XdpPipeline; name: string } | undefined {
    return this.#stage;
  }

  /**
   * Releases this process's handles. Unpinned: the program detaches. Pinned: the firewall
   * keeps running with its current rules (another attach() with the same pin adopts it).
   * Events written before are delivered to the listeners first (unpinned, after the
   * program detached: none is left in the ring). A listener that throws meanwhile does not
   * stop it half-way: close() finishes, then throws that error.
   */
  close(): void {
    const h = this.#h;
    if (!h) return;
    if (!this.pin) for (const l of h.links.values()) l.close();
    let failed: { e: unknown } | undefined;
    try {
      this.#stream.drain();
    } catch (e) {
      failed = { e };
    }
    this.#h = undefined;
    const st = this.#stage;
    this.#stage = undefined;
    // a stage leaves its pipeline by a queued, atomic change (it runs until that is done)
    if (st && !st.pipeline.closed) st.pipeline.remove(st.name).catch(() => undefined);
    this.#stream.close();
    closeHandles(h);
    this.#rs.release();
    this.emit('close');
    if (failed) throw failed.e;
  }

  /** Detaches from every interface and removes the pins (the firewall is gone); events written before are delivered, as by close(). */
  detach(): void {
    const h = this.#live();
    for (const l of h.links.values()) l.detach();
    if (this.pin) removePins(this.pin);
    this.close();
  }

  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
