/** Public shapes of the routing API: what callers pass in and what the kernel reports. */
import type { NetnsRef } from '../core/net/netns.js';
import type { IpProto, RouteProtocol, RouteScope, RouteTable, RouteType, RuleAction } from './names.js';

/** @deprecated Use {@link NetnsRef} (the same type: a name, a path or an open fd). */
export type NetnsTarget = NetnsRef;

/** The namespace a routing call works in. */
export interface NetlinkOptions {
  /** Namespace to operate in: a name under /run/netns, a path or an open fd (default: the caller's). */
  netns?: NetnsRef;
}

// ---- rules -------------------------------------------------------------------------

/** A port or an inclusive port range. The kernel accepts 1-65534 in rules. */
export type PortRange = number | readonly [number, number];

/** Packet selectors of a rule (all optional; a rule without any matches every packet). */
export interface IpRuleSelector {
  /** Firewall mark to match (`fwmark`); with `fwmask`, matches `(mark & fwmask) == fwmark`. */
  fwmark?: number;
  /** Mask for `fwmark` (default 0xffffffff). `{ fwmark: 0, fwmask: 0xff }` matches unmarked low bytes. */
  fwmask?: number;
  /** Input interface name (`lo` means locally generated traffic). */
  iif?: string;
  /** Output interface name (for sockets bound to a device / VRF). */
  oif?: string;
  /** Source prefix, e.g. '198.18.0.0/24' or '2001:db8::/32'. */
  src?: string;
  /** Destination prefix. */
  dst?: string;
  /** TOS / traffic class byte (DSCP bits only). */
  tos?: number;
  /** IP protocol (`ipproto`), e.g. 'tcp' or 17. */
  ipProto?: IpProto;
  /** Source port or range (needs kernel >= 4.17). */
  sport?: PortRange;
  /** Destination port or range. */
  dport?: PortRange;
  /** Match packets that do NOT match the selectors (`ip rule add not ...`). */
  invert?: boolean;
}

/** A rule to add or delete. `priority` is required: rules have no other identity. */
export interface IpRuleSpec extends IpRuleSelector {
  /** 4 or 6; inferred from `src`/`dst`, else 4. */
  family?: 4 | 6;
  /** Position in the rule list (0 = first; main is 32766). */
  priority: number;
  /** Default 'table' (look the packet up in `table`). */
  action?: RuleAction;
  /** Table for action 'table'. */
  table?: RouteTable;
  /** Rule protocol (FRA_PROTOCOL); default bpfkit's ({@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** A rule as the kernel reports it. */
export interface IpRuleInfo {
  /** Address family. */
  family: 4 | 6;
  /** Position in the rule list. */
  priority: number;
  /** What the rule does ('table': look the packet up in `table`). */
  action: RuleAction | 'goto' | 'nop' | `action ${number}`;
  /** The table looked up, for action 'table'. */
  table?: number;
  /** Firewall mark matched. */
  fwmark?: number;
  /** Mask of `fwmark`. */
  fwmask?: number;
  /** Input interface matched. */
  iif?: string;
  /** Output interface matched. */
  oif?: string;
  /** Source prefix matched. */
  src?: string;
  /** Destination prefix matched. */
  dst?: string;
  /** TOS matched. */
  tos?: number;
  /** IP protocol number matched. */
  ipProto?: number;
  /** Source port range matched. */
  sport?: [number, number];
  /** Destination port range matched. */
  dport?: [number, number];
  /** Whether the rule matches packets that do NOT match its selectors. */
  invert: boolean;
  /** The iif/oif named by the rule does not exist (the rule is inactive). */
  detached?: boolean;
  /** The rule's protocol (FRA_PROTOCOL): who made it. */
  protocol: number;
}

/** Options of {@link IpRule.list}. */
export interface IpRuleListOptions extends NetlinkOptions {
  /** 4 or 6 (default both). */
  family?: 4 | 6;
  /** Only rules with this protocol, e.g. 'bpfkit'. */
  protocol?: RouteProtocol;
}

// ---- routes ------------------------------------------------------------------------

/** One next hop of a route. */
export interface NextHop {
  /** Gateway address (same family as the route). */
  via?: string;
  /** Output interface (name or index). */
  dev?: string | number;
  /** Multipath weight, 1-256 (default 1). */
  weight?: number;
  /** Treat the gateway as directly reachable on `dev` even without a matching prefix. */
  onlink?: boolean;
}

/** A route to add, replace or delete. */
export interface IpRouteSpec {
  /** Destination prefix ('198.18.0.0/24', '2001:db8::/32', '0.0.0.0/0'), or 'default' (with `family`, default 4). */
  dst: string;
  /** 4 or 6; inferred from `dst`. */
  family?: 4 | 6;
  /** Default 'main'. */
  table?: RouteTable;
  /** Default 'unicast'. */
  type?: RouteType;
  /** Gateway (single next hop). */
  via?: string;
  /** Output interface (single next hop). */
  dev?: string | number;
  /** Treat the gateway as directly reachable on `dev` even without a matching prefix. */
  onlink?: boolean;
  /** Several next hops (ECMP); excludes via/dev/onlink. */
  nexthops?: readonly NextHop[];
  /** Preferred source address for locally generated packets (`src`). */
  src?: string;
  /** Metric / priority (default 0 for IPv4, 1024 for IPv6, as the kernel does). */
  metric?: number;
  /** TOS (IPv4 only). */
  tos?: number;
  /** Default: 'host' for local routes, 'link' for unicast without a gateway, else 'global'. */
  scope?: RouteScope;
  /** Default bpfkit's ({@link BPFKIT_ROUTE_PROTOCOL}). */
  protocol?: RouteProtocol;
}

/** A next hop as the kernel reports it. */
export interface NextHopInfo {
  /** Gateway address. */
  via?: string;
  /** Output interface name. */
  dev?: string;
  /** Output interface index. */
  ifindex?: number;
  /** Multipath weight. */
  weight: number;
  /** Whether the gateway is taken as on-link. */
  onlink: boolean;
}

/** A route as the kernel reports it. */
export interface IpRouteInfo {
  /** Address family. */
  family: 4 | 6;
  /** The routing table. */
  table: number;
  /** Destination prefix. */
  dst: string;
  /** Route type. */
  type: RouteType | 'broadcast' | 'anycast' | 'multicast' | `type ${number}`;
  /** The route's protocol: who made it. */
  protocol: number;
  /** Scope. */
  scope: 'global' | 'site' | 'link' | 'host' | 'nowhere' | `scope ${number}`;
  /** Metric (priority). */
  metric: number;
  /** TOS (IPv4). */
  tos?: number;
  /** Preferred source address. */
  src?: string;
  /** Single-path routes: the gateway, interface and onlink flag. */
  via?: string;
  /** Single-path routes: output interface name. */
  dev?: string;
  /** Single-path routes: output interface index. */
  ifindex?: number;
  /** Single-path routes: whether the gateway is taken as on-link. */
  onlink?: boolean;
  /** Multipath routes: every next hop. */
  nexthops?: NextHopInfo[];
}

/** Options of {@link IpRoute.list}. */
export interface IpRouteListOptions extends NetlinkOptions {
  /** 4 or 6 (default both). */
  family?: 4 | 6;
  /** A table, or 'all' (default 'main', like `ip route`). */
  table?: RouteTable | 'all';
  /** Only routes with this protocol, e.g. 'bpfkit'. */
  protocol?: RouteProtocol;
}
