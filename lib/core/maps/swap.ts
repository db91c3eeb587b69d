/**
 * DoubleBuffer: atomic configuration swaps, the user-space half of
 * bpf/include/bpfkit_swap.h.
 *
 * A module keeps everything a packet consults in one of two preallocated copies (maps)
 * and a one-slot array of maps (the swap slot) that points at the copy in use. A change
 * is written into the idle copy, then `flip()` points the slot at it in one map update.
 * The kernel returns from that update only after an RCU grace period, so once `flip()`
 * resolves no program still holds the old copy: it becomes the idle one and may be
 * rewritten. A program that looks the slot up once per packet therefore judges every
 * packet by the whole old or the whole new configuration, never a mix.
 *
 * Changes must not interleave (two writers of the idle copy): `serial()` runs them one
 * at a time, in call order, and a failed change does not stop later ones.
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import type { BpfMap } from './map.js';

/** What a copy must offer: a map fd to put in the slot and the map's kernel id. */
export interface SwapCopy {
  /** The copy's map fd, written into the slot. */
  readonly fd: number;
  /** The copy's kernel map id (what reading the slot gives back). */
  readonly info: { readonly id: number };
}

/**
 * Two copies of a module's configuration and the swap slot that points at one of them:
 * write the idle copy, then {@link DoubleBuffer.flip} in one map update (see the file's notes).
 */
export class DoubleBuffer<C extends SwapCopy> {
  readonly #slot: BpfMap<number, number>;
  readonly #copies: readonly [C, C];
  #active: 0 | 1;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * A double buffer over `slot` and its two `copies`.
   * @param slot the one-entry BPF_MAP_TYPE_ARRAY_OF_MAPS (u32 key, u32 value: a map fd to
   *   write, a map id when read)
   * @param copies the two copies, in the order the module numbers them (0 and 1)
   * @param active which copy the slot points at now (see {@link DoubleBuffer.current})
   */
  constructor(slot: BpfMap<number, number>, copies: readonly [C, C], active: 0 | 1 = 0) {
    if (copies.length !== 2) invalidArgument('copies', `a double buffer has two copies, got ${copies.length}`);
    if (active !== 0 && active !== 1) invalidArgument('active', `must be 0 or 1, got ${String(active)}`);
    this.#slot = slot;
    this.#copies = copies;
    this.#active = active;
  }

  /**
   * Which copy the slot points at, read from the kernel (for adopting a pinned
   * instance): 0 or 1, or undefined when the slot is empty.
   */
  static current(slot: BpfMap<number, number>, copies: readonly [SwapCopy, SwapCopy]): 0 | 1 | undefined {
    const id = slot.get(0);
    if (id === undefined || id === 0) return undefined;
    if (id === copies[0].info.id) return 0;
    if (id === copies[1].info.id) return 1;
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `swap slot '${slot.name}' points at map id ${id}, which is neither of its two copies`, {
      field: 'slot',
    });
  }

  /** Index of the copy packets use. */
  get activeIndex(): 0 | 1 {
    return this.#active;
  }
  /** Index of the copy a change may write. */
  get idleIndex(): 0 | 1 {
    return (1 - this.#active) as 0 | 1;
  }
  /** The copy packets use: never write it. */
  get active(): C {
    return this.#copies[this.#active];
  }
  /** The copy a change writes before {@link flip}. */
  get idle(): C {
    return this.#copies[this.idleIndex];
  }

  /**
   * Points the slot at the idle copy, off the JS thread. Resolves after the kernel's
   * grace period: no program still sees the previous copy, which is now the idle one.
   * On failure the slot is unchanged and so is `activeIndex`.
   */
  async flip(): Promise<void> {
    const next = this.idleIndex;
    await this.#slot.setAsync(0, this.#copies[next].fd);
    this.#active = next;
  }

  /**
   * Runs `fn` after every earlier change finished: changes to the copies apply one at a
   * time, in call order. A change that throws rejects its own promise only.
   */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
