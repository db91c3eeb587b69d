/**
 * The loss counter of a ring buffer: the BPF side's per-CPU count of failed reservations
 * (bpf/include/bpfkit_ringbuf.h), summed, and the timer that polls it while a 'lost'
 * listener is attached (lib/core/ringbuf.ts reports what it finds).
 */
import { u32, u64 } from '../codecs.js';
import { BpfMap, perCpu } from '../maps/map.js';
import type { NativeMapHandle } from '../native.js';
import type { RingBufferLoss } from './options.js';

// Loss-check timers hold their ring weakly; this clears a timer whose ring was collected.
const timerReaper = new FinalizationRegistry<NodeJS.Timeout>((t) => clearInterval(t));

export class LossCounter {
  readonly #map: BpfMap<number, bigint[], number, bigint | bigint[]>;
  /** The total at the last check (or at close). */
  seen = 0;
  /** performance.now() of the last check. */
  lastCheck = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Takes ownership of `handle` (a per-CPU array of one u64). */
  constructor(handle: NativeMapHandle) {
    this.#map = new BpfMap(handle, { key: u32, value: perCpu(u64) }, { perCpuValue: u64 });
  }

  get closed(): boolean {
    return this.#map.closed;
  }

  get timing(): boolean {
    return this.#timer !== undefined;
  }

  /** The total over all CPUs since the map was created. */
  read(): number {
    let sum = 0n;
    for (const v of this.#map.get(0) ?? []) sum += v;
    return Number(sum);
  }

  safeRead(): number | null {
    try {
      return this.read();
    } catch {
      return null;
    }
  }

  /** The losses counted since the last check, or undefined when there are none. */
  check(): RingBufferLoss | undefined {
    if (this.#map.closed) return undefined;
    this.lastCheck = performance.now();
    const total = this.read();
    if (total <= this.seen) return undefined;
    const count = total - this.seen;
    this.seen = total;
    return { count, total };
  }

  /** Calls `tick(owner)` every `ms` while `owner` lives (held weakly) until stop(). */
  start<T extends object>(owner: T, ms: number, tick: (owner: T) => void): void {
    if (this.#timer) return;
    const ref = new WeakRef(owner);
    this.#timer = setInterval(() => {
      const o = ref.deref();
      if (o) tick(o);
    }, ms).unref();
    timerReaper.register(owner, this.#timer, this);
  }

  stop(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    timerReaper.unregister(this);
    this.#timer = undefined;
  }

  close(): void {
    this.stop();
    this.#map.close();
  }
}
