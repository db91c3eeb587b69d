/**
 * The rule set's source (lib/modules/acl/source.ts): what a process adopting a pinned
 * firewall reads back is exactly the canonical rules in force, their slots and tags and
 * the settings, for random sets of every kind of rule the validator accepts (IPv4 and
 * IPv6 addresses, IPv4-mapped ones, lists, protocols by name and by number, ports as
 * numbers, ranges and text, ICMP type and code, interfaces by index and by name); and
 * what it cannot read is refused with ERR_INVALID_ARGUMENT naming pin.
 */
import { describe, expect, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import { DEFAULT_SETTINGS, type Settings } from '../../lib/modules/acl/options.js';
import { normalizeRules, type AclRule } from '../../lib/modules/acl/rules.js';
import { RuleTable } from '../../lib/modules/acl/table.js';
import { decodeSource, encodeSource } from '../../lib/modules/acl/source.js';
import { int, randomAclRule } from '../helpers/acl-random.js';
import { rng } from '../helpers/rng.js';

const resolveIface = (v: string | number) => (typeof v === 'number' ? v : 7);

/** A source encoded at the end of a buffer (as in a blob: the words, then the JSON), decoded. */
function roundTrip(rules: AclRule[], settings: Settings, gen: number) {
  const norm = normalizeRules(rules, { capacity: 1 << 20, resolveIface });
  const r = rng(gen);
  const slots = Uint32Array.from(norm, () => int(r, 0, 1 << 20));
  const tags = Uint32Array.from(norm, () => int(r, 1, gen));
  const enc = encodeSource(RuleTable.of(norm), slots, tags, gen, settings);
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
      const rules = Array.from({ length: seed === 1 ? 0 : 400 * seed }, (_, i) => randomAclRule(r, i, { every: true }));
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
      Array.from({ length: 50 }, (_, i) => randomAclRule(r, i, { every: true })),
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
