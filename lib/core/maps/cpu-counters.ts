/**
 * Counters in a plain BPF array used as a per-CPU one. A per-CPU array's inlined lookup
 * loads the element's per-CPU pointer from a table and then the value: two dependent
 * loads, two cache misses for a counter not used lately. A plain array of possible CPUs x
 * `slots` counters, CPU c's counter of slot s at c x slots + s (the BPF side computes the
 * index from bpf_get_smp_processor_id()), costs one. Each CPU writes only its own region,
 * so no atomic is needed; user space reads (and zeroes) the regions through the map's
 * mapping, so the map must be BPF_F_MMAPABLE.
 */
import { BpfkitError } from '../errors.js';
import type { MapInfo } from './map.js';

/** A counter summed over the CPUs. */
export interface CpuCounter {
  packets: bigint;
  bytes: bigint;
}

/**
 * Counters { packets, bytes } (u64 each) of such an array, read through its mapping with
 * no system call. Each 64-bit field is read with one 64-bit load, so a value is never torn
 * while a program counts.
 * @internal
 */
export class CpuCounters {
  /** Counter slots per CPU. */
  readonly slots: number;
  readonly #cpus: number;
  readonly #mem: BigUint64Array;

  /** `map`: an mmapable array of `cpus` x slots 16-byte values. */
  constructor(map: { readonly info: MapInfo; mmap(): Buffer }, cpus: number) {
    const slots = CpuCounters.slotsOf(map.info.maxEntries, map.info.valueSize, cpus);
    if (slots === undefined)
      throw new BpfkitError(
        'ERR_INVALID_ARGUMENT',
        `map '${map.info.name}' is not ${cpus} CPUs x 16-byte counters (${map.info.maxEntries} x ${map.info.valueSize} bytes)`,
      );
    this.slots = slots;
    this.#cpus = cpus;
    const buf = map.mmap();
    this.#mem = new BigUint64Array(buf.buffer, buf.byteOffset, 2 * map.info.maxEntries);
  }

  /** Slots per CPU of an array of `maxEntries` values of `valueSize` bytes, or undefined if it cannot be one. */
  static slotsOf(maxEntries: number, valueSize: number, cpus: number): number | undefined {
    const n = maxEntries / cpus;
    return valueSize === 16 && Number.isInteger(n) && n > 0 ? n : undefined;
  }

  /** Slot `slot`, summed over the CPUs. */
  read(slot: number): CpuCounter {
    const m = this.#mem;
    let packets = 0n;
    let bytes = 0n;
    for (let c = 0, i = 2 * slot; c < this.#cpus; c++, i += 2 * this.slots) {
      packets += m[i]!;
      bytes += m[i + 1]!;
    }
    return { packets, bytes };
  }

  /** Zeroes `slots` on every CPU (for slots no program counts in). */
  zero(slots: readonly number[]): void {
    const m = this.#mem;
    for (let c = 0; c < this.#cpus; c++) {
      const base = 2 * c * this.slots;
      for (const s of slots) m[base + 2 * s] = m[base + 2 * s + 1] = 0n;
    }
  }
}
