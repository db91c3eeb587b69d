/**
 * The kernel side of an AclFirewall: loading the program and its maps, pinning them,
 * attaching to interfaces, adopting a pinned firewall, and removing the pins.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfkitError } from '../../core/errors.js';
import { bytes, struct, u32, u64 } from '../../core/codecs.js';
import { BpfMap, possibleCpus } from '../../core/maps/map.js';
import { bpfObjectPath } from '../../core/paths.js';
import { BpfObject, type BpfObjectOptions } from '../../core/object.js';
import { BpfProgram, XdpLink, XdpProgram, type XdpMode } from '../../core/programs/program.js';
import { RingBuffer } from '../../core/ringbuf.js';
import { rawAclEventCodec, type RawAclEvent } from './events.js';
import { VARIANTS, type Variant } from './options.js';
import { MappedRuleCounters, PerCpuRuleCounters, type RuleCounters } from './stats.js';
import { DoubleBuffer } from '../../core/maps/swap.js';

export const PIN = {
  prog: 'prog',
  outer: 'blobs',
  a: 'blob_a',
  b: 'blob_b',
  ruleCounters: 'rule_counters',
  /** The per-CPU rule counters of firewalls pinned before `rule_counters` (adopted as they are). */
  legacyRuleStats: 'rule_stats',
  stats: 'stats',
  flows: 'flows',
  events: 'events',
  eventsLost: 'events_lost',
  link: (ifindex: number) => `link_${ifindex}`,
} as const;

/** Pins every firewall has (and one of the rule counters' two). */
const PIN_NAMES = [PIN.prog, PIN.outer, PIN.a, PIN.b, PIN.stats, PIN.flows, PIN.events, PIN.eventsLost] as const;

/** Sets per CPU of the verdict cache and of the rate limiter's flow memory (ACL_VC_SETS, ACL_FM_SETS in bpf/acl/maps.h). */
const VC_SETS = 4096;
const FM_SETS = 4096;

const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });
export type Counter = { packets: bigint; bytes: bigint };
type CounterMap = BpfMap<number, Counter[], number, Counter[] | Counter>;
export type BlobMap = BpfMap<number, Buffer, number, Uint8Array>;

/** The open program, links and maps of a firewall. */
export interface Handles {
  obj: BpfObject | undefined;
  prog: XdpProgram;
  links: Map<number, XdpLink>;
  outer: BpfMap<number, number>;
  blobs: [BlobMap, BlobMap];
  ruleCounters: RuleCounters;
  stats: CounterMap;
  flows: BpfMap<Buffer, Buffer, Uint8Array, Uint8Array>;
  rb: RingBuffer<RawAclEvent>;
}

export interface InstallOptions {
  maxRules: number;
  mode: XdpMode;
  ringBytes: number;
  flowTableSize: number;
  pin: string | undefined;
  ifindexes: readonly number[];
  ns: string | undefined;
  /** Writes the first rule set (before anything is pinned or attached). */
  first: (h: Handles) => Promise<void>;
  /** As an XdpPipeline stage: the pipeline's maps and the stage flag (no interface to attach). */
  stage?: Required<Pick<BpfObjectOptions, 'maps' | 'globals'>>;
}

