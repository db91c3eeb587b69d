/** AclFirewall: network ACLs at XDP with policy events (see docs/acl.md). */
export {
  AclFirewall,
  ACL_MAX_RULES,
  type AclFirewallOptions,
  type AclDefaultAction,
  type AclStats,
  type AclRuleStats,
  type AclCounter,
  type AclCompileInfo,
  type AclFirewallEvents,
} from './firewall.js';
export { type AclRule, type AclAction, type AclProtocol, type AclPorts, PROTOCOL_NUMBERS } from './rules.js';
export { type AclEvent } from './events.js';
export { parseClassBench, parseClassBenchTrace, type ClassBenchRule, type ClassBenchHeader } from './classbench.js';
