/**
 * The rule set's source (lib/modules/acl/source.ts): what a process adopting a pinned
 * firewall reads back is exactly the canonical rules in force, their slots and tags and
 * the settings, for random sets of every kind of rule the validator accepts (IPv4 and
 * IPv6 addresses, IPv4-mapped ones, lists, protocols by name and by number, ports as
 * numbers, ranges and text, ICMP type and code, interfaces by index and by name); and
 * what it cannot read is refused with ERR_INVALID_ARGUMENT naming pin.
 */
import { describe, expect, it } from 'vitest';
import { formatIPv4, formatIPv6 } from '../../lib/core/codecs.js';
import { BpfkitError } from '../../lib/core/errors.js';
import { DEFAULT_SETTINGS, type Settings } from '../../lib/modules/acl/options.js';
import { normalizeRules, type AclRule } from '../../lib/modules/acl/rules.js';
import { decodeSource, encodeSource } from '../../lib/modules/acl/source.js';
import { rng } from '../helpers/rng.js';

const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

function v6(r: () => number, len: number): string {
  const b = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) b[i] = r() < 0.4 ? 0 : int(r, 0, 255);
  if (r() < 0.1) b.fill(0, 0, 10).fill(0xff, 10, 12); // IPv4-mapped (mixed notation)
  for (let bit = len; bit < 128; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return formatIPv6(b);
}

/** A random rule of any kind the validator accepts, in any spelling it accepts. */
function randomRule(r: () => number, i: number): AclRule {
  const rule: AclRule = { id: r() < 0.1 ? `ü-"${i}"\\` : `x${i}`, action: r() < 0.4 ? 'deny' : r() < 0.7 ? 'allow' : 'log' };
  const six = r() < 0.4;
  const addr = () => {
    if (six) {
      const len = int(r, 0, 128);
      const t = v6(r, len);
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
    rule.proto = r() < 0.4 ? 'tcp' : r() < 0.4 ? 'udp' : r() < 0.5 ? 17 : 'sctp';
    const port = () => {
      const lo = int(r, 0, 65535);
      const hi = int(r, lo, Math.min(65535, lo + 5000));
      const q = r();
      return q < 0.3 ? lo : q < 0.6 ? ([lo, hi] as [number, number]) : q < 0.7 ? ([lo, lo] as [number, number]) : q < 0.85 ? `${lo}-${hi}` : `${lo}`;
    };
    if (r() < 0.6) rule.srcPort = port();
    if (r() < 0.6) rule.dstPort = port();
  } else if (p < 0.75) {
    rule.proto = six ? 'icmpv6' : r() < 0.5 ? 'icmp' : 1;
    if (r() < 0.7) rule.icmpType = int(r, 0, 255);
    if (rule.icmpType !== undefined && r() < 0.5) rule.icmpCode = int(r, 0, 255);
  } else if (p < 0.85) {
    rule.proto = r() < 0.5 ? int(r, 0, 255) : 'any';
    if (rule.proto === 6 || rule.proto === 17 || rule.proto === 1 || rule.proto === 58) rule.proto = 250;
  }
  const f = r();
  if (f < 0.1) rule.iface = int(r, 1, 1000);
  else if (f < 0.2) rule.iface = r() < 0.5 ? 'eth0' : `veth-${int(r, 0, 99)}`;
  return rule;
}

const resolveIface = (v: string | number) => (typeof v === 'number' ? v : 7);

/** A source encoded at the end of a buffer (as in a blob: the words, then the JSON), decoded. */
function roundTrip(rules: AclRule[], settings: Settings, gen: number) {
  const norm = normalizeRules(rules, { capacity: 1 << 20, resolveIface });
  const r = rng(gen);
  const slots = Uint32Array.from(norm, () => int(r, 0, 1 << 20));
  const tags = Uint32Array.from(norm, () => int(r, 1, gen));
  const enc = encodeSource(norm, slots, tags, gen, settings);
  expect(enc.jsonBytes).toBe(Buffer.byteLength(enc.json));
  const pad = 4 * int(r, 0, 3);
  const blob = Buffer.alloc(pad + 4 * enc.bin.length + enc.jsonBytes + 8, 0xee);
  Buffer.from(enc.bin.buffer, enc.bin.byteOffset, 4 * enc.bin.length).copy(blob, pad);
  const off = pad + 4 * enc.bin.length;
  blob.write(enc.json, off, 'utf8');
  return { norm, slots, tags, blob, off, len: enc.jsonBytes };
}

describe('ACL rule-set source: encode and decode', () => {
  it('gives back the canonical rules in force, their slots and tags and the settings, for every kind of rule', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const r = rng(seed);
      const rules = Array.from({ length: seed === 1 ? 0 : 400 * seed }, (_, i) => randomRule(r, i));
      const settings: Settings = { ...DEFAULT_SETTINGS, defaultAction: seed % 2 ? 'deny' : 'allow', eventIntervalMs: 10 * seed, verdictCache: seed % 3 !== 0 };
      const t = roundTrip(rules, settings, seed + 10);
      const src = decodeSource(t.blob, t.off, t.len);
      expect(src).toMatchObject({ v: 2, gen: seed + 10, ...settings });
      expect(src.rules).toEqual(t.norm.map((n) => n.rule));
      expect(src.slots).toEqual([...t.slots]);
      expect(src.tags).toEqual([...t.tags]);
      // and the rules read back normalize to the same rules (what adoption does with them)
      expect(normalizeRules(src.rules, { capacity: 1 << 20, resolveIface }).map((n) => n.rule)).toEqual(src.rules);
    }
  });

  it('still reads a version-1 source (the whole set as JSON)', () => {
    const src = { v: 1, gen: 3, ...DEFAULT_SETTINGS, rules: [{ id: 'a', action: 'deny', src: '198.18.0.0/15' }], slots: [5], tags: [2] };
    const json = JSON.stringify(src);
    expect(decodeSource(Buffer.from(json), 0, Buffer.byteLength(json))).toEqual(src);
  });

  it('refuses another version, and a damaged source, with ERR_INVALID_ARGUMENT naming pin', () => {
    const r = rng(99);
    const t = roundTrip(
      Array.from({ length: 50 }, (_, i) => randomRule(r, i)),
      DEFAULT_SETTINGS,
      4,
    );
    const refused = (blob: Buffer, len = t.len) => {
      try {
        decodeSource(blob, t.off, len);
      } catch (e) {
        expect(e).toBeInstanceOf(BpfkitError);
        expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'pin' });
        return (e as Error).message;
      }
      return 'not refused';
    };
    const other = Buffer.from(t.blob);
    other.write('{"v":3,', t.off, 'utf8');
    expect(refused(other)).toMatch(/source version 3 is not supported/);
    // the words say more fields than there are: the count does not end where the slots begin
    const damaged = Buffer.from(t.blob);
    const firstFlags = t.off - 4 * (JSON.parse(t.blob.toString('utf8', t.off, t.off + t.len)) as { words: number }).words;
    damaged.writeUInt32LE(damaged.readUInt32LE(firstFlags) | (2 << 22), firstFlags);
    expect(refused(damaged)).toMatch(/damaged source/);
    // a word count beyond the blob's start
    const json = t.blob.toString('utf8', t.off, t.off + t.len).replace(/"words":\d+/, '"words":999999');
    const big = Buffer.concat([t.blob.subarray(0, t.off), Buffer.from(json)]);
    expect(refused(big, Buffer.byteLength(json))).toMatch(/damaged source/);
  });
});
