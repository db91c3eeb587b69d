/**
 * AclFirewall: network ACLs enforced at XDP (bpf/include/acl_prog.h), with per-rule
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
 * Rule-set swaps: the whole rule set is compiled into one array-map value (the "blob",
 * see classifier.ts). Two blob maps are preallocated (BPF_F_MMAPABLE, mapped into this
 * process); a swap writes the bytes the new set uses, and zeroes what that blob's previous
 * set used beyond them, into the idle one through its mapping, and points `acl_blobs[0]`
 * (an array of maps) at it. Blob maps without the flag (pinned by an older version) are
 * written whole with one BPF_MAP_UPDATE instead. The program reads that slot once per
 * packet, so every packet is judged by the old or the new set, never a mix. The kernel
 * returns from that update only after every program that could still see the old blob
 * finished (synchronize_rcu), so the old blob and the counter slots of removed rules can
 * be reused by the next swap right away.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { bytes, struct, u32, u64 } from '../../core/codecs.js';
import { BpfMap, possibleCpus } from '../../core/map.js';
import { bpfObjectPath, native, openPinnedAs } from '../../core/native.js';
import { checkInterface, netnsPath, type NetnsRef } from '../../core/netns.js';
import { BpfObject } from '../../core/object.js';
import { BpfProgram, XdpLink, XdpProgram, type TestRunOptions, type TestRunResult, type XdpMode } from '../../core/program.js';
import { RingBuffer, type RingBufferLoss } from '../../core/ringbuf.js';
import { compileBlob, type CompileOptions, type TreeStats } from './classifier.js';
import { rawAclEventCodec, toAclEvent, type AclEvent, type RawAclEvent } from './events.js';
import { SlotOwners } from './owners.js';
import {
  ACL_STATS, BLOB_MAGIC, BLOB_VERSION, FLAG_DEFAULT_DENY, FLAG_EVENTS_DEFAULT, FLAG_NO_CACHE, FLAG_NO_EVENTS, H_CREATED_HI, H_CREATED_LO,
  H_FLAGS, H_GEN, H_INTERVAL_MS, H_MAGIC, H_RULES, H_SRC_LEN, H_SRC_OFF, H_USED, H_VERSION, HDR_WORDS, MAX_BLOB_BYTES,
  type AclStatName,
} from './layout.js';
import { expandRules, normalizeRules, type AclAction, type AclRule, type NormalizedRule } from './rules.js';

export type AclDefaultAction = 'allow' | 'deny';

export interface AclFirewallOptions {
  /** Verdict for packets no rule matches. Default 'allow' (coexistence: the stack's own rules still apply). */
  defaultAction?: AclDefaultAction;
  /** Rules installed before the program is attached (no unprotected moment). */
  rules?: readonly AclRule[];
  /**
   * Capacity in rules (default 10,000; at most 200,000). Picks the rule-set size the
   * program is built for (two of them are allocated in the kernel and mapped into this
   * process; a swap writes the part of one the new set uses): up to 2,048 rules 1 MiB,
   * 16,384 8 MiB, 65,536 32 MiB, above 64 MiB.
   */
  maxRules?: number;
  /** XDP mode: 'native' (default), 'generic' or 'auto'. */
  mode?: XdpMode;
  /** Network namespace of the interfaces (name under /run/netns or a path). */
  netns?: NetnsRef;
  /**
   * A directory on a BPF filesystem (e.g. /sys/fs/bpf/myfw). The program, its links and
   * maps are pinned there, so the firewall keeps running when this process exits; a
   * later attach() with the same pin adopts it.
   */
  pin?: string;
  /** At most one event per flow and rule per this many ms (0: every packet). Default 1000. */
  eventIntervalMs?: number;
  /** Report packets dropped by a 'deny' default action too (ruleId null). Default true. */
  defaultDenyEvents?: boolean;
  /**
   * Report deny/log decisions at all. Default true. false: counters only, no flow-table
   * lookup per reported packet (the fastest drop path).
   */
  events?: boolean;
  /**
   * Remember the verdict of the last flows each CPU saw (256 per CPU, by hash of the
   * whole classification key) and skip the tree walk for their next packets. Entries are
   * tied to the rule set's generation, so a swap invalidates them all at once. Default
   * true. false: every packet walks the trees (the worst case, e.g. for a flood whose
   * every packet is a new flow, where the cache only adds its lookup).
   */
  verdictCache?: boolean;
  /** Ring buffer size in bytes (power of two, >= 4096). Default 1 MiB (~13,000 events). */
  ringBytes?: number;
  /** Flows the event rate limiter remembers (LRU). Default 65,536. */
  flowTableSize?: number;
  /** Classifier tuning (see classifier.ts). */
  compile?: CompileOptions;
}

export interface AclCounter {
  packets: number;
  bytes: number;
}

export interface AclRuleStats extends AclCounter {
  id: string;
  action: AclAction;
}

export interface AclStats {
  /** Generation of the rule set in force (one more per swap). */
  generation: number;
  defaultAction: AclDefaultAction;
  /** Per rule, in rule order. */
  rules: AclRuleStats[];
  /** Packets no rule matched, by the default action taken. */
  default: { allowed: AclCounter; denied: AclCounter };
  /** Not IPv4/IPv6 (ARP, ...): always passed. */
  nonIp: AclCounter;
  /** L4 header cut short, or IPv6 extension headers not walkable: matched as "no L4". */
  unparsed: AclCounter;
  /** Non-first fragments: matched as "no L4". */
  fragments: AclCounter;
  /** Broken IPv4/IPv6 header: the default action applied. */
  malformed: AclCounter;
  /** Packets seen while no rule set was installed (passed). */
  noRules: AclCounter;
  /** How IP packets were classified: from the per-CPU verdict cache or by walking the trees. */
  classified: { cached: number; walked: number };
  events: {
    /** Events written to the ring by the program. */
    emitted: number;
    /** Packets not reported because their flow had an event within the interval (counted in the next event). */
    suppressed: number;
    /** Events that did not fit in the ring (consumer too slow or not reading). */
    lost: number;
    /** Events this process read from the ring. */
    delivered: number;
  };
}