/** Loads the program variant, installs the first rule set, pins and attaches. Undoes all of it on failure. */
export async function install(variant: Variant, o: InstallOptions): Promise<Handles> {
  const cpus = possibleCpus();
  const obj = BpfObject.open(bpfObjectPath(variant.name), {
    globals: { acl_nr_cpus: cpus, acl_ctr_slots: 2 * o.maxRules, ...o.stage?.globals },
    maps: {
      // plain arrays used per CPU (bpfkit_cpu_elem in bpfkit_helpers.h): one region per possible CPU
      acl_rule_counters: { maxEntries: cpus * 2 * o.maxRules },
      acl_verdicts: { maxEntries: cpus * VC_SETS },
      acl_flow_cache: { maxEntries: cpus * FM_SETS },
      acl_flows: { maxEntries: o.flowTableSize },
      acl_events: { maxEntries: o.ringBytes },
      ...o.stage?.maps,
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
      ruleCounters: new MappedRuleCounters(keep(obj.map('acl_rule_counters', { key: u32, value: bytes(16) })), cpus),
      stats: keep(obj.perCpuMap('acl_stats', { key: u32, value: counterCodec })),
      flows: keep(obj.map('acl_flows', { key: bytes(48), value: bytes(24) })),
      rb: keep(obj.ringBuffer('acl_events', rawAclEventCodec, { batchSize: 1024 })),
    };
    await o.first(h);
    if (o.pin) {
      // pinned state is root's alone: directories bpfkit creates are 0700 (pins are 0600)
      mkdirSync(o.pin, { recursive: true, mode: 0o700 });
      const pinAt = (name: string, x: { pin(p: string): void }) => {
        const p = join(o.pin!, name);
        x.pin(p);
        pinned.push(p);
      };
      pinAt(PIN.prog, h.prog);
      pinAt(PIN.outer, h.outer);
      pinAt(PIN.a, h.blobs[0]);
      pinAt(PIN.b, h.blobs[1]);
      pinAt(PIN.ruleCounters, h.ruleCounters.map);
      pinAt(PIN.stats, h.stats);
      pinAt(PIN.flows, h.flows);
      for (const [name, map] of [
        [PIN.events, 'acl_events'],
        [PIN.eventsLost, 'acl_events_lost'],
      ] as const) {
        const nh = obj.nativeMap(map);
        try {
          pinAt(name, nh);
        } finally {
          nh.close();
        }
      }
    }
    for (const ifindex of o.ifindexes) {
      const link = h.prog.attach(ifindex, { mode: o.mode, ...(o.ns ? { netns: o.ns } : {}) });
      h.links.set(ifindex, link);
      opened.push(link);
      if (o.pin) {
        const p = join(o.pin, PIN.link(ifindex));
        link.pin(p);
        pinned.push(p);
      }
    }
    return h;
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
    throw e;
  }
}

/** True if `dir` holds a pinned firewall to adopt. */
export function isPinned(dir: string): boolean {
  return existsSync(join(dir, PIN.outer));
}

/** A pinned firewall's handles, opened (no link yet). */
export interface Adopted {
  h: Handles;
  variant: Variant;
  /** Its capacity in rules. */
  maxRules: number;
  /** Index of the blob map in force. */
  active: 0 | 1;
  /** Everything opened, for closing on failure. */
  opened: { close(): void }[];
}

/** Opens the maps and program pinned in `dir` and checks they make one firewall of this version. */
export function openPinned(dir: string, maxRules: number | undefined): Adopted {
  const opened: { close(): void }[] = [];
  const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
  try {
    for (const n of PIN_NAMES) {
      if (!existsSync(join(dir, n))) {
        throw new BpfkitError('ERR_NOT_FOUND', `pin: ${dir} holds an incomplete firewall (no '${n}'); remove the directory to start afresh`, { field: 'pin' });
      }
    }
    const blobBytes = BpfMap.pinnedInfo(join(dir, PIN.a)).valueSize;
    const variant = VARIANTS.find((v) => v.bytes === blobBytes);
    if (!variant)
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${dir}: rule-set maps of ${blobBytes} bytes are not from this version of bpfkit`, { field: 'pin' });
    const blobCodec = { key: u32, value: bytes(blobBytes) };
    const h: Handles = {
      obj: undefined,
      prog: keep(BpfProgram.openPinned(join(dir, PIN.prog))) as XdpProgram,
      links: new Map(),
      outer: keep(BpfMap.openPinned(join(dir, PIN.outer), { key: u32, value: u32 })),
      blobs: [keep(BpfMap.openPinned(join(dir, PIN.a), blobCodec)), keep(BpfMap.openPinned(join(dir, PIN.b), blobCodec))],
      ruleCounters: openRuleCounters(dir, keep),
      stats: keep(BpfMap.openPinnedPerCpu(join(dir, PIN.stats), { key: u32, value: counterCodec })),
      flows: keep(BpfMap.openPinned(join(dir, PIN.flows), { key: bytes(48), value: bytes(24) })),
      rb: keep(RingBuffer.openPinned(join(dir, PIN.events), rawAclEventCodec, { batchSize: 1024, lostPath: join(dir, PIN.eventsLost) })),
    };
    if (!(h.prog instanceof XdpProgram)) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${join(dir, PIN.prog)} is not an XDP program`, { field: 'pin' });
    const cap = h.ruleCounters.slots / 2;
    if (maxRules !== undefined && maxRules !== cap) {
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `maxRules: the pinned firewall was built for ${cap} rules; pass ${cap} or leave maxRules out`, {
        field: 'maxRules',
      });
    }
    // which blob is in force
    const active = DoubleBuffer.current(h.outer, [h.blobs[0]!, h.blobs[1]!]);
    if (active === undefined) throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${dir}: no rule set in force`, { field: 'pin' });
    return { h, variant, maxRules: cap, active, opened };
  } catch (e) {
    for (const x of opened.reverse()) x.close();
    throw e;
  }
}

/**
 * The pinned rule counters: `rule_counters` (a plain array of possible CPUs x slots), or
 * the per-CPU `rule_stats` of a firewall pinned by a version before it, whose program
 * counts there (adopted as it is: counters read and zeroed through system calls).
 */
function openRuleCounters(dir: string, keep: <T extends { close(): void }>(x: T) => T): RuleCounters {
  const cur = join(dir, PIN.ruleCounters);
  if (existsSync(cur)) {
    const cpus = possibleCpus();
    const info = BpfMap.pinnedInfo(cur);
    if (info.type !== 'array' || info.valueSize !== 16 || MappedRuleCounters.slotsOf(info.maxEntries, cpus) === undefined)
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `pin: ${cur} is not a firewall's rule counters of this version of bpfkit`, { field: 'pin' });
    return new MappedRuleCounters(keep(BpfMap.openPinned(cur, { key: u32, value: bytes(16) })), cpus);
  }
  const old = join(dir, PIN.legacyRuleStats);
  if (existsSync(old)) return new PerCpuRuleCounters(keep(BpfMap.openPinnedPerCpu(old, { key: u32, value: counterCodec })));
  throw new BpfkitError('ERR_NOT_FOUND', `pin: ${dir} holds an incomplete firewall (no '${PIN.ruleCounters}'); remove the directory to start afresh`, {
    field: 'pin',
  });
}

