/**
 * BpfMap: a typed, Map-like view of a BPF map. Keys and values go through codecs,
 * whose sizes (and struct layouts) are checked against the map and its BTF when the
 * map is opened, so a wrong codec fails at once rather than corrupting entries.
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import { checkCodec, i16, i32, i64, i8, u16, u32, u64, u8, type Codec } from '../codecs.js';
import { native, openPinnedAs, type NativeMapHandle, type NativeMapInfo, type NativeMapSlot } from '../native.js';
import { checkObjectId } from '../validate.js';

/** How {@link BpfMap.set} treats an existing key: 'any' (create or update), 'noexist' (create only), 'exist' (update only). */
export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/** The codecs of a map's keys and values (see {@link BpfObject.map}). */
export interface MapCodecs<K, V, KIn = K, VIn = V> {
  /** Codec of the keys; its size must be the map's key size. */
  key: Codec<K, KIn>;
  /** Codec of the values; its size must be the map's value size (per CPU for per-CPU maps). */
  value: Codec<V, VIn>;
}

/** The kernel's description of a map. */
export interface MapInfo {
  /** Kernel map id (as shown by `bpftool map show`). */
  id: number;
  /** The map's name (as the kernel keeps it: at most 15 characters). */
  name: string;
  /** libbpf's name of the map type, e.g. 'hash', 'percpu_array', 'lpm_trie'. */
  type: string;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes (of one CPU's value for per-CPU maps). */
  valueSize: number;
  /** Capacity. */
  maxEntries: number;
  /** BPF_F_* map flags, as given at creation. */
  flags: number;
}

const PER_CPU_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const ARRAY_TYPES = new Set(['array', 'percpu_array', 'prog_array', 'perf_event_array', 'devmap', 'cpumap', 'xskmap']);
const NOT_KEY_VALUE = new Set(['ringbuf', 'user_ringbuf']);

/** True for map types that hold one value per possible CPU. */
export function isPerCpuType(type: string): boolean {
  return PER_CPU_TYPES.has(type);
}

let cpuCount: number | undefined;
/** Number of possible CPUs (the length of per-CPU values). */
export function possibleCpus(): number {
  return (cpuCount ??= native().possibleCpus());
}

/**
 * The codec of a per-CPU value: one `codec` value per possible CPU, each slot rounded
 * up to 8 bytes as the kernel lays them out. Encode also accepts a single value,
 * written to every CPU.
 */
export function perCpu<V, VIn>(codec: Codec<V, VIn>, cpus = possibleCpus()): Codec<V[], VIn[] | VIn> {
  const stride = Math.ceil(codec.size / 8) * 8;
  return {
    name: `percpu(${codec.name})`,
    size: stride * cpus,
    align: 8,
    layout: { kind: 'bytes', size: stride * cpus },
    encode(value, buf, offset) {
      buf.fill(0, offset, offset + stride * cpus);
      const many = Array.isArray(value) && codec.layout.kind !== 'array';
      if (many && (value as VIn[]).length !== cpus) {
        invalidArgument('value', `per-CPU value needs ${cpus} entries (one per possible CPU), got ${(value as VIn[]).length}`);
      }
      for (let i = 0; i < cpus; i++) codec.encode(many ? (value as VIn[])[i]! : (value as VIn), buf, offset + i * stride);
    },
    decode(buf, offset) {
      const out = new Array<V>(cpus);
      for (let i = 0; i < cpus; i++) out[i] = codec.decode(buf, offset + i * stride);
      return out;
    },
  };
}

/** A map's entries as two columns of raw bytes (see BpfMap.readColumns). */
export interface MapColumns {
  /** `count` keys of `key.size` bytes, back to back. */
  keys: Buffer;
  /** `count` values of `value.size` bytes, in the order of `keys`. */
  values: Buffer;
  /** Number of entries read. */
  count: number;
}

/** A typed, Map-like view of a BPF map: keys and values go through codecs, checked against the map's BTF. Get one from {@link BpfObject.map}, {@link BpfObject.perCpuMap}, {@link BpfMap.openPinned} or {@link BpfMap.fromId}; `close()` it (or `using`) when done. */
export class BpfMap<K, V, KIn = K, VIn = V> implements Iterable<[K, V]> {
  /** The map's name. */
  readonly name: string;
  /** The kernel's description of the map (read when opened). */
  readonly info: MapInfo;
  /** Codec of the keys. */
  readonly key: Codec<K, KIn>;
  /** Codec of the values (for per-CPU maps: of the array of per-CPU values). */
  readonly value: Codec<V, VIn>;
  #h: NativeMapHandle | undefined;
  readonly #slot: NativeMapSlot;
  readonly #kbuf: Buffer;
  readonly #vbuf: Buffer;
  #mapping: Buffer | undefined;
  /** Whether the kernel does BPF_MAP_LOOKUP_BATCH on this map; undefined until tried. */
  #batchLookup: boolean | undefined;

