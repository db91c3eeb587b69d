/**
 * AclFirewall counters: per rule (by counter slot, see RuleCounters) and the misc counters
 * of enum acl_stat (per-CPU).
 */
import { CpuCounters } from '../../core/maps/cpu-counters.js';
import type { BpfMap } from '../../core/maps/map.js';
import type { Counter, Handles } from './install.js';
import { ACL_STATS, type AclStatName } from './layout.js';
import type { AclCounter, AclStats } from './options.js';
import { actionName } from './rules.js';
import type { RuleSets } from './swap.js';

/** Sums a per-CPU counter. */
export function sum(c: Counter[] | undefined): AclCounter {
  let p = 0n;
  let b = 0n;
  for (const x of c ?? []) {
    p += x.packets;
    b += x.bytes;
  }
  return { packets: Number(p), bytes: Number(b) };
}

/** Packets and bytes per counter slot, summed over the CPUs; zeroing of slots new to a rule set. */
export interface RuleCounters {
  /** Counter slots (2 x maxRules). */
  readonly slots: number;
  /** The map to pin. */
  readonly map: { pin(path: string): void; close(): void };
  read(slot: number): AclCounter;
  /** Counters of many slots (one pass for large sets). */
  readMany(slots: ArrayLike<number>): Promise<AclCounter[]>;
  /** Zeroes slots no program counts in (before the rule set that uses them is in force). */
  zero(slots: readonly number[]): Promise<void>;
}

type CounterMap = BpfMap<number, Counter[], number, Counter[] | Counter>;

/**
 * `acl_rule_counters` (bpf/acl/maps.h): a plain array of possible CPUs x `slots`
 * counters { packets, bytes }, CPU c's counter of slot s at c x slots + s, read and zeroed
 * through the map's mapping (CpuCounters: no system call, no torn value).
 */
export class MappedRuleCounters implements RuleCounters {
  readonly slots: number;
  readonly map: BpfMap<number, Buffer>;
  readonly #counters: CpuCounters;

  constructor(map: BpfMap<number, Buffer>, cpus: number) {
    this.map = map;
    this.#counters = new CpuCounters(map, cpus);
    this.slots = this.#counters.slots;
  }

  /** Slots per CPU of a map of `maxEntries` counters, or undefined if it cannot be one of ours (2 x maxRules a CPU). */
  static slotsOf(maxEntries: number, cpus: number): number | undefined {
    const n = CpuCounters.slotsOf(maxEntries, 16, cpus);
    return n !== undefined && n % 2 === 0 ? n : undefined;
  }

  read(slot: number): AclCounter {
    const c = this.#counters.read(slot);
    return { packets: Number(c.packets), bytes: Number(c.bytes) };
  }

  readMany(slots: ArrayLike<number>): Promise<AclCounter[]> {
    return Promise.resolve(Array.from(slots, (s) => this.read(s)));
  }

  zero(slots: readonly number[]): Promise<void> {
    this.#counters.zero(slots);
    return Promise.resolve();
  }
}

/**
 * `acl_rule_stats`: the per-CPU array of counters by slot that firewalls pinned by bpfkit
 * before `acl_rule_counters` count in (their pinned program keeps counting there when
 * a newer version adopts them).
 */
export class PerCpuRuleCounters implements RuleCounters {
  readonly slots: number;
  readonly map: CounterMap;

  constructor(map: CounterMap) {
    this.map = map;
    this.slots = map.info.maxEntries;
  }

  read(slot: number): AclCounter {
    return sum(this.map.get(slot));
  }

  async readMany(slots: ArrayLike<number>): Promise<AclCounter[]> {
    if (slots.length <= 64) return Array.from(slots, (s) => this.read(s));
    const perSlot = new Map<number, Counter[]>();
    for (const [k, v] of await this.map.dump()) perSlot.set(k, v);
    return Array.from(slots, (s) => sum(perSlot.get(s)));
  }

  async zero(slots: readonly number[]): Promise<void> {
    if (!slots.length) return;
    const keys = Buffer.alloc(4 * slots.length);
    slots.forEach((s, i) => keys.writeUInt32LE(s, 4 * i));
    await this.map.writeColumns(keys, Buffer.alloc(this.map.value.size * slots.length), slots.length);
  }
}

/** Counters: per rule in force, default action, unparsed/fragment/malformed packets, events. */
export async function readStats(h: Handles, rs: RuleSets, delivered: number): Promise<AclStats> {
  const misc = new Map<AclStatName, AclCounter>();
  ACL_STATS.forEach((name, i) => misc.set(name, sum(h.stats.get(i))));
  const perRule = await h.ruleCounters.readMany(rs.slots);
  const rb = h.rb.stats();
  return {
    generation: rs.generation,
    defaultAction: rs.settings.defaultAction,
    rules: perRule.map((c, i) => ({ id: rs.norm.ids[i]!, action: actionName(rs.norm.action[i]!), ...c })),
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
      delivered,
    },
  };
}
