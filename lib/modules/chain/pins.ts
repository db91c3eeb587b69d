/**
 * The kernel handles of a ServiceChainer, and their pins: pinning a chainer's programs,
 * maps and links in a directory on a BPF filesystem, opening them again in another
 * process (adoption), the configuration stored alongside (chain_state), and removal.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfkitError } from '../../core/errors.js';
import { bytes, u32 } from '../../core/codecs.js';
import { BpfMap } from '../../core/maps/map.js';
import type { BpfObject } from '../../core/object.js';
import { BpfProgram, XdpLink, XdpProgram } from '../../core/programs/program.js';
import { TcLink, TcProgram } from '../../core/programs/tc.js';
import { DoubleBuffer } from '../../core/maps/swap.js';
import { configCodec, counterCodec, key4Codec, key6Codec, ruleCodec, type ConfigValue, type KeyValue } from './config.js';
import type { ChainCounter, ChainPath, ChainRule, ChainService } from './types.js';

type Counters = BpfMap<number, ChainCounter[], number, ChainCounter[] | ChainCounter>;
type RuleMap = BpfMap<KeyValue, { rank: number; rule: number; action: number }>;

/** A chainer's program and maps (obj: undefined when adopted from pins). */
export interface Parts {
  obj: BpfObject | undefined;
  prog: XdpProgram;
  /** SEC("tc") tc_chain_mark: copies the metadata mark into skb->mark. */
  tc: TcProgram;
  slot: BpfMap<number, number>;
  copies: [BpfMap<number, ConfigValue>, BpfMap<number, ConfigValue>];
  swap: DoubleBuffer<BpfMap<number, ConfigValue>>;
  /** rules of IPv6-prefix shapes (56-byte keys) */
  rules6: RuleMap;
  /** rules of every other shape (32-byte keys) */
  rules4: RuleMap;
  ruleStats: Counters;
  counters: Counters;
  /** forward 'xdp': the interfaces XDP may redirect to (a hash of ifindexes) */
  egress: BpfMap<number, number>;
  /** the configuration as JSON, one half per config copy */
  state: BpfMap<number, Buffer, number, Uint8Array>;
}

/** What chain_state holds: enough to rebuild the chainer's view in another process. */
export interface PinnedState {
  v: 1;
  services: ChainService[];
  upstream: ChainPath;
  rules: ChainRule[];
  rulePriority: number;
  maxRules: number;
  forward: 'stack' | 'xdp';
  egress: number[];
  ifindexes: number[];
}

const CHUNK = 4096;
export const stateCodec = { key: u32, value: bytes(CHUNK) };
const PIN = {
  prog: 'xdp_prog',
  tc: 'tc_prog',
  slot: 'config',
  a: 'config_a',
  b: 'config_b',
  rules6: 'rules6',
  rules4: 'rules4',
  ruleStats: 'rule_stats',
  counters: 'counters',
  egress: 'egress',
  state: 'state',
} as const;
const xdpLinkPin = (ifindex: number) => `xdp_link_${ifindex}`;
const tcLinkPin = (ifindex: number) => `tc_link_${ifindex}`;

/** chain_state's size: two halves big enough for `maxRules` rules of ~240 bytes of JSON each. */
export function stateEntries(maxRules: number, pinned: boolean): number {
  return pinned ? 2 * Math.ceil((maxRules * 240 + 65536) / CHUNK) : 2;
}

/** Writes the state JSON into half `gen` of chain_state (before that copy is put in force). */
export async function writeState(map: Parts['state'], gen: 0 | 1, s: PinnedState): Promise<void> {
  const json = Buffer.from(JSON.stringify(s));
  const half = map.info.maxEntries / 2;
  const total = Buffer.alloc(Math.ceil((json.length + 4) / CHUNK) * CHUNK);
  if (total.length > half * CHUNK)
    invalidState('rules', `the configuration (${json.length} bytes of JSON) does not fit the pinned state (${half * CHUNK - 4}); raise limits.maxRules`);
  total.writeUInt32LE(json.length, 0);
  json.copy(total, 4);
  const entries = Array.from({ length: total.length / CHUNK }, (_, i) => [gen * half + i, total.subarray(i * CHUNK, (i + 1) * CHUNK)] as const);
  await map.setBatch(entries);
}

