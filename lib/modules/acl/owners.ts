/**
 * Which rule owned a counter slot in which generation: how an event read from the ring
 * (struct acl_event carries `gen` and `slot`) is named, whenever it is read.
 *
 * A slot is owned by one rule id from the generation that gave it that id (its tag) until
 * the slot's next owner's tag; a removed rule's slot is reused only after the flip that
 * removed it returned. So the owner of (gen, slot) is the slot's entry with the largest
 * tag <= gen. Entries are recorded before the flip that puts their generation in force
 * (the kernel judges with it while the flip waits), and an entry that has a successor
 * (superseded) is kept until no event older than the successor can be read any more:
 *
 *  - `readBelow`: every event of a generation below it has been read (or was lost). After
 *    the flip to generation G returned (synchronize_rcu), no program runs with a set older
 *    than G, so every event of those was reserved in the ring before; the ring is FIFO.
 *    Hence: (1) reading an event of generation G proves every event of G - 2 and older
 *    was read (it was reserved after the flip to G started, which was after the flip to
 *    G - 1 returned); (2) once this reader consumed the bytes that were pending in the
 *    ring when the flip to G had returned, every event older than G was read.
 *  - at most `limit` superseded entries are kept (oldest dropped first): an event whose
 *    generation's owner was dropped names '(unknown rule: slot S, generation G)'.
 */
import { SLOT_DEFAULT } from './layout.js';
import { EVENT_SIZE as ACL_EVENT_SIZE } from './layout.js';

/** Ring bytes one event takes (8-byte record header, 8-byte aligned): a lower bound of what reading one consumes. */
export const EVENT_RING_BYTES = Math.ceil((ACL_EVENT_SIZE + 8) / 8) * 8;

interface Owner {
  tag: number;
  id: string;
}

/** A FIFO of pairs of numbers, amortised O(1). */
class PairQueue {
  #a: number[] = [];
  #b: number[] = [];
  #head = 0;
  get length(): number {
    return this.#a.length - this.#head;
  }
  push(a: number, b: number): void {
    this.#a.push(a);
    this.#b.push(b);
  }
  /** First pair's members (queue not empty). */
  firstA(): number {
    return this.#a[this.#head]!;
  }
  firstB(): number {
    return this.#b[this.#head]!;
  }
  shift(): void {
    this.#head++;
    if (this.#head >= 1024 && this.#head * 2 >= this.#a.length) {
      this.#a = this.#a.slice(this.#head);
      this.#b = this.#b.slice(this.#head);
      this.#head = 0;
    }
  }
  pop(): void {
    this.#a.pop();
    this.#b.pop();
  }
  clear(): void {
    this.#a = [];
    this.#b = [];
    this.#head = 0;
  }
}

export class SlotOwners {
  readonly #bySlot = new Map<number, Owner[]>();
  /** Superseded entries in the order they were superseded: (slot, successor's tag). */
  readonly #superseded = new PairQueue();
  /** Flips not yet known to be drained from the ring: (generation, consumed bytes that drain it). */
  readonly #flips = new PairQueue();
  /** Slots given an owner by the change being committed (undone if its flip fails). */
  #journal: number[] = [];
  #readBelow = 0;
  #consumed = 0;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Records that `id` owns `slot` from generation `tag` on (part of the change being committed). */
  own(slot: number, tag: number, id: string): void {
    const l = this.#bySlot.get(slot);
    if (!l) this.#bySlot.set(slot, [{ tag, id }]);
    else {
      l.push({ tag, id });
      this.#superseded.push(slot, tag);
    }
    this.#journal.push(slot);
  }

  /** The change's flip failed: its generation never judged a packet, forget its owners. */
  abort(): void {
    for (let i = this.#journal.length - 1; i >= 0; i--) {
      const slot = this.#journal[i]!;
      const l = this.#bySlot.get(slot)!;
      l.pop();
      if (l.length) this.#superseded.pop();
      else this.#bySlot.delete(slot);
    }
    this.#journal = [];
  }

  /**
   * The flip to generation `gen` returned; `pendingBytes` were in the ring then (every
   * event of an older generation among them).
   */
  flipped(gen: number, pendingBytes: number): void {
    this.#journal = [];
    if (pendingBytes <= 0) this.#drained(gen);
    else this.#flips.push(gen, this.#consumed + pendingBytes);
    this.#release();
  }

  /** Events read from the ring, in ring order (call after naming them). */
  read(events: readonly { gen: number }[]): void {
    if (!events.length) return;
    this.#consumed += EVENT_RING_BYTES * events.length;
    let newest = 0;
    for (const e of events) if (e.gen > newest) newest = e.gen;
    this.#drained(newest - 1);
    while (this.#flips.length && this.#flips.firstB() <= this.#consumed) {
      this.#drained(this.#flips.firstA());
      this.#flips.shift();
    }
    this.#release();
  }

  /** Rule id of an event: null for the default action. */
  resolve = (gen: number, slot: number): string | null => {
    if (slot === SLOT_DEFAULT) return null;
    const l = this.#bySlot.get(slot);
    if (l) {
      for (let i = l.length - 1; i >= 0; i--) if (l[i]!.tag <= gen) return l[i]!.id;
    }
    return `(unknown rule: slot ${slot}, generation ${gen})`;
  };

  /** Superseded owners kept (for tests and diagnostics). */
  get kept(): number {
    return this.#superseded.length;
  }

  #drained(below: number): void {
    if (below > this.#readBelow) this.#readBelow = below;
  }

  /** Drops superseded owners no readable event can name, and the oldest beyond the limit. */
  #release(): void {
    const q = this.#superseded;
    while (q.length && (q.firstB() <= this.#readBelow || (q.length > this.#limit && this.#journal.length === 0))) {
      const l = this.#bySlot.get(q.firstA())!;
      l.shift();
      q.shift();
    }
  }
}
