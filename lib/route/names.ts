/**
 * Name tables of Linux policy routing: route protocols, tables, IP protocols, rule
 * actions, route types and scopes, and the kernel flag bits bpfkit reads. Numbers are
 * the kernel's (include/uapi/linux/rtnetlink.h, fib_rules.h) and iproute2's rt_protos.
 */

import { IP_PROTOCOLS } from '../core/net/protocols.js';

/**
 * The route protocol number bpfkit marks its routes and rules with (`proto 165` in
 * `ip route` / `ip rule`). Unused by the kernel, iproute2's rt_protos and the routing
 * daemons we know of (FRR uses 186-198, BIRD 12, Calico 80); override it per call with
 * `{ protocol }` where it collides. `PolicyRoute.list()` / `cleanup()` find bpfkit's
 * objects by it.
 */
export const BPFKIT_ROUTE_PROTOCOL = 165;

/** @internal the kernel's named tables. */
export const TABLE_NAMES = { default: 253, main: 254, local: 255 } as const;

/** @internal iproute2's rt_protos, plus bpfkit's. */
export const PROTOCOL_NAMES = {
  unspec: 0,
  redirect: 1,
  kernel: 2,
  boot: 3,
  static: 4,
  gated: 8,
  ra: 9,
  mrt: 10,
  zebra: 11,
  bird: 12,
  dnrouted: 13,
  xorp: 14,
  ntk: 15,
  dhcp: 16,
  mrouted: 17,
  keepalived: 18,
  babel: 42,
  openr: 99,
  bgp: 186,
  isis: 187,
  ospf: 188,
  rip: 189,
  eigrp: 192,
  bpfkit: BPFKIT_ROUTE_PROTOCOL,
} as const;

/** @internal IP protocols a rule selector may name: the shared table (lib/core/net/protocols.ts). */
export const IP_PROTO_NAMES = IP_PROTOCOLS;

/** A routing table: a number (1 to 2^32-1) or one of the kernel's named tables. */
export type RouteTable = number | keyof typeof TABLE_NAMES;
/** A route/rule protocol: a number (0-255) or a name from iproute2's rt_protos, or 'bpfkit'. */
export type RouteProtocol = number | keyof typeof PROTOCOL_NAMES;
/** IP protocol for rule selectors: a number 1-255 or a common name. */
export type IpProto = number | keyof typeof IP_PROTO_NAMES;

/** What a rule does with a packet it matches. */
export type RuleAction = 'table' | 'blackhole' | 'unreachable' | 'prohibit';
/** @internal FR_ACT_* of the actions bpfkit creates. */
export const RULE_ACTIONS: Record<RuleAction, number> = { table: 1, blackhole: 6, unreachable: 7, prohibit: 8 };
/** @internal FR_ACT_* -> name, including the ones bpfkit only lists. */
export const RULE_ACTION_NAMES: Record<number, string> = { 1: 'table', 2: 'goto', 3: 'nop', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };

/** Route types (`ip route add <type> ...`). */
export type RouteType = 'unicast' | 'local' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
/** @internal RTN_* of the types bpfkit creates. */
export const ROUTE_TYPES: Record<RouteType, number> = { unicast: 1, local: 2, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9 };
/** @internal RTN_* -> name, including the ones bpfkit only lists. */
export const ROUTE_TYPE_NAMES: Record<number, string> = {
  1: 'unicast',
  2: 'local',
  3: 'broadcast',
  4: 'anycast',
  5: 'multicast',
  6: 'blackhole',
  7: 'unreachable',
  8: 'prohibit',
  9: 'throw',
};

/** Route scopes; 'global' is the kernel's RT_SCOPE_UNIVERSE. IPv6 routes are always global. */
export type RouteScope = 'global' | 'site' | 'link' | 'host' | number;
/** @internal RT_SCOPE_* by name. */
export const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254 };
/** @internal RT_SCOPE_* -> name. */
export const SCOPE_NAMES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };

/** @internal fib_rule_hdr flags. */
export const FIB_RULE_INVERT = 2;
/** @internal */
export const FIB_RULE_IIF_DETACHED = 8;
/** @internal */
export const FIB_RULE_OIF_DETACHED = 16;
/** @internal rtnexthop flag: gateway reachable on dev without a matching prefix. */
export const RTNH_F_ONLINK = 4;

/**
 * @internal `name`'s number in one of these tables, or undefined. Own keys only: a name
 * like 'constructor' or 'toString' is not a table, protocol or type.
 */
export function lookupName(table: Readonly<Record<string, number>>, name: unknown): number | undefined {
  return typeof name === 'string' && Object.hasOwn(table, name) ? table[name] : undefined;
}
