/**
 * Linux policy routing through the addon's libnl binding: {@link PolicyRoute} (a rule
 * plus the routes of its table, applied idempotently), {@link IpRule} and {@link IpRoute}.
 *
 * names.ts     name tables (protocols, tables, IP protocols, rule actions, route types, scopes)
 * types.ts     public spec / info / option shapes
 * validate.ts  spec validation into the addon's form (pure, runs before any syscall)
 * netlink.ts   the addon's calls, planned operations, batch runners and error mapping
 * rule.ts      IpRule and exact rule deletes
 * route.ts     IpRoute, route identity, descriptions and table dumps
 * policy.ts    PolicyRoute
 */
export { BPFKIT_ROUTE_PROTOCOL, type IpProto, type RouteProtocol, type RouteScope, type RouteTable, type RouteType, type RuleAction } from './names.js';
export type {
  IpRouteInfo,
  IpRouteListOptions,
  IpRouteSpec,
  IpRuleInfo,
  IpRuleListOptions,
  IpRuleSelector,
  IpRuleSpec,
  NetlinkOptions,
  NetnsTarget,
  NextHop,
  NextHopInfo,
  PortRange,
} from './types.js';
export { IpRule } from './rule.js';
export { IpRoute } from './route.js';
export { PolicyRoute, type PolicyRouteChanges, type PolicyRouteEntry, type PolicyRouteOptions, type PolicyRouteSpec, type PolicyRouteState } from './policy.js';
