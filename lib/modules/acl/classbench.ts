/**
 * ClassBench (Taylor & Turner) filter sets and header traces, for benchmarks and tests
 * of the firewall (this repository's tests read them from `../shared/classbench` beside
 * the checkout). ClassBench rules have no action and
 * are IPv4 only; the caller chooses an action per rule.
 */
import { BpfkitError } from '../../core/errors.js';
import type { AclAction, AclRule } from './rules.js';

/** A ClassBench rule as an AclRule (rule i of the file is `${idPrefix}${i}`). */
export type ClassBenchRule = AclRule;

/** One line of a ClassBench header trace (see {@link parseClassBenchTrace}). */
export interface ClassBenchHeader {
  /** IPv4 addresses as 32-bit numbers (a<<24 | b<<16 | c<<8 | d). */
  src: number;
  /** Destination address, like `src`. */
  dst: number;
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** IP protocol number. */
  proto: number;
  /** The trace's last column (rule index, 0- or 1-based depending on the file). */
  rule: number;
}

const PREFIX = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/;

/**
 * Parses a ClassBench filter set (full format with flags, or the 5-tuple format).
 * Field 6 (flags) is ignored, as ClassBench's reference answers do. `action(i)` picks
 * each rule's action (default: odd lines deny, even lines allow); ids are `${idPrefix}${i}`.
 */
export function parseClassBench(text: string, opts: { action?: (index: number) => AclAction; idPrefix?: string } = {}): ClassBenchRule[] {
  const action = opts.action ?? ((i: number) => (i % 2 ? 'deny' : 'allow'));
  const prefix = opts.idPrefix ?? 'r';
  const out: ClassBenchRule[] = [];
  const lines = text.split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim();
    if (!line) continue;
    const t = line.replace(/^@/, '').split(/\s+/);
    const bad = (what: string): never => {
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `ClassBench line ${ln + 1}: ${what}: ${line.slice(0, 80)}`, { field: 'text', details: { line: ln + 1 } });
    };
    if (t.length < 9 || t[3] !== ':' || t[6] !== ':') bad('expected "@src dst splo : sphi dplo : dphi proto/mask ..."');
    const [s, d] = [PREFIX.exec(t[0]!), PREFIX.exec(t[1]!)];
    if (!s || !d) bad('bad prefix');
    const [pv, pm] = t[8]!.split('/').map((x) => parseInt(x, 16));
    if (pv === undefined || pm === undefined || Number.isNaN(pv) || Number.isNaN(pm)) bad('bad protocol');
    const i = out.length;
    const rule: ClassBenchRule = { id: `${prefix}${i}`, action: action(i) };
    if (s![2] !== '0') rule.src = `${s![1]}/${s![2]}`;
    if (d![2] !== '0') rule.dst = `${d![1]}/${d![2]}`;
    if (pm) rule.proto = pv!;
    const sp: [number, number] = [Number(t[2]), Number(t[4])];
    const dp: [number, number] = [Number(t[5]), Number(t[7])];
    if (sp[0] !== 0 || sp[1] !== 65535) rule.srcPort = sp[0] === sp[1] ? sp[0] : sp;
    if (dp[0] !== 0 || dp[1] !== 65535) rule.dstPort = dp[0] === dp[1] ? dp[0] : dp;
    out.push(rule);
  }
  return out;
}

/** Parses a ClassBench header trace: `src dst sport dport proto rule` per line. */
export function parseClassBenchTrace(text: string): ClassBenchHeader[] {
  const out: ClassBenchHeader[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[0] === '') continue;
    out.push({ src: Number(f[0]), dst: Number(f[1]), srcPort: Number(f[2]), dstPort: Number(f[3]), proto: Number(f[4]), rule: Number(f[5] ?? -1) });
  }
  return out;
}
