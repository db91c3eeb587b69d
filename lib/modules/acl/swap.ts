/**
 * The rule-set swap engine of an AclFirewall: the rule set in force and its counter-slot
 * assignments, and how a new set replaces it.
 *
 * The whole rule set is compiled into one array-map value (the "blob", see
 * classifier.ts). Two blob maps are preallocated (BPF_F_MMAPABLE, mapped into this
 * process); a swap writes the bytes the new set uses, and zeroes what that blob's previous
 * set used beyond them, into the idle one through its mapping, and points `acl_blobs[0]`
 * (an array of maps) at it. Blob maps without the flag (pinned by an older version) are
 * written whole with one BPF_MAP_UPDATE instead. The program reads that slot once per
 * packet, so every packet is judged by the old or the new set, never a mix. The kernel
 * returns from that update only after every program that could still see the old blob
 * finished (synchronize_rcu), so the old blob and the counter slots of removed rules can
 * be reused by the next swap right away.
 */
import { BpfkitError } from '../../core/errors.js';
import { compileBlob, type CompileOptions } from './classifier.js';
import type { BlobMap, Handles } from './install.js';
import { applyDeltaSource, Overlay, OVERLAY_WORDS, type DeltaSource } from './delta.js';
import { BLOB_MAGIC, BLOB_VERSION, H_DELTA_LEN, H_DELTA_OFF, H_MAGIC, H_SRC_LEN, H_SRC_OFF, H_VERSION, HDR_WORDS, writeBlobHeader } from './layout.js';
import { DEFAULT_SETTINGS, type AclCompileInfo, type Settings, type Variant } from './options.js';
import { SlotOwners } from './owners.js';
import { expandRules, normalizeRuleSet, normalizeRules, type AclRule, type NormalizedRule } from './rules.js';
import { RuleTable } from './table.js';
import { decodeSource, encodeSource } from './source.js';

/** One rule changed by id (RuleSets.change). */
export type OneChange = { kind: 'add'; rule: unknown } | { kind: 'update'; rule: unknown } | { kind: 'remove'; id: string };
import { DoubleBuffer } from '../../core/maps/swap.js';

/**
 * Per-step times of the last prepare() and commit(), in ms, when `on` (a bench's or a
 * profiling script's switch; not part of the package's API). Off: nothing is recorded.
 */
export const replaceSteps: { on: boolean; ms: Record<string, number> } = { on: false, ms: {} };
const step = (name: string, t0: number): number => {
  const t = performance.now();
  if (replaceSteps.on) replaceSteps.ms[name] = (replaceSteps.ms[name] ?? 0) + t - t0;
  return t;
};

/** A validated, compiled rule set, ready for commit(). */
export interface Prepared {
  norm: RuleTable;
  settings: Settings;
  slots: Uint32Array;
  tags: Uint32Array;
  fresh: number[]; // slots taken from the free list
  gen: number;
  used: number; // bytes of the blob in use
  words: Uint32Array; // the compiled blob (its header as compiled)
  header: Uint32Array; // the first HDR_WORDS words, header fields filled in
  overlay: boolean; // the overlay region (OVERLAY_WORDS, after the words) fits
  bin: Uint32Array; // the source's words (source.ts), right before srcOff
  srcOff: number; // word offset of the source's JSON (after the words, the overlay region when it fits, bin)
  json: string; // the source's JSON part, at word srcOff: fill encodes it in place
  jsonBytes: number; // its length in UTF-8
  byId: Map<string, number>; // id -> index in norm
  info: AclCompileInfo;
}

