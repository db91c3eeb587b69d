/**
 * Random ACL rules for property tests (test/unit/acl-fastpath.test.ts, acl-source.test.ts):
 * every kind of rule the validator accepts, addresses spelled canonically (tests that
 * respell them do so themselves).
 */
import { formatIPv4, formatIPv6 } from '../../lib/core/codecs.js';
import type { AclRule } from '../../lib/modules/acl/rules.js';

/** A uniform integer in [lo, hi] from `r`. */
export const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** Eight 16-bit words with runs of zeros (where '::' goes) and the host bits of a prefix cleared. */
export function v6Words(r: () => number, len: number): number[] {
  const w = Array.from({ length: 8 }, () => (r() < 0.4 ? 0 : r() < 0.3 ? int(r, 1, 15) : int(r, 0, 0xffff)));
  if (r() < 0.1) w.splice(0, 6, 0, 0, 0, 0, 0, 0xffff); // IPv4-mapped
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, len - 16 * i));
    w[i] = keep === 0 ? 0 : (w[i]! >> (16 - keep)) << (16 - keep);
  }
  return w;
}

export interface RandomRuleOptions {
  /**
   * Also the rarer kinds: ids with quotes, backslashes and non-ASCII, protocols by number
   * (sctp, 'any', any other number), ICMP as protocol 1, one-port ranges `[p, p]`, and
   * interfaces by name (the caller's resolveIface must accept 'eth0' and 'veth-N').
   */
  every?: boolean;
}

/** Rule `i` of a random set: addresses (single or lists, IPv4 or IPv6), protocol, ports or ICMP, interface. */
export function randomAclRule(r: () => number, i: number, { every = false }: RandomRuleOptions = {}): AclRule {
  const id = every && r() < 0.1 ? `ü-"${i}"\\` : `x${i}`;
  const rule: AclRule = { id, action: r() < 0.4 ? 'deny' : r() < 0.7 ? 'allow' : 'log' };
  const six = r() < 0.4;
  const addr = () => {
    if (six) {
      const len = int(r, 0, 128);
      const t = formatIPv6(Buffer.from(v6Words(r, len).flatMap((x) => [x >> 8, x & 255])));
      return r() < 0.5 && len === 128 ? t : `${t}/${len}`;
    }
    const len = int(r, 0, 32);
    const a = len === 0 ? 0 : ((int(r, 0, 0xffffffff) >>> (32 - len)) << (32 - len)) >>> 0;
    const t = formatIPv4(Buffer.from([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255]));
    return r() < 0.5 && len === 32 ? t : `${t}/${len}`;
  };
  for (const f of ['src', 'dst'] as const) {
    const k = r();
    if (k < 0.2) continue;
    rule[f] = k < 0.7 ? addr() : Array.from({ length: int(r, 1, 4) }, addr);
  }
  const p = r();
  if (p < 0.6) {
    rule.proto = every ? (r() < 0.4 ? 'tcp' : r() < 0.4 ? 'udp' : r() < 0.5 ? 17 : 'sctp') : r() < 0.5 ? 'tcp' : r() < 0.5 ? 'udp' : 17;
    const port = () => {
      const lo = int(r, 0, 65535);
      const hi = int(r, lo, Math.min(65535, lo + 5000));
      const q = r();
      if (q < 0.3) return lo;
      if (q < 0.6) return [lo, hi] as [number, number];
      if (every && q < 0.7) return [lo, lo] as [number, number];
      return q < (every ? 0.85 : 0.8) ? `${lo}-${hi}` : `${lo}`;
    };
    if (r() < 0.6) rule.srcPort = port();
    if (r() < 0.6) rule.dstPort = port();
  } else if (p < 0.75) {
    rule.proto = six ? 'icmpv6' : every && r() < 0.5 ? 1 : 'icmp';
    if (r() < 0.7) rule.icmpType = int(r, 0, 255);
    if (rule.icmpType !== undefined && r() < 0.5) rule.icmpCode = int(r, 0, 255);
  } else if (every && p < 0.85) {
    rule.proto = r() < 0.5 ? int(r, 0, 255) : 'any';
    if (rule.proto === 6 || rule.proto === 17 || rule.proto === 1 || rule.proto === 58) rule.proto = 250;
  }
  const f = r();
  if (f < 0.1 || (!every && f < 0.2)) rule.iface = int(r, 1, 1000);
  else if (every && f < 0.2) rule.iface = r() < 0.5 ? 'eth0' : `veth-${int(r, 0, 99)}`;
  return rule;
}
