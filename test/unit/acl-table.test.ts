/**
 * The rule set in columns (lib/modules/acl/table.ts): after a one-rule change in place
 * (append, setRow, remove) the table holds exactly the rows of validating the changed
 * list from scratch, for random rules of every kind (lists, IPv6, ICMP, interfaces), also
 * when an append grows the columns, and keeps the canonical forms already made.
 */
import { describe, expect, it } from 'vitest';
import { normalizeRule, normalizeRuleSet, type AclRule } from '../../lib/modules/acl/rules.js';
import { APPEND_ROOM, type RuleTable } from '../../lib/modules/acl/table.js';
import { randomAclRule } from '../helpers/acl-random.js';
import { rng } from '../helpers/rng.js';

const resolveIface = (v: string | number) => (typeof v === 'number' ? v : 7);
const table = (rules: readonly AclRule[]) => normalizeRuleSet(rules, { capacity: 1 << 16, resolveIface }).norm;
const rowsOf = (t: RuleTable) => t.rows().map((n) => ({ ...n, rule: n.rule }));
/** Appends past the room a validated set's arrays keep. */
const grow = APPEND_ROOM + 2;

describe('RuleTable: one-rule changes in place', () => {
  it('adds, replaces and removes rows of random sets', () => {
    const r = rng(3);
    let tried = 0;
    for (let round = 0; round < 40; round++) {
      const list: AclRule[] = [];
      for (let i = 0; list.length < 60 && i < 1000; i++) {
        const rule = randomAclRule(r, 1000 * round + i, { every: true });
        try {
          normalizeRule(rule, 0, resolveIface);
          list.push(rule);
        } catch {
          /* a rule the validation refuses: not part of the set */
        }
      }
      const at = Math.floor(r() * list.length);
      const extra = normalizeRule({ ...list[(at + 1) % list.length]!, id: 'extra' }, 0, resolveIface);
      const swapped = normalizeRule({ ...list[(at + 2) % list.length]!, id: list[at]!.id }, 0, resolveIface);
      const cases: [(t: RuleTable) => void, AclRule[]][] = [
        [(t) => t.append(extra), [...list, extra.rule]],
        [(t) => t.setRow(at, swapped), list.map((x, k) => (k === at ? swapped.rule : x))],
        [(t) => t.remove(at), list.filter((_, k) => k !== at)],
        [(t) => t.remove(0), list.slice(1)],
        [(t) => t.remove(list.length - 1), list.slice(0, -1)],
        // past the columns' room (they grow), then a removal
        [
          (t) => {
            for (let k = 0; k < grow; k++) t.append({ ...extra, id: `e${k}` } as typeof extra);
            t.remove(at);
          },
          [...list, ...Array.from({ length: grow }, (_, k) => ({ ...extra.rule, id: `e${k}` }))].filter((_, k) => k !== at),
        ],
      ];
      for (const [change, want] of cases) {
        const t = table(list);
        const made = new Map<string, AclRule>();
        for (let i = 0; i < t.length; i += 7) made.set(t.ids[i]!, t.rule(i)); // some canonical forms made, as rules() does
        change(t);
        expect(t.length).toBe(want.length);
        expect(rowsOf(t)).toEqual(rowsOf(table(want)));
        // the canonical forms made before are the same objects (the next replace takes them over by identity), except the replaced rule's
        for (let i = 0; i < t.length; i++) {
          const id = t.ids[i]!;
          if (made.has(id) && !(change === cases[1]![0] && i === at)) expect(t.rule(i)).toBe(made.get(id));
        }
        tried++;
      }
    }
    expect(tried).toBe(240);
  });
});