function invalidState(field: string, message: string): never {
  throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function readState(map: Parts['state'], gen: 0 | 1, dir: string): PinnedState {
  const half = map.info.maxEntries / 2;
  const first = map.get(gen * half);
  const len = first?.readUInt32LE(0) ?? 0;
  if (!first || len === 0 || len + 4 > half * CHUNK) invalidState('pin', `${dir}: no chainer configuration in force`);
  const parts: Buffer[] = [first];
  for (let i = 1; i < Math.ceil((len + 4) / CHUNK); i++) parts.push(map.get(gen * half + i)!);
  const s = JSON.parse(
    Buffer.concat(parts)
      .subarray(4, 4 + len)
      .toString('utf8'),
  ) as PinnedState;
  if (s.v !== 1) invalidState('pin', `${dir}: a chainer of another bpfkit version`);
  return s;
}

/** True if `dir` holds a pinned chainer. */
export function isPinned(dir: string): boolean {
  return existsSync(join(dir, PIN.state));
}

/** Pins the program, maps and links in `dir` (created 0700; pins are 0600). All or nothing. */
export function pinAll(dir: string, p: Parts, links: readonly XdpLink[], tcLinks: readonly TcLink[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const done: string[] = [];
  const at = (name: string, x: { pin(path: string): void }) => {
    const path = join(dir, name);
    x.pin(path);
    done.push(path);
  };
  try {
    // the state pin last: isPinned() means complete
    for (const [name, x] of [
      [PIN.prog, p.prog],
      [PIN.tc, p.tc],
      [PIN.slot, p.slot],
      [PIN.a, p.copies[0]],
      [PIN.b, p.copies[1]],
      [PIN.rules6, p.rules6],
      [PIN.rules4, p.rules4],
      [PIN.ruleStats, p.ruleStats],
      [PIN.counters, p.counters],
      [PIN.egress, p.egress],
    ] as const)
      at(name, x);
    for (const l of links) at(xdpLinkPin(l.ifindex), l);
    for (const l of tcLinks) at(tcLinkPin(l.ifindex), l);
    at(PIN.state, p.state);
  } catch (e) {
    for (const f of done.reverse()) unlinkQuiet(f);
    throw e;
  }
}

/** A pinned chainer's handles, opened, with its state and links. */
export interface Adopted {
  parts: Parts;
  state: PinnedState;
  links: XdpLink[];
  tcLinks: TcLink[];
}

/** Opens everything pinned in `dir` (links in namespace `ns`). */
export function openPinned(dir: string, ns: string | undefined): Adopted {
  const opened: { close(): void }[] = [];
  const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
  const at = (n: string) => {
    const path = join(dir, n);
    if (!existsSync(path))
      throw new BpfkitError('ERR_NOT_FOUND', `pin: ${dir} holds an incomplete chainer (no '${n}'); remove the directory to start afresh`, { field: 'pin' });
    return path;
  };
  try {
    const prog = keep(BpfProgram.openPinned(at(PIN.prog)));
    const tc = keep(TcProgram.openPinned(at(PIN.tc)));
    if (!(prog instanceof XdpProgram)) invalidState('pin', `${join(dir, PIN.prog)} is not an XDP program`);
    const slot = keep(BpfMap.openPinned(at(PIN.slot), { key: u32, value: u32 }));
    const copies: Parts['copies'] = [
      keep(BpfMap.openPinned(at(PIN.a), { key: u32, value: configCodec })),
      keep(BpfMap.openPinned(at(PIN.b), { key: u32, value: configCodec })),
    ];
    const active = DoubleBuffer.current(slot, copies);
    if (active === undefined) invalidState('pin', `${dir}: no configuration in force`);
    const parts: Parts = {
      obj: undefined,
      prog,
      tc,
      slot,
      copies,
      swap: new DoubleBuffer(slot, copies, active),
      rules6: keep(BpfMap.openPinned(at(PIN.rules6), { key: key6Codec, value: ruleCodec })),
      rules4: keep(BpfMap.openPinned(at(PIN.rules4), { key: key4Codec, value: ruleCodec })),
      ruleStats: keep(BpfMap.openPinnedPerCpu(at(PIN.ruleStats), { key: u32, value: counterCodec })),
      counters: keep(BpfMap.openPinnedPerCpu(at(PIN.counters), { key: u32, value: counterCodec })),
      egress: keep(BpfMap.openPinned(at(PIN.egress), { key: u32, value: u32 })),
      state: keep(BpfMap.openPinned(at(PIN.state), stateCodec)),
    };
    const state = readState(parts.state, active, dir);
    const lopts = ns ? { netns: ns } : {};
    const links = state.ifindexes.filter((i) => existsSync(join(dir, xdpLinkPin(i)))).map((i) => keep(XdpLink.openPinned(join(dir, xdpLinkPin(i)), lopts)));
    const tcLinks = state.ifindexes.map((i) => keep(TcLink.openPinned(at(tcLinkPin(i)), lopts)));
    return { parts, state, links, tcLinks };
  } catch (e) {
    for (const x of opened.reverse()) x.close();
    throw e;
  }
}

/** Removes a chainer's pins (and the directory when it is left empty). */
export function removePins(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const ours = new Set<string>(Object.values(PIN));
  for (const n of names) if (ours.has(n as never) || /^(xdp|tc)_link_\d+$/.test(n)) unlinkQuiet(join(dir, n));
  try {
    rmdirSync(dir);
  } catch {
    /* not empty (someone else's files) or gone */
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* best effort */
  }
}
