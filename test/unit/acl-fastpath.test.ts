/**
 * The validation fast paths of ACL rules (lib/core/codecs/ip-text.ts readIPv6,
 * lib/modules/acl/rules.ts) against the general path (parseCidr, formatIPv6): the same
 * addresses, the same canonical text, the same normalized rules, on random sets with
 * IPv6, lists, ranges, interfaces and ICMP. And normalizeRuleSet's reuse of the set in
 * force's ids: the same result and the same errors as building the map.
 */
import { describe, expect, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import { formatIPv6, parseCidr } from '../../lib/core/codecs.js';
import { formatIPv6Words, readIPv6 } from '../../lib/core/codecs/ip-text.js';
import { normalizeRule, normalizeRuleSet, type AclRule, type NormalizedRule } from '../../lib/modules/acl/rules.js';
import { int, randomAclRule, v6Words } from '../helpers/acl-random.js';
import { rng } from '../helpers/rng.js';

/** The words as text in one of several spellings, canonical or not (valid or not). */
function spell(r: () => number, w: number[]): string {
  const k = r();
  if (k < 0.4) return formatIPv6(Buffer.from(w.flatMap((x) => [x >> 8, x & 255]))); // canonical
  if (k < 0.55) return w.map((x) => x.toString(16)).join(':'); // no '::'
  if (k < 0.65) return w.map((x) => x.toString(16).padStart(4, '0')).join(':'); // leading zeros
  if (k < 0.75) return formatIPv6(Buffer.from(w.flatMap((x) => [x >> 8, x & 255]))).toUpperCase();
  if (k < 0.85) {
    // '::' on some zero run, maybe not the longest
    const zs = w.map((x, i) => (x === 0 ? i : -1)).filter((i) => i >= 0);
    if (zs.length === 0) return w.map((x) => x.toString(16)).join(':');
    const a = zs[int(r, 0, zs.length - 1)]!;
    let b = a;
    while (b + 1 < 8 && w[b + 1] === 0 && r() < 0.8) b++;
    const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
    return `${hex(w.slice(0, a))}::${hex(w.slice(b + 1))}`;
  }
  // junk: a character changed, dropped or doubled
  const s = formatIPv6(Buffer.from(w.flatMap((x) => [x >> 8, x & 255])));
  const at = int(r, 0, s.length - 1);
  const junk = ':.g0/ 1';
  return r() < 0.5
    ? s.slice(0, at) + junk[int(r, 0, junk.length - 1)] + s.slice(at + 1)
    : r() < 0.5
      ? s.slice(0, at) + s.slice(at + 1)
      : s.slice(0, at) + s[at] + s.slice(at);
}

/** A prefix suffix: usually right, sometimes absent, /128, too long, leading zero or junk. */
function suffix(r: () => number, len: number): string {
  const k = r();
  if (k < 0.7) return `/${len}`;
  if (k < 0.8) return len === 128 ? '' : `/${len}`;
  if (k < 0.85) return '/129';
  if (k < 0.9) return `/0${len}`;
  if (k < 0.95) return '/';
  return `/${len}x`;
}

/** What the general path makes of a CIDR: the address, its length and canonical text, or null (an error). */
function general(s: string): { words: number[]; len: number; text: string } | null {
  try {
    const c = parseCidr(s, 'cidr');
    if (c.family !== 6) return null;
    const text = formatIPv6(c.addr);
    return { words: [0, 4, 8, 12].map((o) => c.addr.readInt32BE(o)), len: c.prefixLen, text: c.prefixLen === 128 ? text : `${text}/${c.prefixLen}` };
  } catch {
    return null;
  }
}

describe('readIPv6: the fast path agrees with parseCidr and formatIPv6', () => {
  it('reads every hex-group spelling as the general path does, and knows the canonical ones', () => {
    const r = rng(16);
    const out = new Int32Array(6);
    let canonical = 0;
    let other = 0;
    let general_ = 0;
    for (let n = 0; n < 20_000; n++) {
      const len = r() < 0.2 ? 128 : int(r, 0, 128);
      const s = spell(r, v6Words(r, len)) + suffix(r, len);
      const g = general(s);
      const slash = readIPv6(s, out);
      if (slash >= 0) {
        expect(g, s).not.toBeNull();
        expect([...out.subarray(0, 4)], s).toEqual(g!.words);
        expect(out[4], s).toBe(g!.len);
        expect(formatIPv6Words(out) + (out[4] === 128 ? '' : `/${out[4]}`), s).toBe(g!.text);
        // canonical: the input is its text (a '/128' suffix aside, which the rule drops)
        const plain = out[4] === 128 && slash < s.length ? s.slice(0, slash) : s;
        expect(out[5] === 1, s).toBe(plain === g!.text);
        if (out[5] === 1) canonical++;
        else other++;
      } else if (g) {
        // refused though valid: only IPv4-mapped addresses (mixed notation) and embedded IPv4, for the general path
        general_++;
        expect((g.text.startsWith('::ffff:') && g.text.includes('.')) || s.includes('.'), s).toBe(true);
      }
    }
    // every path was exercised
    expect(canonical).toBeGreaterThan(2000);
    expect(other).toBeGreaterThan(2000);
    expect(general_).toBeGreaterThan(100);
  });

  it('refuses what is not an address', () => {
    const out = new Int32Array(6);
    for (const s of [
      '',
      ':',
      '::::',
      ':1',
      '1:',
      '1::2::3',
      '1:::2',
      '2001:db8::/',
      '2001:db8::/-1',
      'fd00::/08',
      '::/129',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      'fd00::1 ',
      'g::1',
      '12345::',
      '198.18.0.1',
      '::ffff:198.18.0.1',
      'fd00::1/64',
    ]) {
      expect(readIPv6(s, out), s).toBe(-1);
    }
    expect(readIPv6('::', out)).toBe(2);
    expect(readIPv6('::/0', out)).toBe(2);
    expect(readIPv6('2001:db8::/32', out)).toBe(10);
    expect([...out]).toEqual([0x20010db8, 0, 0, 0, 32, 1]);
    expect(readIPv6('2001:DB8:0:0:0:0:0:1', out)).toBe(20);
    expect(formatIPv6Words(out)).toBe('2001:db8::1');
    expect(out[5]).toBe(0);
  });
});

/**
 * The same rule with its IPv6 addresses spelled otherwise: 'expanded' (upper case, every
 * group, leading zeros: readIPv6's non-canonical path) or 'mixed' (the last 32 bits as a
 * dotted quad: only the general path, parseCidr, reads that).
 */
function respell(rule: AclRule, how: 'expanded' | 'mixed'): AclRule {
  const slow = (s: string) => {
    if (!s.includes(':')) return s;
    const c = parseCidr(s, 'cidr');
    const words = [0, 2, 4, 6, 8, 10, 12, 14].map((o) => c.addr.readUInt16BE(o).toString(16).padStart(4, '0').toUpperCase());
    const text = how === 'expanded' ? words.join(':') : `${words.slice(0, 6).join(':')}:${[...c.addr.subarray(12)].join('.')}`;
    return `${text}/${c.prefixLen}`;
  };
  const out: AclRule = { ...rule };
  for (const f of ['src', 'dst'] as const) {
    const v = rule[f];
    if (v !== undefined) out[f] = typeof v === 'string' ? slow(v) : v.map(slow);
  }
  return out;
}

/** Every field of a normalized rule (some are made when read, so toEqual on the object would not see them). */
function plain(n: NormalizedRule): Record<string, unknown> {
  const { id, action, src, dst, proto, sport, dport, ifindex, iface, needsL4, rule } = n;
  return { id, action, src, dst, proto, sport, dport, ifindex, iface, needsL4, rule };
}

describe('normalizeRule: the fast path gives the general path’s rules', () => {
  it('random sets with IPv6, lists, ranges, ICMP and interfaces', () => {
    const r = rng(7);
    let v6 = 0;
    for (let i = 0; i < 5000; i++) {
      const rule = randomAclRule(r, i);
      for (const how of ['expanded', 'mixed'] as const) {
        const other = respell(rule, how);
        let fast;
        try {
          fast = normalizeRule(rule, i);
        } catch (e) {
          // a rule that mixes families without a pair, say: the other spelling fails the same way
          expect(e).toBeInstanceOf(BpfkitError);
          expect(() => normalizeRule(other, i)).toThrow((e as Error).message);
          continue;
        }
        expect(plain(fast), JSON.stringify(other)).toEqual(plain(normalizeRule(other, i)));
      }
      if (JSON.stringify(rule).includes(':')) v6++;
    }
    expect(v6).toBeGreaterThan(1000);
  });
});

describe('normalizeRuleSet: the ids of the set in force', () => {
  const rules = Array.from({ length: 50 }, (_, i) => randomAclRule(rng(i), i)).map((r) => ({ ...r, iface: undefined }));
  const clean = rules.map(({ iface: _, ...r }) => r as AclRule);
  const base = normalizeRuleSet(clean, { capacity: 100 });
  const previous = { ids: base.ids, rules: base.norm };

  it('the same ids in the same order: the set in force’s own map, the same rules', () => {
    const again = normalizeRuleSet(
      clean.map((r) => ({ ...r })),
      { capacity: 100, previous },
    );
    expect(again.ids).toBe(base.ids);
    expect(again.norm.rows().map(plain)).toEqual(base.norm.rows().map(plain));
  });

  it('ids that differ, are fewer, more or reordered: a map of the new positions', () => {
    const variants: AclRule[][] = [
      clean.slice(0, 20),
      [...clean, { id: 'extra', action: 'deny' }],
      [...clean.slice(0, 10), { id: 'mid', action: 'deny' }, ...clean.slice(10)],
      [...clean].reverse(),
      clean.map((r, i) => (i === 30 ? { ...r, id: 'renamed' } : r)),
    ];
    for (const v of variants) {
      const got = normalizeRuleSet(v, { capacity: 100, previous });
      expect(got.ids).not.toBe(base.ids);
      expect([...got.ids].sort()).toEqual(v.map((r, i) => [r.id, i] as [string, number]).sort());
    }
  });

  it('a duplicate id is the same error, whichever rule it copies', () => {
    for (const [dup, of] of [
      [5, 2],
      [40, 39],
      [49, 0],
    ] as const) {
      const v = clean.map((r, i) => (i === dup ? { ...r, id: clean[of]!.id } : r));
      let e: unknown;
      try {
        normalizeRuleSet(v, { capacity: 100, previous });
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(BpfkitError);
      expect(e).toMatchObject({ field: 'id', details: { index: dup }, message: expect.stringContaining(`duplicate id (also rule #${of})`) });
    }
  });
});
