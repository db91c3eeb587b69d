/**
 * AclFirewall's options, settings and public result types, and the program variants
 * (rule-set sizes) a firewall can be built as.
 */
import type { StagePosition } from '../pipeline.js';
import { checkInteger } from '../../core/validate.js';
import { invalidArgument } from '../../core/errors.js';
import type { XdpMode } from '../../core/programs/program.js';
import type { NetnsRef } from '../../core/net/netns.js';
import type { CompileOptions, TreeStats } from './classifier.js';
export type { AclFirewallEvents } from './events.js';
import { MAX_BLOB_BYTES } from './layout.js';
import type { AclAction, AclRule } from './rules.js';

export type AclDefaultAction = 'allow' | 'deny';

export interface AclFirewallOptions {
  /** Verdict for packets no rule matches. Default 'allow' (coexistence: the stack's own rules still apply). */
  defaultAction?: AclDefaultAction;
  /** Rules installed before the program is attached (no unprotected moment). */
  rules?: readonly AclRule[];
  /**
   * Capacity in rules (default 10,000; at most 200,000): any set of that many rules,
   * whatever their shape, fits (each with at most one source and one destination; a
   * rule's JSON source up to ~560 bytes). Picks the rule-set size the program is built
   * for (two of them are allocated in the kernel and mapped into this process; a swap
   * writes the part of one the new set uses): up to 2,048 rules 2 MiB, 16,384 16 MiB,
   * 65,536 64 MiB, above 256 MiB.
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
  /**
   * When attaching to an XdpPipeline: the stage's name (default 'acl') and position
   * (`before`/`after` a named stage, or `index`; default last).
   */
  stage?: StagePosition & { name?: string };
}

/** A packet and byte counter. */
export interface AclCounter {
  /** Packets. */
  packets: number;
  /** Bytes (whole frames). */
  bytes: number;
}

/** Counters of one rule (see {@link AclFirewall.stats}). */
export interface AclRuleStats extends AclCounter {
  /** The rule's id. */
  id: string;
  /** The rule's action. */
  action: AclAction;
}

export interface AclStats {
  /** Generation of the rule set in force (one more per swap). */
  generation: number;
  /** The default action in force. */
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
  /** The event machinery's counters. */
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
  /** Rules in the set. */
  rules: number;
  /** Records the rule set compiled to (a rule with lists of addresses or ports can make several). */
  records: number;
  /** Bytes of the blob in use, and the blob size. */
  bytes: number;
  /** Size of the blob the program was built for (see `maxRules`). */
  capacityBytes: number;
  /** Shape of each decision tree. */
  trees: TreeStats[];
  /** Time spent compiling the set, in ms (a one-rule change through the overlay: the time of the change). */
  compileMs: number;
  /** Records in the overlay (one-rule changes since the set was compiled, docs/acl.md); 0 after a compile. */
  overlay?: number;
}

export interface Variant {
  name: string;
  bytes: number;
  maxRules: number;
}
export const VARIANTS: readonly Variant[] = [
  { name: 'acl_s', bytes: 2 << 20, maxRules: 2048 },
  { name: 'acl', bytes: 16 << 20, maxRules: 16384 },
  { name: 'acl_l', bytes: 64 << 20, maxRules: 65536 },
  { name: 'acl_xl', bytes: MAX_BLOB_BYTES, maxRules: 200000 }, // bpf/acl_xl.bpf.c
];
// Each variant holds RULE_BYTES per rule of its capacity, beside the header and each
// family's TREE_BASE_WORDS (bpf/include/acl_blob.h; test/unit/acl-shapes.test.ts checks it).
export const ACL_MAX_RULES = VARIANTS[VARIANTS.length - 1]!.maxRules;

/** Settings stored in the rule set's header (they change atomically with the rules). */
export interface Settings {
  defaultAction: AclDefaultAction;
  eventIntervalMs: number;
  defaultDenyEvents: boolean;
  events: boolean;
  verdictCache: boolean;
}

export const DEFAULT_SETTINGS: Settings = { defaultAction: 'allow', eventIntervalMs: 1000, defaultDenyEvents: true, events: true, verdictCache: true };

export function checkSettings(o: Partial<Settings>, base: Settings): Settings {
  const s = { ...base };
  if (o.defaultAction !== undefined) {
    if (o.defaultAction !== 'allow' && o.defaultAction !== 'deny')
      invalidArgument('defaultAction', `must be 'allow' or 'deny', got ${String(o.defaultAction)}`);
    s.defaultAction = o.defaultAction;
  }
  if (o.eventIntervalMs !== undefined) s.eventIntervalMs = checkInteger(o.eventIntervalMs, 'eventIntervalMs', 0, 3_600_000);
  for (const k of ['defaultDenyEvents', 'events', 'verdictCache'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'boolean') invalidArgument(k, 'must be true or false');
    s[k] = o[k];
  }
  return s;
}
