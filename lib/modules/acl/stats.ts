/**
 * AclFirewall counters: per rule (by counter slot, see RuleCounters) and the misc counters
 * of enum acl_stat (per-CPU).
 */
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
 * counters { packets, bytes } (u64 each), CPU c's counter of slot s at c x slots + s,
 * read and zeroed through the map's mapping (no system call). Each 64-bit field is read
 * with one 64-bit load, so a value is never torn while a program counts.
 */
export class MappedRuleCounters implements RuleCounters {
  readonly slots: number;
  readonly map: BpfMap<number, Buffer>;
  readonly #cpus: number;
  readonly #mem: BigUint64Array;

  constructor(map: BpfMap<number, Buffer>, cpus: number) {
    this.map = map;
    this.#cpus = cpus;
    this.slots = map.info.maxEntries / cpus;
    const buf = map.mmap();
    this.#mem = new BigUint64Array(buf.buffer, buf.byteOffset, 2 * map.info.maxEntries);
  }

  /** Slots per CPU of a map of `maxEntries` counters, or undefined if it cannot be one of ours. */
  static slotsOf(maxEntries: number, cpus: number): number | undefined {
    const n = maxEntries / cpus;
    return Number.isInteger(n) && n % 2 === 0 ? n : undefined;
  }

  read(slot: number): AclCounter {
    const m = this.#mem;
    let p = 0n;
    let b = 0n;
    for (let c = 0, i = 2 * slot; c < this.#cpus; c++, i += 2 * this.slots) {
      p += m[i]!;
      b += m[i + 1]!;
    }
    return { packets: Number(p), bytes: Number(b) };
  }

  readMany(slots: ArrayLike<number>): Promise<AclCounter[]> {
    return Promise.resolve(Array.from(slots, (s) => this.read(s)));
  }

  zero(slots: readonly number[]): Promise<void> {
    const m = this.#mem;
    for (let c = 0; c < this.#cpus; c++) {
      const base = 2 * c * this.slots;
      for (const s of slots) m[base + 2 * s] = m[base + 2 * s + 1] = 0n;
    }
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
