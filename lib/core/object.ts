/**
 * BpfObject: open an ELF object (path or buffer) → configure → load (off the JS thread)
 * → take programs and maps. Mirrors libbpf's open/load split.
 */
import { BpfkitError, invalidArgument } from './errors.js';
import type { Codec } from './codecs.js';
import { BpfMap, perCpu, type MapCodecs } from './maps/map.js';
import { native, bpfObjectPath, type NativeObjectHandle } from './native.js';
import { BpfProgram, XdpProgram, wrapProgram } from './programs/program.js';
import { RingBuffer, type RingBufferOptions } from './ringbuf.js';
import { TcProgram } from './programs/tc.js';
import { TracingProgram, explainTracingLoadError, isTracingProgram } from './programs/tracing.js';
import { explainLoadError, requireMapTypes } from './features.js';

/**
 * Loads, with the kernel's features checked: a map type the kernel lacks, or a helper it
 * does not have, is ERR_UNSUPPORTED naming it (not EINVAL, or a verifier log to decode).
 */
async function loadChecked(h: NativeObjectHandle): Promise<void> {
  requireMapTypes(h.maps());
  const programs = h.programs();
  try {
    await h.load();
  } catch (e) {
    throw explainTracingLoadError(explainLoadError(e), programs);
  }
}

/** A value for a global variable of an object: bytes, a number (sized to the variable), a bigint or a boolean. */
export type GlobalValue = Uint8Array | number | bigint | boolean;

/** Options of {@link BpfObject.open}, {@link BpfObject.load} and {@link BpfObject.configure}. */
export interface BpfObjectOptions {
  /** Object name (prefix of internal map names); defaults to the file name. */
  name?: string;
  /**
   * Directory (on a BPF filesystem) where maps the object declares with
   * `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned, under their names, and reused from
   * if already there. Default: libbpf's, `/sys/fs/bpf`. Such pins outlive the object (that
   * is what they are for): {@link BpfObject.pins} names them; remove them when done.
   */
  pinRoot?: string;
  /**
   * Per-map settings applied before load. `pinPath` makes libbpf reuse or create a pinned
   * map; `reuse` makes the object use an existing map (of another object, say) instead of
   * creating its own: type, key size and value size must match.
   */
  maps?: Record<
    string,
    { maxEntries?: number; pinPath?: string; reuse?: { readonly fd: number; readonly info: { type: string; keySize: number; valueSize: number } } }
  >;
  /** Initial values of global variables (`const volatile` constants, .data, .bss). */
  globals?: Record<string, GlobalValue>;
  /** Per-program settings; `autoload: false` skips loading a program. */
  programs?: Record<string, { autoload?: boolean }>;
}

/**
 * A program of an object (see {@link BpfObject.programs}).
 * @property name - The program's (C function's) name.
 * @property section - Its ELF section (`xdp`, `tc`, `tp_btf/...`).
 * @property type - libbpf's name of the program type ('xdp', 'sched_cls', 'tracing', ...).
 * @property autoload - Whether load() loads it.
 * @property loaded - Whether it is loaded.
 */
export interface ProgramSpec {
  name: string;
  section: string;
  type: string;
  autoload: boolean;
  loaded: boolean;
}
/**
 * A map of an object (see {@link BpfObject.maps}).
 * @property name - The map's name (internal maps: `<object>.rodata`, `.data`, `.bss`).
 * @property type - libbpf's name of the map type ('hash', 'percpu_array', 'ringbuf', ...).
 * @property keySize - Key size in bytes.
 * @property valueSize - Value size in bytes.
 * @property maxEntries - Capacity.
 * @property internal - True for the maps libbpf makes for global variables.
 * @property pinPath - Where the map is (or will be) pinned, if anywhere.
 * @property pinned - Whether it is pinned.
 */
