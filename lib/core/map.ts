/**
 * BpfMap: a typed, Map-like view of a BPF map. Keys and values go through codecs,
 * whose sizes (and struct layouts) are checked against the map and its BTF when the
 * map is opened, so a wrong codec fails at once rather than corrupting entries.
 */
import { BpfkitError, invalidArgument } from './errors.js';
import { checkCodec, type Codec } from './codecs.js';
import { native, openPinnedAs, type NativeMapHandle, type NativeMapInfo } from './native.js';
import { checkObjectId } from './validate.js';

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

export interface MapCodecs<K, V, KIn = K, VIn = V> {
  key: Codec<K, KIn>;
  value: Codec<V, VIn>;
}

export interface MapInfo {
  /** Kernel map id (as shown by `bpftool map show`). */
  id: number;
  name: string;
  /** libbpf's name of the map type, e.g. 'hash', 'percpu_array', 'lpm_trie'. */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
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

export class BpfMap<K, V, KIn = K, VIn = V> implements Iterable<[K, V]> {
  readonly name: string;
  readonly info: MapInfo;
  readonly key: Codec<K, KIn>;
  readonly value: Codec<V, VIn>;
  #h: NativeMapHandle | undefined;
  readonly #kbuf: Buffer;
  readonly #vbuf: Buffer;
  #mapping: Buffer | undefined;

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
      id: raw.id, name: raw.name, type: raw.type, keySize: raw.keySize,
      valueSize: raw.valueSize, maxEntries: raw.maxEntries, flags: raw.flags,
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
    this.#kbuf = Buffer.alloc(Math.max(codecs.key.size, 1));
    this.#vbuf = Buffer.alloc(Math.max(codecs.value.size, 1));
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
  get closed(): boolean {
    return this.#h === undefined;
  }

  #key(k: KIn, buf = this.#kbuf): Buffer {
    this.key.encode(k, buf, 0);
    return buf;
  }

  /** The value stored under `key`, or undefined. */
  get(key: KIn): V | undefined {
    const h = this.handle;
    return h.lookup(this.#key(key), this.#vbuf) ? this.value.decode(this.#vbuf, 0) : undefined;
  }

  has(key: KIn): boolean {
    return this.handle.lookup(this.#key(key), this.#vbuf);
  }

  /** Stores `value` under `key`. `flag`: 'any' (default), 'noexist' (create only), 'exist' (update only). */
  set(key: KIn, value: VIn, flag: UpdateFlag = 'any'): this {
    const h = this.handle;
    const f = UPDATE_FLAGS[flag];
    if (f === undefined) invalidArgument('flag', `must be 'any', 'noexist' or 'exist', got ${String(flag)}`);
    this.key.encode(key, this.#kbuf, 0);
    this.value.encode(value, this.#vbuf, 0);
    h.update(this.#kbuf, this.#vbuf, f);
    return this;
  }

  /** Deletes `key`; false when it was absent. Array maps cannot delete (kernel: EINVAL). */
  delete(key: KIn): boolean {
    return this.handle.delete(this.#key(key));
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
   * Reads the whole map with BPF_MAP_LOOKUP_BATCH, off the JS thread (map types without
   * batch support fall back to a key walk).
   */
  async getBatch(opts: { chunk?: number } = {}): Promise<[K, V][]> {
    const h = this.handle;
    const max = this.info.maxEntries;
    const ks = this.key.size;
    const vs = this.value.size;
    const keys = Buffer.alloc(ks * max);
    const vals = Buffer.alloc(vs * max);
    let n: number;
    try {
      n = await h.lookupBatch(keys, vals, max, opts.chunk ?? 4096);
    } catch (e) {
      if (e instanceof BpfkitError && e.code === 'ERR_UNSUPPORTED') return [...this.entries()];
      throw e;
    }
    const out = new Array<[K, V]>(n);
    for (let i = 0; i < n; i++) out[i] = [this.key.decode(keys, i * ks), this.value.decode(vals, i * vs)];
    return out;
  }

  /**
   * Writes many entries in one BPF_MAP_UPDATE_BATCH, off the JS thread. Every entry is
   * encoded (and so validated) before the kernel sees any. Resolves to the count; on a
   * kernel error, the error's `details.count` is how many entries were written.
   */
  async setBatch(entries: Iterable<readonly [KIn, VIn]>, flag: UpdateFlag = 'any'): Promise<number> {
    const h = this.handle;
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
    return h.updateBatch(keys, vals, list.length, UPDATE_FLAGS[flag]);
  }

  /**
   * Writes `count` entries already encoded back to back (`keys`: count x key size bytes,
   * `values`: count x value size bytes) in one BPF_MAP_UPDATE_BATCH, off the JS thread.
   * For bulk writes whose bytes are built without codecs (zeroing per-CPU counters, say).
   * The bytes are not validated; a short buffer is rejected before the kernel is called.
   */
  async writeBatch(keys: Uint8Array, values: Uint8Array, count: number, flag: UpdateFlag = 'any'): Promise<number> {
    if (!Number.isInteger(count) || count < 0) invalidArgument('count', `must be a non-negative integer, got ${count}`);
    const ks = this.key.size;
    const vs = this.value.size; // per-CPU maps: one 8-byte-aligned value per possible CPU
    if (keys.byteLength < ks * count) invalidArgument('keys', `${keys.byteLength} bytes hold fewer than ${count} keys of ${ks} bytes`);
    if (values.byteLength < vs * count) invalidArgument('values', `${values.byteLength} bytes hold fewer than ${count} values of ${vs} bytes`);
    if (count === 0) return 0;
    return this.handle.updateBatch(keys, values, count, UPDATE_FLAGS[flag]);
  }

  /**
   * set() off the JS thread: one entry through BPF_MAP_UPDATE_BATCH, for updates the
   * kernel may make wait (a map-in-map update waits for an RCU grace period). Falls back
   * to a synchronous update on kernels or map types without batch updates.
   */
  async setAsync(key: KIn, value: VIn, flag: UpdateFlag = 'any'): Promise<void> {
    const k = Buffer.alloc(this.key.size);
    const v = Buffer.alloc(this.value.size);
    this.key.encode(key, k, 0);
    this.value.encode(value, v, 0);
    try {
      await this.handle.updateBatch(k, v, 1, UPDATE_FLAGS[flag]);
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

  /** Deletes every entry (key walk + batch delete). Not for array maps. */
  async clear(): Promise<number> {
    const keys: K[] = [...this.keys()];
    return keys.length ? this.deleteBatch(keys as unknown as KIn[]) : 0;
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

  [Symbol.dispose](): void {
    this.close();
  }
}

function mismatch(what: string, codec: Codec<unknown, unknown>, actual: number): never {
  throw new BpfkitError(
    'ERR_CODEC_MISMATCH',
    `${what}: codec ${codec.name} is ${codec.size} bytes but the map's ${what.endsWith('key') ? 'key' : 'value'} is ${actual} bytes`,
    { details: { codec: codec.name, codecSize: codec.size, mapSize: actual } },
  );
}