/** Shape of the compiled rule set, for diagnostics and benchmarks. */
export interface AclCompileInfo {
  rules: number;
  records: number;
  /** Bytes of the blob in use, and the blob size. */
  bytes: number;
  capacityBytes: number;
  trees: TreeStats[];
  compileMs: number;
}

export interface AclFirewallEvents {
  deny: [event: AclEvent];
  log: [event: AclEvent];
  /** Every event (deny and log). */
  event: [event: AclEvent];
  lost: [loss: RingBufferLoss];
  error: [err: Error];
  /** After close(). */
  close: [];
  newListener: [event: string | symbol, listener: (...args: any[]) => void];
  removeListener: [event: string | symbol, listener: (...args: any[]) => void];
}

interface Variant {
  name: string;
  bytes: number;
  maxRules: number;
}
const VARIANTS: readonly Variant[] = [
  { name: 'acl_s', bytes: 1 << 20, maxRules: 2048 },
  { name: 'acl', bytes: 8 << 20, maxRules: 16384 },
  { name: 'acl_l', bytes: 32 << 20, maxRules: 65536 },
  { name: 'acl_xl', bytes: MAX_BLOB_BYTES, maxRules: 200000 }, // bpf/acl_xl.bpf.c
];
export const ACL_MAX_RULES = VARIANTS[VARIANTS.length - 1]!.maxRules;

const PIN = {
  prog: 'prog',
  outer: 'blobs',
  a: 'blob_a',
  b: 'blob_b',
  ruleStats: 'rule_stats',
  stats: 'stats',
  flows: 'flows',
  events: 'events',
  eventsLost: 'events_lost',
  link: (ifindex: number) => `link_${ifindex}`,
} as const;

const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });
type Counter = { packets: bigint; bytes: bigint };
type CounterMap = BpfMap<number, Counter[], number, Counter[] | Counter>;
type BlobMap = BpfMap<number, Buffer, number, Uint8Array>;
const SOURCE_VERSION = 1;
const EVENT_NAMES = new Set<string | symbol>(['deny', 'log', 'event']);
/** Events queued for an async iterator before the ring is paused. */
const ITER_HIGH_WATER = 65536;

interface Settings {
  defaultAction: AclDefaultAction;
  eventIntervalMs: number;
  defaultDenyEvents: boolean;
  events: boolean;
  verdictCache: boolean;
}

/** What the blob's JSON source holds (for adoption). */
interface Source extends Settings {
  v: number;
  gen: number;
  rules: AclRule[];
  slots: number[];
  tags: number[];
}

interface Handles {
  obj: BpfObject | undefined;
  prog: XdpProgram;
  links: Map<number, XdpLink>;
  outer: BpfMap<number, number>;
  blobs: [BlobMap, BlobMap];
  ruleStats: CounterMap;
  stats: CounterMap;
  flows: BpfMap<Buffer, Buffer, Uint8Array, Uint8Array>;
  rb: RingBuffer<RawAclEvent>;
}

interface Prepared {
  norm: NormalizedRule[];
  settings: Settings;
  slots: Uint32Array;
  tags: Uint32Array;
  fresh: number[]; // slots taken from the free list
  gen: number;
  used: number; // bytes of the blob in use
  words: Uint32Array; // the compiled blob (its header as compiled)
  header: Uint32Array; // the first HDR_WORDS words, header fields filled in
  json: string; // the rule set's source (JSON), at word words.length: #fill encodes it in place
  jsonBytes: number; // its length in UTF-8
  byId: Map<string, number>; // id -> index in norm
  info: AclCompileInfo;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) invalidArgument(field, `must be an integer in ${min}..${max}, got ${String(v)}`);
  return v;
}

function sum(c: Counter[] | undefined): AclCounter {
  let p = 0n;
  let b = 0n;
  for (const x of c ?? []) {
    p += x.packets;
    b += x.bytes;
  }
  return { packets: Number(p), bytes: Number(b) };
}

const DEFAULT_SETTINGS: Settings = { defaultAction: 'allow', eventIntervalMs: 1000, defaultDenyEvents: true, events: true, verdictCache: true };

