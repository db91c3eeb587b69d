/** AclFirewall counters: per rule (per-CPU, by counter slot) and the misc counters of enum acl_stat. */
import type { Counter, Handles } from './install.js';
import { ACL_STATS, type AclStatName } from './layout.js';
import type { AclCounter, AclStats } from './options.js';
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

/** Counters: per rule in force, default action, unparsed/fragment/malformed packets, events. */
export async function readStats(h: Handles, rs: RuleSets, delivered: number): Promise<AclStats> {
  const misc = new Map<AclStatName, AclCounter>();
  ACL_STATS.forEach((name, i) => misc.set(name, sum(h.stats.get(i))));
  const perSlot = new Map<number, Counter[]>();
  if (rs.norm.length > 64) {
    for (const [k, v] of await h.ruleStats.dump()) perSlot.set(k, v);
  } else {
    for (const s of rs.slots) perSlot.set(s, h.ruleStats.get(s) ?? []);
  }
  const rb = h.rb.stats();
  return {
    generation: rs.generation,
    defaultAction: rs.settings.defaultAction,
    rules: rs.norm.map((r, i) => ({ id: r.id, action: r.rule.action, ...sum(perSlot.get(rs.slots[i]!)) })),
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
