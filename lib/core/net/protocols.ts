/**
 * IP protocol names: the one table every module reads (ACL rules, policy-routing rule
 * selectors, the service chainer). IANA's keywords in lower case, for the protocols a
 * network service names in practice; any other is given by number.
 */
export const IP_PROTOCOLS = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  dccp: 33,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
} as const;

/** A protocol name from {@link IP_PROTOCOLS}. */
export type IpProtocolName = keyof typeof IP_PROTOCOLS;

const BY_NUMBER: Record<number, IpProtocolName> = Object.fromEntries(Object.entries(IP_PROTOCOLS).map(([k, v]) => [v, k as IpProtocolName]));

/** The number of a protocol name; undefined for an unknown name (Object.prototype's names included). */
export function ipProtocolNumber(name: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(IP_PROTOCOLS, name) ? IP_PROTOCOLS[name as IpProtocolName] : undefined;
}

/** The name of a protocol number, if it has one here. */
export function ipProtocolName(n: number): IpProtocolName | undefined {
  return BY_NUMBER[n];
}

/** How a protocol number is shown in rules, events and filters: its name if it has one here, else the number. */
export function ipProtocolShown(n: number): IpProtocolName | number {
  return BY_NUMBER[n] ?? n;
}

/** Protocols whose first four L4 bytes are the source and destination ports. */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 33, 132, 136]);