export class RuleSets {
  readonly maxRules: number;
  readonly #variant: string;
  readonly #blobBytes: number;
  readonly #compileOpts: CompileOptions;
  readonly #resolveIface: (v: string | number) => number;
  #buf: Buffer | undefined; // staging buffer of the whole-value write (blobs not mmapable)
  #bufUsed = 0; // bytes of #buf the last set written into it used
  #mmapable: boolean | undefined; // blobs are written through mappings (undefined: not tried yet)
  #blobUsed: [number, number] = [0, 0]; // bytes of each blob map its last written set used
  /** acl_blobs[0] -> blob a | b; knows which is in force (made from the handles on first use). */
  #swap: DoubleBuffer<BlobMap> | undefined;
  #gen = 0;
  #settings: Settings = { ...DEFAULT_SETTINGS };
  #norm = new RuleTable(0);
  #slots: Uint32Array = new Uint32Array(0); // slot of rule i
  #tags: Uint32Array = new Uint32Array(0);
  #slotById = new Map<string, number>(); // id -> index in #norm/#slots/#tags
  #free: number[] = [];
  readonly #owners: SlotOwners; // (generation, slot) -> rule id, for events
  #lastInfo: AclCompileInfo | undefined;
  #overlay: Overlay | undefined; // the changes since the set in force was compiled (delta.ts)
  #compiles = 0; // compiled sets committed (an overlay's id)
  #busy = false; // a commit or change is under way
  #preparing = 0; // prepare() calls under way (a compile on the thread pool, most likely)
  #warmLater: Handles | undefined; // #warm skipped while preparing: done if that prepare fails
  #blobBase: [{ id: number; applied: number }, { id: number; applied: number }] = [
    { id: -1, applied: 0 },
    { id: -1, applied: 0 },
  ];

  constructor(o: { maxRules: number; variant: Variant; compile: CompileOptions; resolveIface: (v: string | number) => number }) {
    this.maxRules = o.maxRules;
    this.#variant = o.variant.name;
    this.#blobBytes = o.variant.bytes;
    this.#compileOpts = o.compile;
    this.#resolveIface = o.resolveIface;
    this.#owners = new SlotOwners(Math.max(4096, 2 * o.maxRules));
    for (let s = 2 * o.maxRules - 1; s >= 0; s--) this.#free.push(s);
  }

  /** Generation of the rule set in force. */
  get generation(): number {
    return this.#gen;
  }
  get settings(): Settings {
    return this.#settings;
  }
  /** The rules in force (not copied). */
  get norm(): RuleTable {
    return this.#norm;
  }
  /** Counter slot of rule i in force. */
  get slots(): Uint32Array {
    return this.#slots;
  }
  /** Index of the rule with this id in force. */
  indexOf(id: string): number | undefined {
    return this.#slotById.get(id);
  }
  get lastInfo(): AclCompileInfo | undefined {
    return this.#lastInfo;
  }
  /** Which rule an event names. */
  get owners(): SlotOwners {
    return this.#owners;
  }

  /**
   * The canonical rules in force, not copied: for building the next set (prepare() takes
   * them from the set in force without validating them again).
   */
  ownRules(): AclRule[] {
    return this.#norm.rules();
  }

  /** Takes over a pinned firewall's rule set in force (blob `active`). */
  adopt(h: Handles, active: 0 | 1): void {
    this.#swap = new DoubleBuffer(h.outer, [h.blobs[0]!, h.blobs[1]!], active);
    // how far an earlier process wrote either blob is not known: the first write of each zeroes it whole
    this.#blobUsed = [this.#blobBytes, this.#blobBytes];
    this.#restore(h, this.#mapping(h, active) ?? h.blobs[active]!.get(0)!);
  }

  /** Drops the staging buffer (the handles are closed). */
  release(): void {
    this.#buf = undefined;
    this.#swap = undefined;
  }

  /** Reads the rule set, settings and slot assignments back from a blob (adoption). */
  #restore(h: Handles, blob: Buffer): void {
    const w = (i: number) => blob.readUInt32LE(4 * i);
    if (w(H_MAGIC) !== BLOB_MAGIC || w(H_VERSION) !== BLOB_VERSION) {
      throw new BpfkitError(
        'ERR_INVALID_ARGUMENT',
        `pin: the rule set in force has an unknown format (magic ${w(H_MAGIC).toString(16)}, version ${w(H_VERSION)})`,
        { field: 'pin' },
      );
    }
    const src = decodeSource(blob, w(H_SRC_OFF) * 4, w(H_SRC_LEN));
    if (w(H_DELTA_OFF) !== 0) {
      // rules changed one at a time since the compile (delta.ts): the set in force is the source plus those changes
      const d = JSON.parse(blob.toString('utf8', w(H_DELTA_OFF), w(H_DELTA_OFF) + w(H_DELTA_LEN))) as DeltaSource;
      Object.assign(src, applyDeltaSource(src.rules, src.slots, src.tags, d), { gen: d.gen });
    }
    this.#settings = {
      defaultAction: src.defaultAction,
      eventIntervalMs: src.eventIntervalMs,
      defaultDenyEvents: src.defaultDenyEvents,
      events: src.events ?? true,
      verdictCache: src.verdictCache ?? true,
    };
    this.#gen = src.gen;
    this.#norm = normalizeRuleSet(src.rules, { capacity: this.maxRules, resolveIface: this.#resolveIface }).norm;
    this.#slots = Uint32Array.from(src.slots);
    this.#tags = Uint32Array.from(src.tags);
    this.#slotById.clear();
    const used = new Set<number>();
    for (let i = 0; i < this.#norm.length; i++) {
      const id = this.#norm.ids[i]!;
      this.#slotById.set(id, i);
      used.add(src.slots[i]!);
      this.#owners.own(src.slots[i]!, src.tags[i]!, id);
    }
    // events of older generations may wait in the ring: named when the set in force covers them
    this.#owners.flipped(src.gen, h.rb.stats().pendingBytes);
    this.#free = [];
    for (let s = 2 * this.maxRules - 1; s >= 0; s--) if (!used.has(s)) this.#free.push(s);
  }

  /** Validates and compiles a rule set: the words, header and source commit() writes (no kernel change). */
  async prepare(rules: readonly AclRule[] | unknown, settings: Settings): Promise<Prepared> {
    this.#preparing++;
    try {
      return await this.#prepare(rules, settings);
    } catch (e) {
      // no new set: the one in force keeps its overlay, ready it for one-rule changes
      const h = this.#warmLater;
      this.#warmLater = undefined;
      if (h && this.#overlay) setImmediate(() => this.#warm(h));
      throw e;
    } finally {
      this.#preparing--;
    }
  }

  async #prepare(rules: readonly AclRule[] | unknown, settings: Settings): Promise<Prepared> {
    const t0 = performance.now();
    if (replaceSteps.on) replaceSteps.ms = {};
    let t = t0;
    // rules unchanged since the set in force (same id, same canonical form) are not
    // validated again; `at`: each rule's position in the set in force (-1: a new id)
    const previous = { ids: this.#slotById, rules: this.#norm };
    const at = new Int32Array(Array.isArray(rules) ? Math.min(rules.length, this.maxRules) : 0);
    // byId: the set in force's own map when the ids are the same, in the same order
    // (nothing changes it before commit() takes it over; a failed commit leaves it as is)
    const { norm, ids: byId } = normalizeRuleSet(rules, { capacity: this.maxRules, resolveIface: this.#resolveIface, previous, at });
    t = step('validate', t);
    const gen = this.#gen + 1;
    const slots = new Uint32Array(norm.length);
    const tags = new Uint32Array(norm.length);
    const fresh: number[] = [];
    let freeAt = this.#free.length;
    for (let i = 0; i < norm.length; i++) {
      const have = at[i]!;
      if (have >= 0) {
        slots[i] = this.#slots[have]!;
        tags[i] = this.#tags[have]!;
      } else {
        if (freeAt === 0) throw new BpfkitError('ERR_MAP_FULL', 'no free rule counter slot (internal error)', { field: 'rules' });
        const s = this.#free[--freeAt]!;
        fresh.push(s);
        slots[i] = s;
        tags[i] = gen;
      }
    }
    t = step('slots', t);
    const { v4, v6 } = expandRules(norm, slots, tags);
    t = step('expand', t);
    // the trees are built on the thread pool; the source meanwhile, on this thread
    const compiling = compileBlob(v4, v6, this.#compileOpts, this.#blobBytes);
    compiling.catch(() => undefined); // awaited below; not unhandled if encoding the source throws first
    t = step('compileCall', t);
    const { bin, json, jsonBytes } = encodeSource(norm, slots, tags, gen, settings);
    t = step('source', t);
    const compiled = await compiling.catch((e: unknown) => {
      if (!(e instanceof BpfkitError) || e.code !== 'ERR_MAP_FULL') throw e;
      throw new BpfkitError(
        'ERR_MAP_FULL',
        `${e.message}: the firewall's rule-set maps hold ${this.#blobBytes} (variant ${this.#variant}); attach with a larger maxRules`,
        {
          field: 'rules',
          details: e.details,
        },
      );
    });
    t = step('compileWait', t);
    const words = compiled.words;
    // the overlay region (one-rule changes, delta.ts), when the blob has room for it
    const overlay = (words.length + OVERLAY_WORDS + bin.length) * 4 + jsonBytes <= this.#blobBytes;
    const srcOff = words.length + (overlay ? OVERLAY_WORDS : 0) + bin.length;
    const used = srcOff * 4 + jsonBytes;
    if (used > this.#blobBytes) {
      throw new BpfkitError(
        'ERR_MAP_FULL',
        `rules: the compiled rule set needs ${used} bytes, the firewall's rule-set maps hold ${this.#blobBytes} (variant ${this.#variant}); attach with a larger maxRules`,
        { field: 'rules', details: { needed: used, capacity: this.#blobBytes, trees: compiled.trees } },
      );
    }
    // nothing is written to the kernel here: commit() writes the idle blob
    const header = words.slice(0, HDR_WORDS);
    writeBlobHeader(header, {
      usedWords: Math.ceil(used / 4),
      gen,
      eventIntervalMs: settings.eventIntervalMs,
      source: { offWords: srcOff, bytes: jsonBytes },
      rules: norm.length,
      flags: {
        defaultDeny: settings.defaultAction === 'deny',
        defaultDenyEvents: settings.defaultDenyEvents,
        events: settings.events,
        verdictCache: settings.verdictCache,
      },
      createdMs: Date.now(),
    });
    step('header', t);
    return {
      norm,
      settings,
      slots,
      tags,
      fresh,
      gen,
      used,
      words,
      header,
      overlay,
      bin,
      srcOff,
      json,
      jsonBytes,
      byId,
      info: {
        rules: norm.length,
        records: v4.count + v6.count,
        bytes: used,
        capacityBytes: this.#blobBytes,
        trees: compiled.trees,
        compileMs: performance.now() - t0,
        overlay: 0,
      },
    };
  }

  /** Writes the prepared blob into the idle map and makes it the one in force. */
  async commit(h: Handles, p: Prepared): Promise<void> {
    this.#busy = true;
    try {
      await this.#commit(h, p);
    } finally {
      this.#busy = false;
    }
  }

  async #commit(h: Handles, p: Prepared): Promise<void> {
    let t = performance.now();
    // slots new to this set: nothing counts in them any more (the previous swap's
    // flip waited for running programs), so zero them before the new set uses them
    await h.ruleCounters.zero(p.fresh);
    t = step('zero', t);
    // the idle blob: no program reads it since the previous flip returned (it waited for
    // every program that could still see it)
    // a new firewall's slot is empty: blob a counts as in force, the first set goes to b
    const swap = (this.#swap ??= new DoubleBuffer(h.outer, [h.blobs[0]!, h.blobs[1]!], 0));
    const idle = swap.idleIndex;
    const mem = this.#mapping(h, idle);
    const base = ++this.#compiles;
    this.#blobBase[idle] = { id: mem ? base : -1, applied: 0 };
    if (mem) {
      RuleSets.#fill(mem, p, this.#blobUsed[idle]);
      this.#blobUsed[idle] = p.used;
    } else {
      if (!this.#buf) {
        this.#buf = Buffer.alloc(this.#blobBytes);
        this.#bufUsed = 0;
      }
      RuleSets.#fill(this.#buf, p, this.#bufUsed);
      this.#bufUsed = p.used;
      await h.blobs[idle]!.writeColumns(Buffer.alloc(4), this.#buf, 1);
    }
    t = step('fill', t);
    // the new ids' slots are theirs from this generation on: recorded before the flip,
    // since the kernel judges packets with the new set while the flip waits
    for (let i = 0; i < p.norm.length; i++) {
      if (p.tags[i] === p.gen) this.#owners.own(p.slots[i]!, p.gen, p.norm.ids[i]!);
    }
    // the flip (lib/core/maps/swap.ts): resolves after the grace period, and only then is the
    // new blob the one in force
    const flipped = swap.flip();
    flipped.catch(() => undefined); // awaited below
    // bookkeeping, worked out while the flip waits for running programs and applied once
    // it returned: the old set is gone from every CPU then, its removed rules' slots are
    // free. prepare() took the fresh slots from the end of #free (changes are serialised).
    const free = this.#free.slice(0, this.#free.length - p.fresh.length);
    const inUse = new Uint8Array(2 * this.maxRules);
    for (let i = 0; i < p.slots.length; i++) inUse[p.slots[i]!] = 1;
    for (let i = 0; i < this.#slots.length; i++) if (!inUse[this.#slots[i]!]) free.push(this.#slots[i]!);
    t = step('owners+free', t);
    try {
      await flipped;
    } catch (e) {
      this.#owners.abort();
      this.#overlay = undefined;
      throw e;
    }
    t = step('flip', t);
    this.#owners.flipped(p.gen, h.rb.stats().pendingBytes);
    this.#overlay =
      mem && p.overlay
        ? new Overlay({
            id: base,
            at: p.words.length,
            srcEndBytes: p.used,
            capBytes: this.#blobBytes,
            header: p.header,
            base: p.norm,
            slots: p.slots,
            tags: p.tags,
            records: p.info.records,
          })
        : undefined;
    this.#warmLater = undefined;
    if (this.#overlay) setImmediate(() => this.#warm(h));
    this.#free = free;
    this.#slotById = p.byId;
    this.#norm = p.norm;
    this.#slots = p.slots;
    this.#tags = p.tags;
    this.#settings = p.settings;
    this.#gen = p.gen;
    this.#lastInfo = p.info;
    step('after', t);
  }

  /**
   * Changes one rule through the overlay (delta.ts): no compile, the idle blob gets the
   * words the change writes and the flip makes it the one in force, as commit() does.
   * Resolves undefined, having changed nothing, when the change needs a compile (no
   * overlay or it is full, a bad rule, a new id that exists, an unknown id, blobs not
   * mapped): the caller then takes the full path, which also reports any error.
   */
  async change(h: Handles, op: OneChange): Promise<AclCompileInfo | undefined> {
    this.#busy = true;
    try {
      return await this.#change(h, op);
    } finally {
      this.#busy = false;
    }
  }

  async #change(h: Handles, op: OneChange): Promise<AclCompileInfo | undefined> {
    const t0 = performance.now();
    const ov = this.#overlay;
    const swap = this.#swap;
    if (!ov || !swap) return undefined;
    const idle = swap.idleIndex;
    const active = swap.activeIndex;
    const mem = this.#mapping(h, idle);
    const act = this.#mapping(h, active);
    if (!mem || !act) return undefined;
    let nr: NormalizedRule | undefined;
    if (op.kind !== 'remove') {
      try {
        nr = normalizeRules([op.rule], { capacity: this.maxRules, resolveIface: this.#resolveIface })[0];
      } catch {
        return undefined;
      }
      if (!nr) return undefined;
    }
    const id = nr ? nr.id : (op as { id: string }).id;
    const i = this.#slotById.get(id);
    if (op.kind === 'add' ? i !== undefined || this.#norm.length >= this.maxRules || this.#free.length === 0 : i === undefined) return undefined;
    const gen = this.#gen + 1;
    const slot = op.kind === 'add' ? this.#free[this.#free.length - 1]! : this.#slots[i!]!;
    const tag = op.kind === 'add' ? gen : this.#tags[i!]!;
    const rules = this.#norm.length + (op.kind === 'add' ? 1 : op.kind === 'remove' ? -1 : 0);
    if (
      !ov.change(op.kind === 'add' ? undefined : id, nr ? { rule: nr, slot, tag } : undefined, new Uint32Array(act.buffer, act.byteOffset, act.length >>> 2))
    ) {
      this.#overlay = undefined; // full: the next compile folds it in
      return undefined;
    }
    const fin = ov.finish(gen, rules);
    if (!fin) {
      this.#overlay = undefined;
      return undefined;
    }
    if (op.kind === 'add') {
      // a slot new to the set: nothing counts in it any more (see commit)
      await h.ruleCounters.zero([slot]);
    }
    // the idle blob: a copy of the one in force the first time after a compile, then the
    // patches it lacks, the overlay JSON, and the header last
    if (this.#blobBase[idle].id !== ov.id) this.#copyActive(mem, act, idle, active, ov);
    const st = this.#blobBase[idle];
    const w = new Uint32Array(mem.buffer, mem.byteOffset, mem.length >>> 2);
    for (let k = st.applied; k < ov.patches.length; k++) w.set(ov.patches[k]!.words, ov.patches[k]!.off);
    mem.write(fin.json, ov.deltaOff, fin.jsonBytes, 'utf8');
    w.set(fin.header, 0);
    this.#blobUsed[idle] = Math.max(this.#blobUsed[idle], fin.usedBytes);
    this.#blobBase[idle] = { id: ov.id, applied: ov.patches.length };
    if (op.kind === 'add') this.#owners.own(slot, gen, id);
    try {
      await swap.flip();
    } catch (e) {
      this.#owners.abort();
      this.#overlay = undefined;
      this.#blobBase[idle] = { id: -1, applied: 0 };
      throw e;
    }
    this.#owners.flipped(gen, h.rb.stats().pendingBytes);
    // the set in force, after the flip (the old set is gone from every CPU)
    if (op.kind === 'add') {
      this.#free.pop();
      this.#norm.append(nr!);
      this.#slots = RuleSets.#append(this.#slots, slot);
      this.#tags = RuleSets.#append(this.#tags, tag);
      this.#slotById.set(id, this.#norm.length - 1);
    } else if (op.kind === 'update') {
      this.#norm.setRow(i!, nr!);
    } else {
      this.#free.push(slot);
      this.#norm.remove(i!);
      const drop = <T extends Uint32Array>(a: T) => {
        const b = new Uint32Array(a.length - 1);
        b.set(a.subarray(0, i), 0);
        b.set(a.subarray(i! + 1), i);
        return b;
      };
      this.#slots = drop(this.#slots);
      this.#tags = drop(this.#tags);
      this.#slotById.delete(id);
      for (let k = i!; k < this.#norm.length; k++) this.#slotById.set(this.#norm.ids[k]!, k);
    }
    this.#gen = gen;
    const last = this.#lastInfo;
    this.#lastInfo = {
      rules: this.#norm.length,
      records: ov.records,
      bytes: fin.usedBytes,
      capacityBytes: this.#blobBytes,
      trees: last?.trees ?? [],
      compileMs: performance.now() - t0,
      overlay: ov.used,
    };
    return this.#lastInfo;
  }

  /**
   * Readies the idle blob for a one-rule change after a compile, off the change's path:
   * copies the blob in force into it and finds the compiled records. Skipped while a
   * change is under way (the change does it then).
   */
  #warm(h: Handles): void {
    const ov = this.#overlay;
    const swap = this.#swap;
    if (this.#busy || !ov || !swap || this.#swap === undefined) return;
    if (this.#preparing > 0) {
      // a new set is being compiled: its commit makes this overlay moot, and the copy and
      // record map (tens of MB and ms at 100k rules) would take the JS thread and the
      // memory bandwidth from the compile
      this.#warmLater = h;
      return;
    }
    try {
      const idle = swap.idleIndex;
      const active = swap.activeIndex;
      if (this.#blobBase[active]!.id !== ov.id || this.#blobBase[idle]!.id === ov.id) return;
      const mem = this.#mapping(h, idle);
      const act = this.#mapping(h, active);
      if (!mem || !act) return;
      this.#copyActive(mem, act, idle, active, ov);
      ov.locate(new Uint32Array(act.buffer, act.byteOffset, act.length >>> 2));
    } catch {
      /* best effort: the next change does it */
    }
  }

  /** The blob in force copied into the idle one (the first change after a compile). */
  #copyActive(mem: Buffer, act: Buffer, idle: 0 | 1, active: 0 | 1, ov: Overlay): void {
    const n = this.#blobUsed[active];
    act.copy(mem, 0, 0, n);
    if (this.#blobUsed[idle] > n) mem.fill(0, n, this.#blobUsed[idle]);
    this.#blobUsed[idle] = n;
    this.#blobBase[idle] = { id: ov.id, applied: this.#blobBase[active].applied };
  }

  static #append(a: Uint32Array, v: number): Uint32Array {
    const b = new Uint32Array(a.length + 1);
    b.set(a);
    b[a.length] = v;
    return b;
  }

  /**
   * Blob `i` mapped into this process, or undefined when the blob maps were created
   * without BPF_F_MMAPABLE (a pinned firewall from an older version): then swaps write the
   * whole value with BPF_MAP_UPDATE.
   */
  #mapping(h: Handles, i: number): Buffer | undefined {
    if (this.#mmapable === false) return undefined;
    try {
      const mem = h.blobs[i]!.mmap();
      this.#mmapable = true;
      return mem;
    } catch (e) {
      if (!(e instanceof BpfkitError) || e.code !== 'ERR_UNSUPPORTED') throw e;
      this.#mmapable = false;
      return undefined;
    }
  }

  /** Writes a prepared set into a blob's bytes, zeroing what `prevUsed` covered beyond its end. */
  static #fill(dst: Buffer, p: Prepared, prevUsed: number): void {
    const w = new Uint32Array(dst.buffer, dst.byteOffset, p.srcOff);
    w.set(p.words);
    w.set(p.header);
    const binAt = p.srcOff - p.bin.length;
    w.fill(0, p.words.length, binAt); // the overlay region: empty
    w.set(p.bin, binAt);
    dst.write(p.json, p.srcOff * 4, p.jsonBytes, 'utf8');
    if (prevUsed > p.used) dst.fill(0, p.used, prevUsed);
  }
}