  /** @internal Use BpfObject.map(), BpfMap.openPinned() or BpfMap.fromId(). */
  constructor(handle: NativeMapHandle, codecs: MapCodecs<K, V, KIn, VIn>, opts: { perCpuValue?: Codec<unknown, unknown> } = {}) {
    let raw: NativeMapInfo;
    try {
      raw = handle.info();
    } catch (e) {
      handle.close();
      throw e;
    }
    this.info = {
      id: raw.id,
      name: raw.name,
      type: raw.type,
      keySize: raw.keySize,
      valueSize: raw.valueSize,
      maxEntries: raw.maxEntries,
      flags: raw.flags,
    };
    this.name = raw.name;
    try {
      if (NOT_KEY_VALUE.has(raw.type)) {
        throw new BpfkitError('ERR_INVALID_ARGUMENT', `map '${raw.name}' is a ${raw.type}: open it with ringBuffer(), not map()`, { field: 'map' });
      }
      const perCpuMap = isPerCpuType(raw.type);
      if (perCpuMap && !opts.perCpuValue) {
        throw new BpfkitError('ERR_INVALID_ARGUMENT', `map '${raw.name}' is ${raw.type}: open it with perCpuMap() to get one value per CPU`, { field: 'map' });
      }
      if (!perCpuMap && opts.perCpuValue) {
        throw new BpfkitError('ERR_INVALID_ARGUMENT', `map '${raw.name}' is ${raw.type}, not a per-CPU map: open it with map()`, { field: 'map' });
      }
      const elem = opts.perCpuValue ?? codecs.value;
      const what = `map '${raw.name}'`;
      if (codecs.key.size !== raw.keySize) mismatch(`${what} key`, codecs.key, raw.keySize);
      if (elem.size !== raw.valueSize) mismatch(`${what} value`, elem, raw.valueSize);
      const btf = handle.btfTypes();
      checkCodec(codecs.key as Codec<unknown>, btf.key, `${what} key`);
      checkCodec(elem as Codec<unknown>, btf.value, `${what} value`);
    } catch (e) {
      handle.close();
      throw e;
    }
    this.key = codecs.key;
    this.value = codecs.value;
    this.#h = handle;
    // the handle's own key and value slots: get/set/delete/has then pass no arguments
    this.#slot = handle.scratch(codecs.key.size, codecs.value.size);
    const scratch = this.#slot.bytes;
    const voff = Math.ceil(Math.max(codecs.key.size, 1) / 8) * 8;
    this.#kbuf = scratch.subarray(0, Math.max(codecs.key.size, 1));
    this.#vbuf = scratch.subarray(voff, voff + Math.max(codecs.value.size, 1));
  }

  /** Opens a map pinned on a BPF filesystem. */
  static openPinned<K, V, KIn = K, VIn = V>(path: string, codecs: MapCodecs<K, V, KIn, VIn>): BpfMap<K, V, KIn, VIn> {
    const h = openPinnedAs(path, 'map');
    return isPerCpuType(h.info().type)
      ? (new BpfMap(h, { key: codecs.key, value: perCpu(codecs.value) }, { perCpuValue: codecs.value }) as unknown as BpfMap<K, V, KIn, VIn>)
      : new BpfMap(h, codecs);
  }

