/**
 * An ACL rule as the user writes it: the public types (re-exported by rules.ts, which
 * validates them, and by the package).
 */
import type { IpProtocolName } from '../../core/net/protocols.js';

/** What a rule does with a packet it matches: 'allow', 'deny' (drop at XDP), or 'log' (allow and report an event). */
export type AclAction = 'allow' | 'deny' | 'log';
/** A protocol name (lib/core/net/protocols.ts), 'any', or a number 0..255. */
export type AclProtocol = IpProtocolName | 'any' | number;
/** A port, an inclusive range `[from, to]`, or the same as text: `'443'`, `'1024-65535'`. */
export type AclPorts = number | readonly [number, number] | string;

/**
 * One rule. Fields combine with AND; a list inside `src` / `dst` is an OR. Rules are
 * checked in order and the first that matches decides.
 */
export interface AclRule {
  /** Your name for the rule: reported in events and stats. Unique in a rule set. */
  id: string;
  /** `allow`, `deny`, or `log` (allow and report an event). */
  action: AclAction;
  /** Source CIDR(s), IPv4 or IPv6. Absent: any source. */
  src?: string | readonly string[];
  /** Destination CIDR(s). Absent: any destination. */
  dst?: string | readonly string[];
  /** IP protocol: a name or a number 0..255. Absent or 'any': every protocol. */
  proto?: AclProtocol;
  /** Source port(s); needs proto tcp, udp, sctp, udplite or dccp. */
  srcPort?: AclPorts;
  /** Destination port(s); needs proto tcp, udp, sctp, udplite or dccp. */
  dstPort?: AclPorts;
  /** ICMP / ICMPv6 type (0..255); needs proto icmp or icmpv6. */
  icmpType?: number;
  /** ICMP / ICMPv6 code (0..255); needs icmpType. */
  icmpCode?: number;
  /** Ingress interface (name or index, in the firewall's namespace). Absent: any. */
  iface?: string | number;
}
