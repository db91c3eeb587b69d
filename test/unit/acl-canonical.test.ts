/**
 * A normalized rule's canonical form (`rule`) is made from its numbers only when asked
 * for, and a rule of the next set is taken over from the set in force by comparing it
 * field by field with those numbers (sameRule). Both must say exactly what the eager
 * canonical object said: the same fields in the same order, and a rule taken over only if
 * it is that canonical form.
 */
import { describe, expect, it } from 'vitest';
import { normalizeRule, normalizeRuleSet, type AclRule } from '../../lib/modules/acl/rules.js';
import { randomAclRule } from '../helpers/acl-random.js';
import { rng } from '../helpers/rng.js';
import type { RuleTable } from '../../lib/modules/acl/table.js';

/** The canonical forms of a table's rules (the objects it keeps: what ownRules() hands to the next replace). */
const canonOf = (t: RuleTable) => Array.from({ length: t.length }, (_, i) => t.rule(i));

const FIELDS = ['id', 'action', 'proto', 'src', 'dst', 'srcPort', 'dstPort', 'icmpType', 'icmpCode', 'iface'];
const resolveIface = (v: string | number) => (typeof v === 'number' ? v : 7);

/** Valid random rules of every kind, with and without interfaces. */
function validRules(seed: number, n: number): AclRule[] {
  const r = rng(seed);
  const out: AclRule[] = [];
  for (let i = 0; out.length < n && i < 20 * n; i++) {
    const rule = randomAclRule(r, i, { every: true });
    try {
      normalizeRule(rule, 0, resolveIface);
      out.push(rule);
    } catch {
      /* a rule the validator refuses: not of interest here */
    }
  }
  return out;
}

/** Ways to make a rule that is not its canonical form (one field changed, added or removed). */
function variants(c: AclRule): Record<string, unknown>[] {
  const o = c as unknown as Record<string, unknown>;
  const out: Record<string, unknown>[] = [];
  for (const k of Object.keys(o)) {
    if (k !== 'id') {
      const { [k]: _, ...without } = o;
      out.push(without);
    }
    const v = o[k];
    if (typeof v === 'number') out.push({ ...o, [k]: v === 0 ? 1 : v - 1 });
    if (typeof v === 'string' && k !== 'id') out.push({ ...o, [k]: k === 'action' ? (v === 'deny' ? 'allow' : 'deny') : `${v}x` });
    if (Array.isArray(v)) {
      if (v[0] !== v[v.length - 1]) out.push({ ...o, [k]: [...v].reverse() });
      if (v.length > 1) out.push({ ...o, [k]: v.slice(0, 1) });
      if (v.length === 1) out.push({ ...o, [k]: v[0] });
    }
    if (typeof v === 'string' && (k === 'src' || k === 'dst')) out.push({ ...o, [k]: [v] });
    out.push({ ...o, [k]: undefined });
  }
  for (const k of FIELDS) if (!(k in o)) out.push({ ...o, [k]: k === 'proto' ? 'any' : k === 'iface' ? 3 : 80 });
  out.push({ ...o, dport: 80 });
  return out;
}

describe('the canonical form, made when asked for', () => {
  const rules = validRules(11, 2000);

  it('has the fields of AclRule in order, and normalizing it again gives itself', () => {
    let lists = 0;
    let icmp = 0;
    let ifaces = 0;
    for (let i = 0; i < rules.length; i++) {
      const n = normalizeRule(rules[i], i, resolveIface);
      const c = n.rule;
      expect(n.rule).toBe(c); // made once
      const keys = Object.keys(c);
      expect(keys).toEqual(FIELDS.filter((k) => keys.includes(k)));
      expect(normalizeRule(structuredClone(c), i, resolveIface).rule).toEqual(c);
      if (Array.isArray(c.src) || Array.isArray(c.dst)) lists++;
      if (c.icmpType !== undefined) icmp++;
      if (c.iface !== undefined) ifaces++;
    }
    expect(rules.length).toBe(2000);
    expect(Math.min(lists, icmp, ifaces)).toBeGreaterThan(20);
  });

  it('a rule of the next set is taken over exactly when it is the canonical form', () => {
    const noIface = rules.filter((r) => r.iface === undefined).slice(0, 600);
    const base = normalizeRuleSet(noIface, { capacity: 1 << 16 });
    const previous = { ids: base.ids, rules: base.norm };
    // the canonical forms, as copies (rules() hands out clones) and as the objects themselves
    const copies = normalizeRuleSet(
      canonOf(base.norm).map((r) => structuredClone(r)),
      { capacity: 1 << 16, previous },
    );
    const own = normalizeRuleSet(canonOf(base.norm), { capacity: 1 << 16, previous });
    expect(copies.norm.reused).toBe(noIface.length);
    expect(own.norm.reused).toBe(noIface.length);
    expect(copies.norm.rows()).toEqual(base.norm.rows());
    expect(own.norm.rows()).toEqual(base.norm.rows());
    // anything else is validated again, and gives what validating it alone gives
    let tried = 0;
    for (let i = 0; i < noIface.length; i += 3) {
      for (const v of variants(base.norm.rule(i))) {
        const set = canonOf(base.norm) as unknown[];
        set[i] = v;
        let alone;
        try {
          alone = normalizeRule(v, i);
        } catch (e) {
          expect(() => normalizeRuleSet(set, { capacity: 1 << 16, previous })).toThrow((e as Error).message);
          continue;
        }
        const got = normalizeRuleSet(set, { capacity: 1 << 16, previous });
        expect(got.norm.reused, JSON.stringify(v)).toBe(noIface.length - 1);
        const { src, dst, sport, dport, rule } = got.norm.row(i);
        expect({ src, dst, sport, dport, rule }).toEqual({ src: alone.src, dst: alone.dst, sport: alone.sport, dport: alone.dport, rule: alone.rule });
        expect(got.norm.row(i)).toEqual(alone);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(500);
  });

  it('a rule with an interface is always resolved again', () => {
    const withIface = rules.filter((r) => r.iface !== undefined).slice(0, 50);
    const base = normalizeRuleSet(withIface, { capacity: 1 << 16, resolveIface });
    const again = normalizeRuleSet(canonOf(base.norm), { capacity: 1 << 16, resolveIface, previous: { ids: base.ids, rules: base.norm } });
    expect(again.norm.reused).toBe(0);
    for (let i = 0; i < withIface.length; i++) expect(again.norm.rule(i)).toEqual(base.norm.rule(i));
  });
});