function checkSettings(o: Partial<Settings>, base: Settings): Settings {
  const s = { ...base };
  if (o.defaultAction !== undefined) {
    if (o.defaultAction !== 'allow' && o.defaultAction !== 'deny') invalidArgument('defaultAction', `must be 'allow' or 'deny', got ${String(o.defaultAction)}`);
    s.defaultAction = o.defaultAction;
  }
  if (o.eventIntervalMs !== undefined) s.eventIntervalMs = int(o.eventIntervalMs, 'eventIntervalMs', 0, 3_600_000);
  for (const k of ['defaultDenyEvents', 'events', 'verdictCache'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'boolean') invalidArgument(k, 'must be true or false');
    s[k] = o[k];
  }
  return s;
}

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
  readonly #blobBytes: number;
  readonly #ifnames = new Map<number, string>();
  #buf: Buffer | undefined; // staging buffer of the whole-value write (blobs not mmapable)
  #bufUsed = 0; // bytes of #buf the last set written into it used
  #mmapable: boolean | undefined; // blobs are written through mappings (undefined: not tried yet)
  #blobUsed: [number, number] = [0, 0]; // bytes of each blob map its last written set used
  #active = 0; // index of the blob map in force
  #gen = 0;
  #settings: Settings = { ...DEFAULT_SETTINGS };
  #norm: NormalizedRule[] = [];
  #slots: Uint32Array = new Uint32Array(0); // slot of rule i
  #tags: Uint32Array = new Uint32Array(0);
  #slotById = new Map<string, number>(); // id -> index in #norm/#slots/#tags
  #free: number[] = [];
  #owners: SlotOwners; // (generation, slot) -> rule id, for events
  #compileOpts: CompileOptions;
  #lastInfo: AclCompileInfo | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #monoToWallMs: number;
  #listening = false;
  #iterators = new Set<{ queue: AclEvent[]; wake: (() => void) | undefined }>();
  #delivered = 0;

  private constructor(init: {
    ifindexes: number[]; pin: string | undefined; maxRules: number; adopted: boolean; variant: Variant; ns: string | undefined;
    compile: CompileOptions;
  }) {
    super({ captureRejections: false });
    this.ifindexes = init.ifindexes;
    this.pin = init.pin;
    this.maxRules = init.maxRules;
    this.adopted = init.adopted;
    this.variant = init.variant.name;
    this.#blobBytes = init.variant.bytes;
    this.#ns = init.ns;
    this.#compileOpts = init.compile;
    this.#owners = new SlotOwners(Math.max(4096, 2 * init.maxRules));
    this.#free = [];
    for (let s = 2 * init.maxRules - 1; s >= 0; s--) this.#free.push(s);
    const hr = process.hrtime.bigint();
    this.#monoToWallMs = Date.now() - Number(hr / 1000n) / 1000;
    this.on('newListener', (ev) => {
      if (EVENT_NAMES.has(ev)) queueMicrotask(() => this.#updateListening());
      if (ev === 'lost') queueMicrotask(() => this.#forwardLost());
    });
    this.on('removeListener', (ev) => {
      if (EVENT_NAMES.has(ev)) this.#updateListening();
    });
  }

  /**
   * Attaches the firewall to one or more interfaces, or adopts the firewall pinned at
   * `opts.pin` by an earlier process (its rules keep being enforced; `rules` and the
   * other settings, when given, then replace them atomically).
   */
  static async attach(ifaces: string | number | readonly (string | number)[], opts: AclFirewallOptions = {}): Promise<AclFirewall> {
    if (typeof opts !== 'object' || opts === null) invalidArgument('opts', 'must be an object');
    const list = Array.isArray(ifaces) ? [...ifaces] : [ifaces as string | number];
    if (list.length === 0) invalidArgument('iface', 'needs at least one interface');
    for (const i of list) checkInterface(i, 'iface');
    const ns = netnsPath(opts.netns);
    const mode = opts.mode ?? 'native';
    if (!['native', 'generic', 'auto'].includes(mode)) invalidArgument('mode', `must be 'native', 'generic' or 'auto', got ${String(mode)}`);
    const maxRules = opts.maxRules === undefined ? undefined : int(opts.maxRules, 'maxRules', 1, ACL_MAX_RULES);
    const ringBytes = opts.ringBytes ?? 1 << 20;
    if (!Number.isInteger(ringBytes) || ringBytes < 4096 || ringBytes > 1 << 30 || (ringBytes & (ringBytes - 1)) !== 0) {
      invalidArgument('ringBytes', `must be a power of two in 4096..2^30, got ${String(ringBytes)}`);
    }
    const flowTableSize = int(opts.flowTableSize ?? 65536, 'flowTableSize', 1, 1 << 24);
    const settings = checkSettings(opts, DEFAULT_SETTINGS);
    if (opts.rules !== undefined && !Array.isArray(opts.rules)) invalidArgument('rules', 'must be an array of rules');
    if (opts.pin !== undefined && (typeof opts.pin !== 'string' || !opts.pin.startsWith('/'))) invalidArgument('pin', 'must be an absolute directory path on a BPF filesystem');
    const ifindexes = list.map((i) => native().ifIndex(i, ns));
    const names = new Map<number, string>();
    list.forEach((i, k) => typeof i === 'string' && names.set(ifindexes[k]!, i));
    if (opts.pin !== undefined && existsSync(join(opts.pin, PIN.outer))) {
      return AclFirewall.#adopt(ifindexes, names, ns, mode, opts, maxRules);
    }
    const cap = maxRules ?? 10_000;
    const variant = VARIANTS.find((v) => v.maxRules >= cap)!;
    const fw = new AclFirewall({ ifindexes, pin: opts.pin, maxRules: cap, adopted: false, variant, ns, compile: opts.compile ?? {} });
    for (const [k, v] of names) fw.#ifnames.set(k, v);
    // validate and compile the first rule set before the kernel sees anything
    const first = await fw.#prepare(opts.rules ?? [], settings);
    await fw.#install(variant, first, { mode, ringBytes, flowTableSize });
    return fw;
  }

  async #install(variant: Variant, first: Prepared, o: { mode: XdpMode; ringBytes: number; flowTableSize: number }): Promise<void> {
    const obj = BpfObject.open(bpfObjectPath(variant.name), {
      globals: { acl_nr_cpus: possibleCpus() },
      maps: {
        acl_rule_stats: { maxEntries: 2 * this.maxRules },
        acl_flows: { maxEntries: o.flowTableSize },
        acl_events: { maxEntries: o.ringBytes },
      },
    });
    const opened: { close(): void }[] = [];
    const pinned: string[] = [];
    const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
    try {
      await obj.load();
      const h: Handles = {
        obj,
        prog: keep(obj.xdpProgram('xdp_acl')),
        links: new Map(),
        outer: keep(obj.map('acl_blobs', { key: u32, value: u32 })),
        blobs: [keep(obj.map('acl_blob_a', { key: u32, value: bytes(variant.bytes) })), keep(obj.map('acl_blob_b', { key: u32, value: bytes(variant.bytes) }))],
        ruleStats: keep(obj.perCpuMap('acl_rule_stats', { key: u32, value: counterCodec })),
        stats: keep(obj.perCpuMap('acl_stats', { key: u32, value: counterCodec })),
        flows: keep(obj.map('acl_flows', { key: bytes(48), value: bytes(24) })),
        rb: keep(obj.ringBuffer('acl_events', rawAclEventCodec, { batchSize: 1024 })),
      };
      this.#h = h;
      await this.#commit(first);
      if (this.pin) {
        mkdirSync(this.pin, { recursive: true });
        const pinAt = (name: string, x: { pin(p: string): void }) => {
          const p = join(this.pin!, name);
          x.pin(p);
          pinned.push(p);
        };
        pinAt(PIN.prog, h.prog);
        pinAt(PIN.outer, h.outer);
        pinAt(PIN.a, h.blobs[0]);
        pinAt(PIN.b, h.blobs[1]);
        pinAt(PIN.ruleStats, h.ruleStats);
        pinAt(PIN.stats, h.stats);
        pinAt(PIN.flows, h.flows);
        for (const [name, map] of [[PIN.events, 'acl_events'], [PIN.eventsLost, 'acl_events_lost']] as const) {
          const nh = obj.nativeMap(map);
          try {
            pinAt(name, nh);
          } finally {
            nh.close();
          }
        }
      }
      for (const ifindex of this.ifindexes) {
        const link = h.prog.attach(ifindex, { mode: o.mode, ...(this.#ns ? { netns: this.#ns } : {}) });
        h.links.set(ifindex, link);
        opened.push(link);
        if (this.pin) {
          const p = join(this.pin, PIN.link(ifindex));
          link.pin(p);
          pinned.push(p);
        }
      }
    } catch (e) {
      for (const p of pinned.reverse()) {
        try {
          unlinkSync(p);
        } catch {
          /* best effort */
        }
      }
      for (const x of opened.reverse()) x.close();
      obj.close();
      this.#h = undefined;
      throw e;
    }
  }

  static async #adopt(
    ifindexes: number[], names: Map<number, string>, ns: string | undefined, mode: XdpMode, opts: AclFirewallOptions, maxRules: number | undefined,
  ): Promise<AclFirewall> {
    const dir = opts.pin!;
    const opened: { close(): void }[] = [];
    const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
    const created: string[] = [];
    try {
      for (const n of [PIN.prog, PIN.outer, PIN.a, PIN.b, PIN.ruleStats, PIN.stats, PIN.flows, PIN.events, PIN.eventsLost]) {
        if (!existsSync(join(dir, n))) {
          throw new BpfkitError('ERR_NOT_FOUND', `pin: ${dir} holds an incomplete firewall (no '${n}'); remove the directory to start afresh`, { field: 'pin' });
        }
      }
      const probe = openPinnedAs(join(dir, PIN.a), 'map');
      const blobBytes = probe.info().valueSize;
      probe.close();
      const variant = VARIANTS.find((v) => v.bytes === blobBytes);
      if (!variant) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${dir}: rule-set maps of ${blobBytes} bytes are not from this version of bpfkit`, { field: 'pin' });
      const blobCodec = { key: u32, value: bytes(blobBytes) };
      const h: Handles = {
        obj: undefined,
        prog: keep(BpfProgram.openPinned(join(dir, PIN.prog))) as XdpProgram,
        links: new Map(),
        outer: keep(BpfMap.openPinned(join(dir, PIN.outer), { key: u32, value: u32 })),
        blobs: [keep(BpfMap.openPinned(join(dir, PIN.a), blobCodec)), keep(BpfMap.openPinned(join(dir, PIN.b), blobCodec))],
        ruleStats: keep(BpfMap.openPinnedPerCpu(join(dir, PIN.ruleStats), { key: u32, value: counterCodec })),
        stats: keep(BpfMap.openPinnedPerCpu(join(dir, PIN.stats), { key: u32, value: counterCodec })),
        flows: keep(BpfMap.openPinned(join(dir, PIN.flows), { key: bytes(48), value: bytes(24) })),
        rb: keep(RingBuffer.openPinned(join(dir, PIN.events), rawAclEventCodec, { batchSize: 1024, lostPath: join(dir, PIN.eventsLost) })),
      };
      if (!(h.prog instanceof XdpProgram)) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${join(dir, PIN.prog)} is not an XDP program`, { field: 'pin' });
      const cap = h.ruleStats.info.maxEntries / 2;
      if (maxRules !== undefined && maxRules !== cap) {
        throw new BpfkitError('ERR_INVALID_ARGUMENT', `maxRules: the pinned firewall was built for ${cap} rules; pass ${cap} or leave maxRules out`, { field: 'maxRules' });
      }
      // which blob is in force
      const activeId = h.outer.get(0);
      const ids = h.blobs.map((b) => b.info.id);
      const active = ids.indexOf(activeId ?? -1);
      if (active < 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${dir}: no rule set in force`, { field: 'pin' });
      const fw = new AclFirewall({ ifindexes, pin: dir, maxRules: cap, adopted: true, variant, ns, compile: opts.compile ?? {} });
      for (const [k, v] of names) fw.#ifnames.set(k, v);
      fw.#h = h;
      fw.#active = active;
      // how far an earlier process wrote either blob is not known: the first write of each zeroes it whole
      fw.#blobUsed = [blobBytes, blobBytes];
      fw.#restore(fw.#mapping(h, active) ?? h.blobs[active]!.get(0)!);
      for (const ifindex of ifindexes) {
        const p = join(dir, PIN.link(ifindex));
        let link: XdpLink;
        if (existsSync(p)) {
          link = XdpLink.openPinned(p, ns ? { netns: ns } : {});
        } else {
          link = h.prog.attach(ifindex, { mode, ...(ns ? { netns: ns } : {}) });
          link.pin(p);
          created.push(p);
        }
        h.links.set(ifindex, link);
        opened.push(link);
      }
      const changes: Partial<Settings> = {};
      if (opts.defaultAction !== undefined) changes.defaultAction = opts.defaultAction;
      if (opts.eventIntervalMs !== undefined) changes.eventIntervalMs = opts.eventIntervalMs;
      if (opts.defaultDenyEvents !== undefined) changes.defaultDenyEvents = opts.defaultDenyEvents;
      if (opts.events !== undefined) changes.events = opts.events;
      if (opts.verdictCache !== undefined) changes.verdictCache = opts.verdictCache;
      if (opts.rules !== undefined || Object.keys(changes).length > 0) {
        const settings = checkSettings(changes, fw.#settings);
        await fw.#commit(await fw.#prepare(opts.rules ?? fw.#ownRules(), settings));
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
      for (const x of opened.reverse()) x.close();
      throw e;
    }
  }

  /** Reads the rule set, settings and slot assignments back from a blob (adoption). */
  #restore(blob: Buffer): void {
    const w = (i: number) => blob.readUInt32LE(4 * i);
    if (w(H_MAGIC) !== BLOB_MAGIC || w(H_VERSION) !== BLOB_VERSION) {
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: the rule set in force has an unknown format (magic ${w(H_MAGIC).toString(16)}, version ${w(H_VERSION)})`, { field: 'pin' });
    }
    const off = w(H_SRC_OFF) * 4;
    const src = JSON.parse(blob.toString('utf8', off, off + w(H_SRC_LEN))) as Source;
    if (src.v !== SOURCE_VERSION) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: rule-set source version ${src.v} is not supported`, { field: 'pin' });
    this.#settings = {
      defaultAction: src.defaultAction, eventIntervalMs: src.eventIntervalMs, defaultDenyEvents: src.defaultDenyEvents, events: src.events ?? true,
      verdictCache: src.verdictCache ?? true,
    };
    this.#gen = src.gen;
    this.#norm = normalizeRules(src.rules, { capacity: this.maxRules, resolveIface: this.#resolveIface });
    this.#slots = Uint32Array.from(src.slots);
    this.#tags = Uint32Array.from(src.tags);
    this.#slotById.clear();
    const used = new Set<number>();
    this.#norm.forEach((r, i) => {
      this.#slotById.set(r.id, i);
      used.add(src.slots[i]!);
      this.#owners.own(src.slots[i]!, src.tags[i]!, r.id);
    });
    // events of older generations may wait in the ring: named when the set in force covers them
    this.#owners.flipped(src.gen, this.#live().rb.stats().pendingBytes);
    this.#free = [];
    for (let s = 2 * this.maxRules - 1; s >= 0; s--) if (!used.has(s)) this.#free.push(s);
  }

  #resolveIface = (v: string | number): number => native().ifIndex(v, this.#ns);

  // ---- rule sets ---------------------------------------------------------------------

  /** Validates and compiles a rule set: the words, header and source #commit writes (no kernel change). */
  async #prepare(rules: readonly AclRule[] | unknown, settings: Settings): Promise<Prepared> {
    const t0 = performance.now();
    // rules unchanged since the set in force (same id, same canonical form) are not
    // validated again; `at`: each rule's position in the set in force (-1: a new id)
    const previous = { ids: this.#slotById, rules: this.#norm };
    const byId = new Map<string, number>();
    const at = new Int32Array(Array.isArray(rules) ? Math.min(rules.length, this.maxRules) : 0);
    const norm = normalizeRules(rules, { capacity: this.maxRules, resolveIface: this.#resolveIface, previous, ids: byId, at });
    const gen = this.#gen + 1;
    const slots = new Uint32Array(norm.length);
    const tags = new Uint32Array(norm.length);
    const fresh: number[] = [];
    let freeAt = this.#free.length;
    for (let i = 0; i < norm.length; i++) {
      const have = at[i]!;
      if (have >= 0) {
        slots[i] = this.#slots[have]!;
        tags[i] = this.#tags[have]!;
      } else {
        if (freeAt === 0) throw new BpfkitError('ERR_MAP_FULL', 'no free rule counter slot (internal error)', { field: 'rules' });
        const s = this.#free[--freeAt]!;
        fresh.push(s);
        slots[i] = s;
        tags[i] = gen;
      }
    }
    const { v4, v6 } = expandRules(norm, slots, tags);
    // the trees are built on the thread pool; the JSON source meanwhile, on this thread
    const compiling = compileBlob(v4, v6, this.#compileOpts, this.#blobBytes);
    compiling.catch(() => undefined); // awaited below; not unhandled if the JSON throws first
    const source: Source = {
      v: SOURCE_VERSION, gen, ...settings, rules: norm.map((r) => r.rule), slots: Array.from(slots), tags: Array.from(tags),
    };
    const json = JSON.stringify(source);
    const jsonBytes = Buffer.byteLength(json, 'utf8');
    const compiled = await compiling.catch((e: unknown) => {
      if (!(e instanceof BpfkitError) || e.code !== 'ERR_MAP_FULL') throw e;
      throw new BpfkitError('ERR_MAP_FULL', `${e.message}: the firewall's rule-set maps hold ${this.#blobBytes} (variant ${this.variant}); attach with a larger maxRules`, {
        field: 'rules', details: e.details,
      });
    });
    const words = compiled.words;
    const srcOff = words.length;
    const used = srcOff * 4 + jsonBytes;
    if (used > this.#blobBytes) {
      throw new BpfkitError(
        'ERR_MAP_FULL',
        `rules: the compiled rule set needs ${used} bytes, the firewall's rule-set maps hold ${this.#blobBytes} (variant ${this.variant}); attach with a larger maxRules`,
        { field: 'rules', details: { needed: used, capacity: this.#blobBytes, trees: compiled.trees } },
      );
    }
    // nothing is written to the kernel here: #commit writes the idle blob
    const header = words.slice(0, HDR_WORDS);
    const hw = (i: number, v: number) => (header[i] = v >>> 0);
    hw(H_USED, Math.ceil(used / 4));
    hw(H_GEN, gen);
    hw(H_FLAGS, (settings.defaultAction === 'deny' ? FLAG_DEFAULT_DENY : 0) | (settings.defaultDenyEvents ? FLAG_EVENTS_DEFAULT : 0) | (settings.events ? 0 : FLAG_NO_EVENTS) | (settings.verdictCache ? 0 : FLAG_NO_CACHE));
    hw(H_INTERVAL_MS, settings.eventIntervalMs);
    hw(H_SRC_OFF, srcOff);
    hw(H_SRC_LEN, jsonBytes);
    hw(H_RULES, norm.length);
    const now = Date.now();
    hw(H_CREATED_LO, now % 2 ** 32);
    hw(H_CREATED_HI, Math.floor(now / 2 ** 32));
    return {
      norm, settings, slots, tags, fresh, gen, used, words, header, json, jsonBytes, byId,
      info: {
        rules: norm.length, records: v4.count + v6.count, bytes: used, capacityBytes: this.#blobBytes,
        trees: compiled.trees, compileMs: performance.now() - t0,
      },
    };
  }

  /** Writes the prepared blob into the idle map and makes it the one in force. */
  async #commit(p: Prepared): Promise<void> {
    const h = this.#live();
    // slots new to this set: nothing counts in them any more (the previous swap's
    // flip waited for running programs), so zero them before the new set uses them
    if (p.fresh.length) {
      const keys = Buffer.alloc(4 * p.fresh.length);
      p.fresh.forEach((s, i) => keys.writeUInt32LE(s, 4 * i));
      await h.ruleStats.handle.updateBatch(keys, Buffer.alloc(h.ruleStats.value.size * p.fresh.length), p.fresh.length, 0);
    }
    // the idle blob: no program reads it since the previous flip returned (it waited for
    // every program that could still see it)
    const idle = 1 - this.#active;
    const mem = this.#mapping(h, idle);
    if (mem) {
      AclFirewall.#fill(mem, p, this.#blobUsed[idle]);
      this.#blobUsed[idle] = p.used;
    } else {
      if (!this.#buf) {
        this.#buf = Buffer.alloc(this.#blobBytes);
        this.#bufUsed = 0;
      }
      AclFirewall.#fill(this.#buf, p, this.#bufUsed);
      this.#bufUsed = p.used;
      await h.blobs[idle]!.handle.updateBatch(Buffer.alloc(4), this.#buf, 1, 0);
    }
    // the new ids' slots are theirs from this generation on: recorded before the flip,
    // since the kernel judges packets with the new set while the flip waits
    for (let i = 0; i < p.norm.length; i++) {
      if (p.tags[i] === p.gen) this.#owners.own(p.slots[i]!, p.gen, p.norm[i]!.id);
    }
    const flipped = this.#flip(h.outer, h.blobs[idle]!.fd);
    flipped.catch(() => undefined); // awaited below
    // bookkeeping, worked out while the flip waits for running programs and applied once
    // it returned: the old set is gone from every CPU then, its removed rules' slots are
    // free. #prepare took the fresh slots from the end of #free (changes are serialised).
    const free = this.#free.slice(0, this.#free.length - p.fresh.length);
    const inUse = new Uint8Array(2 * this.maxRules);
    for (let i = 0; i < p.slots.length; i++) inUse[p.slots[i]!] = 1;
    for (let i = 0; i < this.#slots.length; i++) if (!inUse[this.#slots[i]!]) free.push(this.#slots[i]!);
    try {
      await flipped;
    } catch (e) {
      this.#owners.abort();
      throw e;
    }
    this.#owners.flipped(p.gen, h.rb.stats().pendingBytes);
    this.#active = idle;
    this.#free = free;
    this.#slotById = p.byId;
    this.#norm = p.norm;
    this.#slots = p.slots;
    this.#tags = p.tags;
    this.#settings = p.settings;
    this.#gen = p.gen;
    this.#lastInfo = p.info;
  }

  /**
   * Blob `i` mapped into this process, or undefined when the blob maps were created
   * without BPF_F_MMAPABLE (a pinned firewall from an older version): then swaps write the
   * whole value with BPF_MAP_UPDATE.
   */
  #mapping(h: Handles, i: number): Buffer | undefined {
    if (this.#mmapable === false) return undefined;
    try {
      const mem = h.blobs[i]!.mmap();
      this.#mmapable = true;
      return mem;
    } catch (e) {
      if (!(e instanceof BpfkitError) || e.code !== 'ERR_UNSUPPORTED') throw e;
      this.#mmapable = false;
      return undefined;
    }
  }

  /** Writes a prepared set into a blob's bytes, zeroing what `prevUsed` covered beyond its end. */
  static #fill(dst: Buffer, p: Prepared, prevUsed: number): void {
    const w = new Uint32Array(dst.buffer, dst.byteOffset, p.words.length);
    w.set(p.words);
    w.set(p.header);
    dst.write(p.json, p.words.length * 4, p.jsonBytes, 'utf8');
    if (prevUsed > p.used) dst.fill(0, p.used, prevUsed);
  }

  /** acl_blobs[0] = fd, off the JS thread when the kernel supports batch updates of it. */
  async #flip(outer: BpfMap<number, number>, fd: number): Promise<void> {
    const k = Buffer.alloc(4);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(fd);
    try {
      await outer.handle.updateBatch(k, v, 1, 0);
    } catch (e) {
      if (!(e instanceof BpfkitError) || (e.code !== 'ERR_UNSUPPORTED' && e.code !== 'ERR_INVALID_ARGUMENT')) throw e;
      outer.set(0, fd);
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
      const p = await this.#prepare(rules, this.#settings);
      await this.#commit(p);
      return p.info;
    });
  }

  /** Adds a rule (at the end, or before/after the rule with the given id). Atomic. */
  addRule(rule: AclRule, where: { before?: string; after?: string } = {}): Promise<AclCompileInfo> {
    return this.#serial(async () => {
      const list = this.#ownRules();
      let at = list.length;
      if (where.before !== undefined || where.after !== undefined) {
        const ref = (where.before ?? where.after)!;
        const i = list.findIndex((r) => r.id === ref);
        if (i < 0) throw new BpfkitError('ERR_NOT_FOUND', `${where.before !== undefined ? 'before' : 'after'}: no rule with id '${ref}'`, { field: where.before !== undefined ? 'before' : 'after' });
        at = where.before !== undefined ? i : i + 1;
      }
      list.splice(at, 0, rule);
      const p = await this.#prepare(list, this.#settings);
      await this.#commit(p);
      return p.info;
    });
  }

  /** Removes the rule with this id. Resolves false if there was none. Atomic. */
  removeRule(id: string): Promise<boolean> {
    return this.#serial(async () => {
      const list = this.#ownRules();
      const i = list.findIndex((r) => r.id === id);
      if (i < 0) return false;
      list.splice(i, 1);
      await this.#commit(await this.#prepare(list, this.#settings));
      return true;
    });
  }

  /** Replaces the rule with the same id, in place (its counters continue). Atomic. */
  updateRule(rule: AclRule): Promise<AclCompileInfo> {
    return this.#serial(async () => {
      const list = this.#ownRules();
      const id = (rule as { id?: unknown })?.id;
      const i = list.findIndex((r) => r.id === id);
      if (i < 0) throw new BpfkitError('ERR_NOT_FOUND', `id: no rule with id '${String(id)}'`, { field: 'id', ...(typeof id === 'string' ? { ruleId: id } : {}) });
      list[i] = rule;
      const p = await this.#prepare(list, this.#settings);
      await this.#commit(p);
      return p.info;
    });
  }

  /** Changes the default action / event settings (an atomic swap with the same rules). */
  configure(settings: { defaultAction?: AclDefaultAction; eventIntervalMs?: number; defaultDenyEvents?: boolean; events?: boolean; verdictCache?: boolean }): Promise<void> {
    return this.#serial(async () => {
      const s = checkSettings(settings, this.#settings);
      await this.#commit(await this.#prepare(this.#ownRules(), s));
    });
  }

  /** The rule set in force (canonical form: CIDRs normalised, ports as numbers or [from, to]). */
  rules(): AclRule[] {
    return this.#norm.map((r) => structuredClone(r.rule));
  }

  /**
   * The canonical rules in force, not copied: for building the next set inside this class
   * (#prepare takes them from the set in force without validating them again).
   */
  #ownRules(): AclRule[] {
    return this.#norm.map((r) => r.rule);
  }

  get defaultAction(): AclDefaultAction {
    return this.#settings.defaultAction;
  }
  get eventIntervalMs(): number {
    return this.#settings.eventIntervalMs;
  }
  /** Generation of the rule set in force. */
  get generation(): number {
    return this.#gen;
  }
  /** Shape and size of the last compiled rule set (undefined after adoption until a change). */
  get compileInfo(): AclCompileInfo | undefined {
    return this.#lastInfo;
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
  async stats(): Promise<AclStats> {
    const h = this.#live();
    const misc = new Map<AclStatName, AclCounter>();
    ACL_STATS.forEach((name, i) => misc.set(name, sum(h.stats.get(i))));
    const perSlot = new Map<number, Counter[]>();
    if (this.#norm.length > 64) {
      for (const [k, v] of await h.ruleStats.getBatch()) perSlot.set(k, v);
    } else {
      for (const s of this.#slots) perSlot.set(s, h.ruleStats.get(s) ?? []);
    }
    const rb = h.rb.stats();
    return {
      generation: this.#gen,
      defaultAction: this.#settings.defaultAction,
      rules: this.#norm.map((r, i) => ({ id: r.id, action: r.rule.action, ...sum(perSlot.get(this.#slots[i]!)) })),
      default: { allowed: misc.get('defaultAllow')!, denied: misc.get('defaultDeny')! },
      nonIp: misc.get('nonIp')!,
      unparsed: misc.get('unparsed')!,
      fragments: misc.get('fragments')!,
      malformed: misc.get('malformed')!,
      noRules: misc.get('noRules')!,
      classified: { cached: misc.get('cached')!.packets, walked: misc.get('walks')!.packets },
      events: {
        emitted: misc.get('events')!.packets,
        suppressed: misc.get('suppressed')!.packets,
        lost: rb.lost ?? 0,
        delivered: this.#delivered,
      },
    };
  }

  /** Packets and bytes of one rule (undefined if no rule has this id). */
  ruleStats(id: string): AclCounter | undefined {
    const i = this.#slotById.get(id);
    return i !== undefined ? sum(this.#live().ruleStats.get(this.#slots[i]!)) : undefined;
  }

  // ---- events ------------------------------------------------------------------------

  #onBatch = (batch: RawAclEvent[]): void => {
    // named first, then the owners no later event can need are released
    const resolve = this.#owners.resolve;
    const events = batch.map((raw) => toAclEvent(raw, resolve, this.#monoToWallMs));
    this.#owners.read(batch);
    for (const ev of events) {
      this.#delivered++;
      for (const it of this.#iterators) {
        it.queue.push(ev);
        const wake = it.wake;
        it.wake = undefined;
        wake?.();
      }
      this.emit('event', ev);
      this.emit(ev.action, ev);
    }
    for (const it of this.#iterators) if (it.queue.length >= ITER_HIGH_WATER) this.#h?.rb.pause();
  };

  #onRbError = (e: Error): void => {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  };

  #updateListening(): void {
    const h = this.#h;
    if (!h) return;
    const want = this.#iterators.size > 0 || [...EVENT_NAMES].some((n) => this.listenerCount(n as 'deny') > 0);
    if (want === this.#listening) return;
    this.#listening = want;
    if (want) {
      h.rb.on('batch', this.#onBatch);
      h.rb.on('error', this.#onRbError);
    } else {
      h.rb.off('batch', this.#onBatch);
      h.rb.off('error', this.#onRbError);
    }
  }

  #forwardLost(): void {
    const h = this.#h;
    if (!h || h.rb.listenerCount('lost') > 0) return;
    h.rb.on('lost', (l) => this.emit('lost', l));
  }

  /**
   * Events as an async iterator (deny and log). While the loop is slower than the
   * traffic, events wait in the kernel ring (and are counted as lost when it fills).
   */
  events(): AsyncIterableIterator<AclEvent> {
    const it = { queue: [] as AclEvent[], wake: undefined as (() => void) | undefined };
    let done = !this.#h;
    if (!done) {
      this.#iterators.add(it);
      this.#updateListening();
    }
    const finish = () => {
      done = true;
      this.#iterators.delete(it);
      this.#updateListening();
      it.wake?.();
    };
    this.once('close', finish);
    const self = this;
    return {
      async next(): Promise<IteratorResult<AclEvent>> {
        for (;;) {
          if (it.queue.length) {
            const v = it.queue.shift()!;
            if (it.queue.length < ITER_HIGH_WATER / 2 && self.#h?.rb.isPaused()) self.#h.rb.resume();
            return { value: v, done: false };
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((r) => (it.wake = r));
        }
      },
      async return(): Promise<IteratorResult<AclEvent>> {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<AclEvent> {
    return this.events();
  }

  /** Lets the process exit while events are being read. */
  unref(): this {
    this.#h?.rb.unref();
    return this;
  }

  // ---- lifetime ----------------------------------------------------------------------

  #live(): Handles {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', 'the firewall is closed');
    return this.#h;
  }

  get closed(): boolean {
    return this.#h === undefined;
  }

  /**
   * Releases this process's handles. Unpinned: the program detaches. Pinned: the firewall
   * keeps running with its current rules (another attach() with the same pin adopts it).
   */
  close(): void {
    const h = this.#h;
    if (!h) return;
    this.#h = undefined;
    this.#listening = false;
    h.rb.off('batch', this.#onBatch);
    h.rb.close();
    for (const l of h.links.values()) l.close();
    for (const m of [h.outer, ...h.blobs, h.ruleStats, h.stats, h.flows, h.prog]) m.close();
    h.obj?.close();
    this.#buf = undefined;
    for (const it of [...this.#iterators]) {
      this.#iterators.delete(it);
      const w = it.wake;
      it.wake = undefined;
      w?.();
    }
    this.emit('close');
  }

  /** Detaches from every interface and removes the pins (the firewall is gone). */
  detach(): void {
    const h = this.#live();
    for (const l of h.links.values()) l.detach();
    if (this.pin) removePins(this.pin);
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Removes a firewall's pins (and the directory when it is left empty). */
function removePins(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const ours = new Set<string>([PIN.prog, PIN.outer, PIN.a, PIN.b, PIN.ruleStats, PIN.stats, PIN.flows, PIN.events, PIN.eventsLost]);
  for (const n of names) {
    if (ours.has(n) || /^link_\d+$/.test(n)) {
      try {
        unlinkSync(join(dir, n));
      } catch {
        /* gone already */
      }
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* not empty (someone else's files) or gone */
  }
}