/**
 * Opens the pinned links of `ifindexes`, attaching (and pinning) where there is none.
 * The pins it creates go to `created` (for removal on a failure), links to `a.opened`.
 */
export function adoptLinks(a: Adopted, dir: string, ifindexes: readonly number[], mode: XdpMode, ns: string | undefined, created: string[]): void {
  for (const ifindex of ifindexes) {
    const p = join(dir, PIN.link(ifindex));
    let link: XdpLink;
    if (existsSync(p)) {
      link = XdpLink.openPinned(p, ns ? { netns: ns } : {});
    } else {
      link = a.h.prog.attach(ifindex, { mode, ...(ns ? { netns: ns } : {}) });
      try {
        link.pin(p);
      } catch (e) {
        link.close();
        throw e;
      }
      created.push(p);
    }
    a.h.links.set(ifindex, link);
    a.opened.push(link);
  }
}

/** Closes every handle (the program stays attached only where pinned). */
export function closeHandles(h: Handles): void {
  h.rb.close();
  for (const l of h.links.values()) l.close();
  for (const m of [h.outer, ...h.blobs, h.ruleCounters.map, h.stats, h.flows, h.prog]) m.close();
  h.obj?.close();
}

/** Removes a firewall's pins (and the directory when it is left empty). */
export function removePins(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const ours = new Set<string>([...PIN_NAMES, PIN.ruleCounters, PIN.legacyRuleStats]);
  for (const n of names) {
    if (ours.has(n) || /^link_\d+$/.test(n)) {
      try {
        unlinkSync(join(dir, n));
      } catch {
        /* best effort */
      }
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* not empty (someone else's files) or gone */
  }
}
