/**
 * ServiceChainer's `forward: 'xdp'`: the XDP program routes the packets it marks itself
 * (bpf_fib_lookup with the mark, MAC rewrite, TTL - 1, redirect; bpf/include/bpfkit_chain_fwd.h)
 * and hands the rest to the stack with the mark as before. This file holds the option's
 * validation, the feature probe, the egress list (chain_egress) and the outcome counters.
 */
import { invalidArgument } from '../../core/errors.js';
import { btfKnows, unsupported } from '../../core/features.js';
import { ifIndex } from '../../core/net/interfaces.js';
import { checkInterface } from '../../core/net/netns.js';
import type { BpfMap } from '../../core/maps/map.js';
import { MAX_SERVICES } from './config.js';
import type { ChainCounter, ChainForwardStats } from './types.js';

/** First forwarding slot in chain_counters (CNT_SLOTS in bpf/chain.bpf.c). */
export const FWD_BASE = MAX_SERVICES + 4;
/** Slots after FWD_BASE: bpf_fib_lookup's result codes 0..9, then ours (bpfkit_chain_fwd.h). */
const FWD = {
  redirected: 0,
  blackhole: 1,
  unreachable: 2,
  prohibit: 3,
  notForwarded: 4,
  forwardingDisabled: 5,
  unsupportedLwt: 6,
  noNeighbour: 7,
  fragNeeded: 8,
  noSourceAddress: 9,
  ttlExpiring: 10,
  notEgress: 11,
  error: 12,
  unsupported: 13,
} as const;
/** chain_egress's capacity (max_entries in the header). */
export const MAX_EGRESS = 64;

/** Whether bpf_fib_lookup takes BPF_FIB_LOOKUP_MARK (Linux >= 6.10), from the kernel's BTF. */
export function fibLookupMarkSupported(): boolean | undefined {
  return btfKnows('BPF_FIB_LOOKUP_MARK', 'BPF_FIB_LOOKUP_DIRECT');
}

/**
 * Validates `forward` and `egress` (nothing touches the kernel but interface lookups);
 * returns the egress ifindexes, empty for forward 'stack'.
 */
export function checkForward(forward: unknown, egress: unknown, ns: string | undefined): number[] {
  if (forward === undefined || forward === 'stack') {
    if (egress !== undefined) invalidArgument('egress', "only with forward: 'xdp'");
    return [];
  }
  if (forward !== 'xdp') invalidArgument('forward', `must be 'stack' or 'xdp', got '${String(forward)}'`);
  if (!Array.isArray(egress) || egress.length === 0) {
    invalidArgument('egress', "forward: 'xdp' needs the interfaces XDP may redirect to (each must take XDP frames: see docs/service-chaining.md)");
  }
  if (egress.length > MAX_EGRESS) invalidArgument('egress', `at most ${MAX_EGRESS} interfaces, got ${egress.length}`);
  const list = egress as (string | number)[];
  list.forEach((i, k) => checkInterface(i, `egress[${k}]`));
  const idx = list.map((i) => ifIndex(i, { netns: ns }));
  idx.forEach((x, k) => {
    if (idx.indexOf(x) !== k) invalidArgument(`egress[${k}]`, `interface ${String(list[k])} is listed twice`);
  });
  if (fibLookupMarkSupported() === false) {
    throw unsupported("ServiceChainer forward: 'xdp'", 'bpf_fib_lookup with BPF_FIB_LOOKUP_MARK (Linux >= 6.10)');
  }
  return idx;
}

/** Fills chain_egress (a hash: ifindex -> ifindex). */
export function writeEgress(map: BpfMap<number, number>, ifindexes: readonly number[]): void {
  for (const i of ifindexes) map.set(i, i);
}

/** The forwarding outcomes from chain_counters (read through `slot`). */
export function forwardStats(slot: (i: number) => ChainCounter): ChainForwardStats {
  const at = (k: keyof typeof FWD) => slot(FWD_BASE + FWD[k]);
  return {
    redirected: at('redirected'),
    fallback: {
      noNeighbour: at('noNeighbour'),
      notForwarded: at('notForwarded'),
      forwardingDisabled: at('forwardingDisabled'),
      fragNeeded: at('fragNeeded'),
      blackhole: at('blackhole'),
      unreachable: at('unreachable'),
      prohibit: at('prohibit'),
      unsupportedLwt: at('unsupportedLwt'),
      noSourceAddress: at('noSourceAddress'),
      ttlExpiring: at('ttlExpiring'),
      notEgress: at('notEgress'),
      unsupported: at('unsupported'),
      error: at('error'),
    },
  };
}