export interface MapSpec {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  internal: boolean;
  pinPath?: string;
  pinned: boolean;
}
/**
 * A global variable of an object (see {@link BpfObject.globals}).
 * @property name - The variable's name.
 * @property section - Its section: `.rodata` (`const volatile`), `.data` or `.bss`.
 * @property offset - Byte offset in the section.
 * @property size - Size in bytes.
 * @property readOnly - True for `.rodata`: settable before load only.
 */
export interface GlobalSpec {
  name: string;
  section: string;
  offset: number;
  size: number;
  readOnly: boolean;
}

/**
 * A BPF ELF object: open (path or buffer) → configure → load (the verifier runs off the JS
 * thread) → take programs and maps. Mirrors libbpf's open/load split.
 *
 * ```ts
 * using obj = await BpfObject.openBuiltin('counter').load();
 * using prog = obj.xdpProgram('xdp_count');
 * ```
 */
export class BpfObject {
  #h: NativeObjectHandle | undefined;
  #loaded = false;
  #loading: Promise<this> | undefined;

  private constructor(h: NativeObjectHandle) {
    this.#h = h;
  }

  /**
   * Opens an object from a file path or an in-memory ELF image, then applies `opts`.
   * Nothing reaches the kernel until load().
   */
  static open(src: string | Uint8Array, opts: BpfObjectOptions = {}): BpfObject {
    if (typeof src !== 'string' && !(src instanceof Uint8Array)) invalidArgument('src', 'must be a file path or a Buffer holding an ELF object');
    if (src instanceof Uint8Array && (src.length < 4 || src[0] !== 0x7f || src[1] !== 0x45 || src[2] !== 0x4c || src[3] !== 0x46)) {
      throw new BpfkitError('ERR_INVALID_OBJECT', 'buffer is not an ELF object (no \\x7fELF magic)', { field: 'src' });
    }
    const nopts: { name?: string; pinRoot?: string } = {};
    if (opts.name !== undefined) nopts.name = opts.name;
    if (opts.pinRoot !== undefined) {
      if (typeof opts.pinRoot !== 'string' || !opts.pinRoot.startsWith('/') || opts.pinRoot.includes('\0')) {
        invalidArgument('pinRoot', `must be an absolute directory path on a BPF filesystem, got ${String(opts.pinRoot)}`);
      }
      nopts.pinRoot = opts.pinRoot;
    }
    const obj = new BpfObject(new (native().NativeObject)(src, nopts));
    try {
      obj.configure(opts);
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  /** Opens one of bpfkit's own BPF objects by name ('counter', 'xdp_basic', ...). */
  static openBuiltin(name: string, opts: BpfObjectOptions = {}): BpfObject {
    return BpfObject.open(bpfObjectPath(name), { name, ...opts });
  }

  /** open() + load() in one step. */
  static async load(src: string | Uint8Array, opts: BpfObjectOptions = {}): Promise<BpfObject> {
    const obj = BpfObject.open(src, opts);
    try {
      return await obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Applies options; validates everything against the object before changing anything. */
  configure(opts: BpfObjectOptions): this {
    const h = this.#live();
    const maps = new Map(h.maps().map((m) => [m.name, m]));
    const progs = new Set(h.programs().map((p) => p.name));
    const globals = new Map(h.globals().map((g) => [g.name, g]));
    const actions: (() => void)[] = [];
    for (const [name, m] of Object.entries(opts.maps ?? {})) {
      if (!maps.has(name)) invalidArgument(`maps.${name}`, `no map named '${name}' in this object (maps: ${[...maps.keys()].join(', ')})`);
      if (m.maxEntries !== undefined) {
        if (!Number.isInteger(m.maxEntries) || m.maxEntries < 1 || m.maxEntries > 0xffffffff) {
          invalidArgument(`maps.${name}.maxEntries`, `must be a positive 32-bit integer, got ${m.maxEntries}`);
        }
        const n = m.maxEntries;
        actions.push(() => h.setMapMaxEntries(name, n));
      }
      if (m.pinPath !== undefined) {
        if (typeof m.pinPath !== 'string' || !m.pinPath.startsWith('/'))
          invalidArgument(`maps.${name}.pinPath`, 'must be an absolute path on a BPF filesystem');
        const p = m.pinPath;
        actions.push(() => h.setMapPinPath(name, p));
      }
      if (m.reuse !== undefined) {
        const r = m.reuse;
        const spec = maps.get(name)!;
        const field = `maps.${name}.reuse`;
        if (r === null || typeof r !== 'object' || !Number.isInteger(r.fd) || r.fd < 0) invalidArgument(field, 'must be an open BpfMap');
        if (m.pinPath !== undefined || m.maxEntries !== undefined) invalidArgument(field, 'a reused map takes no pinPath or maxEntries: it exists already');
        if (r.info.type !== spec.type || r.info.keySize !== spec.keySize || r.info.valueSize !== spec.valueSize) {
          invalidArgument(
            field,
            `the object's '${name}' is a ${spec.type} (key ${spec.keySize} B, value ${spec.valueSize} B); the map given is a ${r.info.type} (key ${r.info.keySize} B, value ${r.info.valueSize} B)`,
          );
        }
        actions.push(() => h.reuseMapFd(name, r.fd));
      }
    }
    for (const [name, p] of Object.entries(opts.programs ?? {})) {
      if (!progs.has(name)) invalidArgument(`programs.${name}`, `no program named '${name}' in this object (programs: ${[...progs].join(', ')})`);
      if (p.autoload !== undefined) {
        const on = p.autoload;
        actions.push(() => h.setAutoload(name, on));
      }
    }
    for (const [name, v] of Object.entries(opts.globals ?? {})) {
      const g = globals.get(name);
      if (!g) invalidArgument(`globals.${name}`, `no global variable named '${name}' in this object`);
      const bytes = encodeGlobal(name, v, g.size);
      actions.push(() => h.setGlobal(name, bytes));
    }
    for (const a of actions) a();
    return this;
  }

  /** Loads every autoloaded program and creates the maps (verifier runs here, off the JS thread). */
  load(): Promise<this> {
    if (this.#loaded) return Promise.resolve(this);
    this.#loading ??= loadChecked(this.#live())
      .then(() => {
        this.#loaded = true;
        return this;
      })
      .finally(() => {
        this.#loading = undefined;
      });
    return this.#loading;
  }

  /** Whether load() has completed. */
  get loaded(): boolean {
    return this.#loaded;
  }
  /** The object's programs. */
  get programs(): ProgramSpec[] {
    return this.#live().programs();
  }
  /** The object's maps, global-variable maps included. */
  get maps(): MapSpec[] {
    return this.#live().maps();
  }
  /**
   * Paths of the pins this object's maps have on the BPF filesystem after load (maps
   * declared LIBBPF_PIN_BY_NAME, or given `maps.<name>.pinPath`): they stay after close().
   */
  get pins(): string[] {
    return this.#live()
      .maps()
      .filter((m) => m.pinned && m.pinPath)
      .map((m) => m.pinPath!);
  }
  /** The object's global variables. */
  get globals(): GlobalSpec[] {
    return this.#live().globals();
  }

  /**
   * A loaded program. XDP programs are returned as XdpProgram, sched_cls ones as TcProgram,
   * tp_btf / raw_tp / tracepoint / kprobe / fentry ones as TracingProgram.
   */
  program(name: string): BpfProgram {
    this.#needLoaded();
    const h = this.#live().program(name);
    const type = h.info().type;
    if (type === 'sched_cls') return new TcProgram(h, name);
    const section =
      this.#live()
        .programs()
        .find((p) => p.name === name)?.section ?? '';
    if (isTracingProgram(type, section)) return new TracingProgram(h, name, section);
    return wrapProgram(h, name);
  }

  /** A loaded XDP program (ERR_INVALID_ARGUMENT if `name` is another type). */
  xdpProgram(name: string): XdpProgram {
    const p = this.program(name);
    if (!(p instanceof XdpProgram)) {
      p.close();
      invalidArgument('program', `'${name}' is a ${p.type} program, not XDP`);
    }
    return p;
  }

  /** A loaded sched_cls (TC) program (ERR_INVALID_ARGUMENT if `name` is another type). */
  tcProgram(name: string): TcProgram {
    const p = this.program(name);
    if (!(p instanceof TcProgram)) {
      p.close();
      invalidArgument('program', `'${name}' is a ${p.type} program, not sched_cls (TC)`);
    }
    return p;
  }

  /** A loaded tracing program (ERR_INVALID_ARGUMENT if `name` is another type). */
  tracingProgram(name: string): TracingProgram {
    const p = this.program(name);
    if (!(p instanceof TracingProgram)) {
      p.close();
      invalidArgument('program', `'${name}' is a ${p.type} program, not a tracing program (tp_btf, raw_tp, tracepoint, kprobe, fentry)`);
    }
    return p;
  }

  /** A typed view of a map; codec sizes and layouts are checked against the map's BTF. */
  map<K, V, KIn = K, VIn = V>(name: string, codecs: MapCodecs<K, V, KIn, VIn>): BpfMap<K, V, KIn, VIn> {
    this.#needLoaded();
    return new BpfMap(this.#live().map(name), codecs);
  }

  /** A per-CPU map: values are arrays with one `value` per possible CPU. */
  perCpuMap<K, V, KIn = K, VIn = V>(name: string, codecs: MapCodecs<K, V, KIn, VIn>): BpfMap<K, V[], KIn, VIn[] | VIn> {
    this.#needLoaded();
    const value = codecs.value as Codec<V, VIn>;
    return new BpfMap(this.#live().map(name), { key: codecs.key, value: perCpu(value) }, { perCpuValue: value });
  }

  /**
   * Reads the ringbuf map `name`, decoding each record with `codec` (see RingBuffer).
   * Losses are counted from `<name>_lost` when the object has it (BPFKIT_RINGBUF).
   */
  ringBuffer<E>(name: string, codec: Codec<E, any>, opts: RingBufferOptions = {}): RingBuffer<E> {
    this.#needLoaded();
    return RingBuffer.fromObject(this, name, codec, opts);
  }

  /** @internal raw native handle of a map (for RingBuffer and modules). */
  nativeMap(name: string) {
    this.#needLoaded();
    return this.#live().map(name);
  }

  /**
   * Releases the object. Programs still attached through links, pinned objects and
   * maps or programs opened from it stay alive in the kernel until those are closed.
   */
  close(): void {
    this.#h?.close();
    this.#h = undefined;
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #live(): NativeObjectHandle {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', 'BPF object is closed');
    return this.#h;
  }
  #needLoaded(): void {
    if (!this.#loaded) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'BPF object is not loaded: call load() first', { field: 'object' });
  }
}

function encodeGlobal(name: string, v: GlobalValue, size: number): Uint8Array {
  const field = `globals.${name}`;
  if (v instanceof Uint8Array) {
    if (v.length !== size) invalidArgument(field, `variable is ${size} bytes, value is ${v.length} bytes`);
    return v;
  }
  const b = Buffer.alloc(size);
  if (typeof v === 'boolean') v = v ? 1 : 0;
  if (![1, 2, 4, 8].includes(size)) invalidArgument(field, `variable is ${size} bytes: pass a Buffer`);
  const big = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : invalidArgument(field, `must be an integer, got ${v}`);
  const bits = BigInt(size * 8);
  if (big < -(1n << (bits - 1n)) || big >= 1n << bits) invalidArgument(field, `${v} does not fit in ${size} bytes`);
  const u = BigInt.asUintN(size * 8, big);
  for (let i = 0; i < size; i++) b[i] = Number((u >> BigInt(8 * i)) & 0xffn);
  return b;
}
