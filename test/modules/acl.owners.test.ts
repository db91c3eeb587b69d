/**
 * SlotOwners (lib/modules/acl/owners.ts): how an event's (generation, slot) is named, and
 * when a superseded owner may be forgotten. Pure bookkeeping, no kernel.
 */
import { describe, expect, it } from 'vitest';
import { EVENT_RING_BYTES, SlotOwners } from '../../lib/modules/acl/owners.js';

const unknown = (slot: number, gen: number) => `(unknown rule: slot ${slot}, generation ${gen})`;
const ev = (...gens: number[]) => gens.map((gen) => ({ gen }));

describe('SlotOwners', () => {
  it('names the owner of the event generation, also while the flip is pending, and forgets a failed flip', () => {
    const o = new SlotOwners(100);
    o.own(5, 1, 'a');
    o.flipped(1, 0);
    o.own(5, 3, 'b'); // recorded before the flip to 3 returns
    expect(o.resolve(2, 5)).toBe('a');
    expect(o.resolve(3, 5)).toBe('b');
    expect(o.resolve(0, 5)).toBe(unknown(5, 0));
    expect(o.resolve(3, 0xffffff)).toBeNull();
    o.abort(); // the flip failed: generation 3 never judged a packet
    expect(o.resolve(3, 5)).toBe('a');
    expect(o.kept).toBe(0);
    o.own(5, 3, 'c');
    o.flipped(3, 1000);
    expect([o.resolve(2, 5), o.resolve(3, 5)]).toEqual(['a', 'c']);
  });

  it('keeps a superseded owner until ring order proves no unread event can name it', () => {
    const o = new SlotOwners(100);
    o.own(1, 1, 'a');
    o.flipped(1, 0);
    o.own(1, 2, 'b');
    o.flipped(2, 3 * EVENT_RING_BYTES); // three events pending when the flip to 2 returned
    o.read(ev(1, 2)); // an event of 2 proves nothing about 1
    expect(o.kept).toBe(1);
    o.read(ev(1)); // the third pending event: everything older than 2 was read
    expect(o.kept).toBe(0);
    expect(o.resolve(1, 1)).toBe(unknown(1, 1));
    expect(o.resolve(2, 1)).toBe('b');
    o.own(1, 3, 'c');
    o.flipped(3, 10 * EVENT_RING_BYTES);
    o.own(1, 4, 'd');
    o.flipped(4, 10 * EVENT_RING_BYTES);
    expect(o.kept).toBe(2);
    o.read(ev(4)); // generation 4 read: every event of 2 and older was read
    expect(o.kept).toBe(1);
    expect([o.resolve(3, 1), o.resolve(4, 1)]).toEqual(['c', 'd']);
  });

  it('keeps at most `limit` superseded owners, dropping the oldest first', () => {
    const o = new SlotOwners(3);
    for (let g = 1; g <= 8; g++) {
      o.own(g % 2, g, `r${g}`);
      o.flipped(g, 1 << 20); // nothing is read
    }
    expect(o.kept).toBe(3);
    // slot 0: r2 r4 r6 r8, slot 1: r1 r3 r5 r7; the three newest superseded are r4/r5/r6
    for (let g = 1; g <= 8; g++) expect(o.resolve(g, g % 2)).toBe(g >= 4 ? `r${g}` : unknown(g % 2, g));
  });
});