  /** What the kernel says of a pinned map (type, sizes, id), without opening it for use. */
  static pinnedInfo(path: string): MapInfo {
    const h = openPinnedAs(path, 'map');
    try {
      const r = h.info();
      return { id: r.id, name: r.name, type: r.type, keySize: r.keySize, valueSize: r.valueSize, maxEntries: r.maxEntries, flags: r.flags };
    } finally {
      h.close();
    }
  }

  /**
   * Opens a map by its kernel id (as `bpftool map show id N`), e.g. one of the ids a
   * program uses ({@link BpfProgram.mapIds}). Per-CPU maps come back as by openPinned.
   */
  static fromId<K, V, KIn = K, VIn = V>(id: number, codecs: MapCodecs<K, V, KIn, VIn>): BpfMap<K, V, KIn, VIn> {
    const h = native().openById('map', checkObjectId(id));
    return isPerCpuType(h.info().type)
      ? (new BpfMap(h, { key: codecs.key, value: perCpu(codecs.value) }, { perCpuValue: codecs.value }) as unknown as BpfMap<K, V, KIn, VIn>)
      : new BpfMap(h, codecs);
  }

  /** The kernel's description of the map with this id (name, type, sizes), to pick codecs before fromId(). */
  static infoById(id: number): MapInfo {
    const h = native().openById('map', checkObjectId(id));
    try {
      const r = h.info();
      return { id: r.id, name: r.name, type: r.type, keySize: r.keySize, valueSize: r.valueSize, maxEntries: r.maxEntries, flags: r.flags };
    } finally {
      h.close();
    }
  }

  /** Opens a per-CPU map pinned on a BPF filesystem: values are arrays, one per CPU. */
  static openPinnedPerCpu<K, V, KIn = K, VIn = V>(path: string, codecs: MapCodecs<K, V, KIn, VIn>): BpfMap<K, V[], KIn, VIn[] | VIn> {
    return new BpfMap(openPinnedAs(path, 'map'), { key: codecs.key, value: perCpu(codecs.value) }, { perCpuValue: codecs.value });
  }

  /** @internal the native handle (for modules that pass map fds to the kernel). */
  get handle(): NativeMapHandle {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', `map '${this.name}' is closed`);
    return this.#h;
  }
  /** The map's file descriptor (for BPF_MAP_TYPE_PROG_ARRAY / map-in-map updates). */
  get fd(): number {
    return this.handle.fd;
  }
  /** True once closed. */
  get closed(): boolean {
    return this.#h === undefined;
  }
  #live(): void {
    if (this.#h === undefined) throw new BpfkitError('ERR_CLOSED', `map '${this.name}' is closed`);
  }

  #key(k: KIn, buf = this.#kbuf): Buffer {
    this.key.encode(k, buf, 0);
    return buf;
  }

  /** The value stored under `key`, or undefined. */
  get(key: KIn): V | undefined {
    this.#live();
    this.key.encode(key, this.#kbuf, 0);
    return this.#slot.lookup() ? this.value.decode(this.#vbuf, 0) : undefined;
  }

  /** Whether `key` is present. */
  has(key: KIn): boolean {
    this.#live();
    this.key.encode(key, this.#kbuf, 0);
    return this.#slot.lookup();
  }

  /** Stores `value` under `key`. `flag`: 'any' (default), 'noexist' (create only), 'exist' (update only). */
  set(key: KIn, value: VIn, flag: UpdateFlag = 'any'): this {
    this.#live();
    const f = flag === 'any' ? 0 : updateFlag(flag);
    this.key.encode(key, this.#kbuf, 0);
    this.value.encode(value, this.#vbuf, 0);
    this.#slot.update(f);
    return this;
  }

  /** Deletes `key`; false when it was absent. Array maps cannot delete (kernel: EINVAL). */
  delete(key: KIn): boolean {
    this.#live();
    this.key.encode(key, this.#kbuf, 0);
    return this.#slot.delete();
  }

  /** Looks up and removes in one step (queues, stacks, hash maps on recent kernels). */
  take(key?: KIn): V | undefined {
    const h = this.handle;
    const k = key === undefined ? null : this.#key(key);
    return h.lookupAndDelete(k, this.#vbuf) ? this.value.decode(this.#vbuf, 0) : undefined;
  }

  /** Iterates the keys (BPF_MAP_GET_NEXT_KEY). Concurrent deletes may restart a hash walk. */
  *keys(): IterableIterator<K> {
    const h = this.handle;
    let cur: Buffer | null = null;
    let next = Buffer.alloc(this.#kbuf.length);
    let spare = Buffer.alloc(this.#kbuf.length);
    for (let i = 0; i <= this.info.maxEntries * 2 + 1; i++) {
      if (!h.nextKey(cur, next)) return;
      yield this.key.decode(next, 0);
      cur = next;
      [next, spare] = [spare, next];
    }
  }

  /** Iterates the values (see {@link BpfMap.entries}). */
  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  /** Iterates [key, value] pairs; entries deleted during iteration are skipped. */
  *entries(): IterableIterator<[K, V]> {
    const h = this.handle;
    let cur: Buffer | null = null;
    let next = Buffer.alloc(this.#kbuf.length);
    let spare = Buffer.alloc(this.#kbuf.length);
    const val = Buffer.alloc(this.#vbuf.length);
    for (let i = 0; i <= this.info.maxEntries * 2 + 1; i++) {
      if (!h.nextKey(cur, next)) return;
      if (h.lookup(next, val)) yield [this.key.decode(next, 0), this.value.decode(val, 0)];
      cur = next;
      [next, spare] = [spare, next];
    }
  }

  /** Same as `entries()`: for `for ... of`. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /** Number of entries. Array maps: maxEntries (constant time); other types: counted by a key walk. */
  get size(): number {
    if (ARRAY_TYPES.has(this.info.type)) return this.info.maxEntries;
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /**
   * Reads the whole map as two columns of raw bytes: `keys` holds `count` keys of
   * `key.size` bytes back to back, `values` the `count` values of `value.size` bytes
   * (per-CPU maps: one 8-byte-aligned slot per possible CPU) in the same order. One
   * BPF_MAP_LOOKUP_BATCH per `chunk` entries (default: the whole map in one call), off
   * the JS thread; no per-entry objects. Map types without batch lookup (detected on
   * the first call, then remembered) are walked with BPF_MAP_GET_NEXT_KEY + lookup.
   *
   * `keys` / `values`: Buffers of at least maxEntries keys / values to read into (the
   * result's columns are then views of them), for repeated reads without allocating,
   * zeroing and faulting in fresh memory each time (about a third of the CPU time of a
   * 100k-entry read). Do not share them between reads in flight.
   */
  async readColumns(opts: { chunk?: number; keys?: Buffer; values?: Buffer } = {}): Promise<MapColumns> {
    const h = this.handle;
    const max = this.info.maxEntries;
    const chunk = opts.chunk ?? max;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > 0xffffffff) {
      invalidArgument('chunk', `must be an integer from 1 to 2^32-1, got ${String(chunk)}`);
    }
    const ks = this.key.size;
    const vs = this.value.size;
    const keys = opts.keys === undefined ? Buffer.alloc(ks * max) : into('keys', opts.keys, ks, max, 'key');
    const values = opts.values === undefined ? Buffer.alloc(vs * max) : into('values', opts.values, vs, max, 'value');
    let count: number | undefined;
    if (this.#batchLookup !== false) {
      try {
        count = await h.lookupBatch(keys, values, max, chunk);
        this.#batchLookup = true;
      } catch (e) {
        if (!(e instanceof BpfkitError) || e.code !== 'ERR_UNSUPPORTED' || this.#batchLookup) throw e;
        this.#batchLookup = false;
      }
    }
    count ??= this.#walkInto(h, keys, values, max);
    return { keys: keys.subarray(0, count * ks), values: values.subarray(0, count * vs), count };
  }

  /** The fallback of readColumns(): a key walk writing straight into the columns. */
  #walkInto(h: NativeMapHandle, keys: Buffer, values: Buffer, max: number): number {
    const ks = this.key.size;
    const vs = this.value.size;
    let n = 0;
    let cur: Buffer | null = null;
    const scratch = Buffer.alloc(Math.max(ks, 1));
    // bounded: a hash walk restarts when its current key is deleted under it
    for (let i = 0; i <= max * 2 + 1 && n < max; i++) {
      const next = keys.subarray(n * ks, (n + 1) * ks);
      if (!h.nextKey(cur, next)) break;
      scratch.set(next);
      cur = scratch;
      if (h.lookup(next, values.subarray(n * vs, (n + 1) * vs))) n++;
    }
    return n;
  }

  /**
   * Every entry, decoded: one readColumns() (one batch lookup; a key walk for map types
   * without batch lookup) and one decode pass. Much faster than iterating the map,
   * which costs two system calls per entry. Not a snapshot: entries changed by programs
   * during the call may or may not be seen.
   */
  async dump(opts: { chunk?: number } = {}): Promise<[K, V][]> {
    const { keys, values, count } = await this.readColumns(opts);
    const ks = this.key.size;
    const vs = this.value.size;
    const kd = this.key;
    const vd = this.value;
    // integer columns read as typed arrays: the same values as the codecs' decode, without
    // a call and a DataView per entry (about a third of the decode time)
    const kt = typedColumn(kd, keys, count);
    const vt = typedColumn(vd, values, count);
    const out = new Array<[K, V]>(count);
    if (kt && vt) for (let i = 0; i < count; i++) out[i] = [kt[i] as K, vt[i] as V];
    else if (kt) for (let i = 0; i < count; i++) out[i] = [kt[i] as K, vd.decode(values, i * vs)];
    else if (vt) for (let i = 0; i < count; i++) out[i] = [kd.decode(keys, i * ks), vt[i] as V];
    else for (let i = 0; i < count; i++) out[i] = [kd.decode(keys, i * ks), vd.decode(values, i * vs)];
    return out;
  }

  /**
   * Writes many entries in one BPF_MAP_UPDATE_BATCH, off the JS thread. Every entry is
   * encoded (and so validated) before the kernel sees any. Resolves to the count; on a
   * kernel error, the error's `details.count` is how many entries were written. `flag`
   * may only be 'any': the kernel's batch update has no noexist/exist (use set()).
   */
  async setBatch(entries: Iterable<readonly [KIn, VIn]>, flag: UpdateFlag = 'any'): Promise<number> {
    const h = this.handle;
    const f = batchFlag(flag);
    const list = Array.isArray(entries) ? (entries as readonly (readonly [KIn, VIn])[]) : [...entries];
    const ks = this.key.size;
    const vs = this.value.size;
    const keys = Buffer.alloc(ks * list.length);
    const vals = Buffer.alloc(vs * list.length);
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      this.key.encode(e[0], keys, i * ks);
      this.value.encode(e[1], vals, i * vs);
    }
    if (list.length === 0) return 0;
    return h.updateBatch(keys, vals, list.length, f);
  }

  /**
   * Writes `count` entries given as columns of raw bytes (`keys`: count x key size bytes,
   * `values`: count x value size bytes; per-CPU maps: one 8-byte-aligned slot per
   * possible CPU) in one BPF_MAP_UPDATE_BATCH, off the JS thread. Any typed array or
   * Buffer will do (a Uint32Array of keys for a u32-keyed map, say); longer columns are
   * fine, only the first `count` entries are written. The bytes are not decoded; a short
   * column or a bad count is rejected before the kernel is called. Existing keys are
   * overwritten (the kernel's batch update has no noexist/exist). Resolves to the count;
   * on a kernel error, `details.count` is how many entries were written.
   */
  async writeColumns(keys: ArrayBufferView, values: ArrayBufferView, count: number): Promise<number> {
    const h = this.handle;
    checkCount(count);
    const k = column('keys', keys, this.key.size, count, 'key');
    const v = column('values', values, this.value.size, count, 'value');
    if (count === 0) return 0;
    return h.updateBatch(k, v, count, 0);
  }

  /**
   * Deletes `count` keys given as one column of raw bytes (count x key size) in one
   * BPF_MAP_DELETE_BATCH, off the JS thread. Checked as writeColumns(); every key must
   * exist (else ERR_NOT_FOUND, with the keys deleted before it in `details.count`).
   * Array maps cannot delete (kernel: EINVAL).
   */
  async deleteColumns(keys: ArrayBufferView, count: number): Promise<number> {
    const h = this.handle;
    checkCount(count);
    const k = column('keys', keys, this.key.size, count, 'key');
    if (count === 0) return 0;
    return h.deleteBatch(k, null, count, 0);
  }

  /**
   * set() off the JS thread: one entry through BPF_MAP_UPDATE_BATCH, for updates the
   * kernel may make wait (a map-in-map update waits for an RCU grace period). Falls back
   * to a synchronous update on kernels or map types without batch updates.
   */
  async setAsync(key: KIn, value: VIn, flag: UpdateFlag = 'any'): Promise<void> {
    const f = updateFlag(flag);
    const k = Buffer.alloc(this.key.size);
    const v = Buffer.alloc(this.value.size);
    this.key.encode(key, k, 0);
    this.value.encode(value, v, 0);
    try {
      await this.handle.updateBatch(k, v, 1, f);
    } catch (e) {
      if (!(e instanceof BpfkitError) || (e.code !== 'ERR_UNSUPPORTED' && e.code !== 'ERR_INVALID_ARGUMENT')) throw e;
      this.set(key, value, flag);
    }
  }

  /** Deletes many keys in one BPF_MAP_DELETE_BATCH. Partial count in `details.count` on error. */
  async deleteBatch(keys: Iterable<KIn>): Promise<number> {
    const h = this.handle;
    const list = Array.isArray(keys) ? (keys as readonly KIn[]) : [...keys];
    const ks = this.key.size;
    const buf = Buffer.alloc(ks * list.length);
    for (let i = 0; i < list.length; i++) this.key.encode(list[i]!, buf, i * ks);
    if (list.length === 0) return 0;
    return h.deleteBatch(buf, null, list.length, 0);
  }

  /** Deletes every entry (readColumns() for the keys, then one batch delete). Not for array maps. */
  async clear(): Promise<number> {
    const { keys, count } = await this.readColumns();
    return this.deleteColumns(keys, count);
  }

  /**
   * The map's values as one Buffer shared with the kernel: writes are seen by programs
   * and by get() at once, and the other way round (no syscall, no copy). Only for array
   * maps created with BPF_F_MMAPABLE (`__uint(map_flags, BPF_F_MMAPABLE)`); other maps
   * throw ERR_UNSUPPORTED. Element `i` starts at byte `i * stride`, where stride is
   * valueSize rounded up to 8 (the kernel's layout); the Buffer is maxEntries * stride
   * bytes. Repeated calls return the same Buffer.
   *
   * The mapping is released when the Buffer is garbage collected, not by close(): the
   * Buffer stays valid after close(), and the kernel keeps the map (its memory) alive
   * while it is mapped, even with no fd, pin or program left. While mapped, the map
   * cannot be frozen (BPF_MAP_FREEZE fails with EBUSY). Nothing orders these writes
   * against a program reading the same value concurrently: write values no program is
   * reading, or use values the program reads with atomics.
   */
  mmap(): Buffer {
    const h = this.handle;
    return (this.#mapping ??= h.mmap());
  }

  /** Makes the map read-only for user space (BPF_MAP_FREEZE); programs can still write. */
  freeze(): void {
    this.handle.freeze();
  }

  /** Pins the map on a BPF filesystem (e.g. /sys/fs/bpf/myapp/counters). */
  pin(path: string): void {
    this.handle.pin(path);
  }

  /** Releases this handle. The map lives on while a program, pin or other fd holds it. */
  close(): void {
    this.#h?.close();
    this.#h = undefined;
    this.#mapping = undefined; // unmapped once the caller drops it too (GC)
  }

  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

type IntArray = Uint8Array | Uint16Array | Uint32Array | Int8Array | Int16Array | Int32Array | BigUint64Array | BigInt64Array;
// the host-order integer codecs and the typed arrays that read the same values
const TYPED = new Map<unknown, new (b: ArrayBufferLike, off: number, n: number) => IntArray>([
  [u8, Uint8Array],
  [u16, Uint16Array],
  [u32, Uint32Array],
  [u64, BigUint64Array],
  [i8, Int8Array],
  [i16, Int16Array],
  [i32, Int32Array],
  [i64, BigInt64Array],
]);

/** `count` items of an integer codec in `col` as a typed array, or undefined (other codecs, unaligned). */
function typedColumn(codec: Codec<unknown, unknown>, col: Buffer, count: number): IntArray | undefined {
  const Ctor = TYPED.get(codec);
  if (!Ctor || col.byteOffset % codec.size !== 0) return undefined;
  return new Ctor(col.buffer, col.byteOffset, count);
}

function updateFlag(flag: UpdateFlag): number {
  const f = UPDATE_FLAGS[flag];
  if (f === undefined) invalidArgument('flag', `must be 'any', 'noexist' or 'exist', got ${String(flag)}`);
  return f;
}

/** The kernel's batch update takes no BPF_NOEXIST/BPF_EXIST (EINVAL, count unreported): refuse them first. */
function batchFlag(flag: UpdateFlag): number {
  const f = updateFlag(flag);
  if (f !== 0) invalidArgument('flag', `batch writes take only 'any': the kernel's batch update has no '${flag}' (use set())`);
  return f;
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) {
    invalidArgument('count', `must be an integer from 0 to 2^32-1, got ${String(count)}`);
  }
}

/** A caller's Buffer to read a whole map into: room for maxEntries items, else ERR_INVALID_ARGUMENT naming `field`. */
function into(field: string, buf: Buffer, size: number, max: number, what: string): Buffer {
  if (!Buffer.isBuffer(buf)) invalidArgument(field, `must be a Buffer, got ${buf === null ? 'null' : typeof buf}`);
  if (buf.length < size * max) {
    invalidArgument(field, `${buf.length} bytes hold fewer than the map's ${max} ${what}s of ${size} bytes`, { maxEntries: max, size });
  }
  return buf;
}

/** A column of `count` items of `size` bytes as a byte view, or ERR_INVALID_ARGUMENT naming `field`. */
function column(field: string, col: ArrayBufferView, size: number, count: number, what: string): Uint8Array {
  if (!ArrayBuffer.isView(col) || col instanceof DataView) {
    invalidArgument(field, `must be a Buffer or typed array of ${what}s, got ${col === null ? 'null' : typeof col}`);
  }
  if (col.byteLength < size * count) {
    invalidArgument(field, `${col.byteLength} bytes hold fewer than ${count} ${what}s of ${size} bytes`, { count, size });
  }
  return col instanceof Uint8Array ? col : new Uint8Array(col.buffer, col.byteOffset, col.byteLength);
}

function mismatch(what: string, codec: Codec<unknown, unknown>, actual: number): never {
  throw new BpfkitError(
    'ERR_CODEC_MISMATCH',
    `${what}: codec ${codec.name} is ${codec.size} bytes but the map's ${what.endsWith('key') ? 'key' : 'value'} is ${actual} bytes`,
    { details: { codec: codec.name, codecSize: codec.size, mapSize: actual } },
  );
}
