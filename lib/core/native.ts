/**
 * Loads the native addon (a local cmake-js build in build/Release, or a prebuild in
 * prebuilds/<platform>-<arch>/ found by node-gyp-build) and describes its surface.
 * Internal: users never touch these handles directly.
 */
import { createRequire } from 'node:module';
import { BpfkitError, errnoError, type BpfkitErrorCode } from './errors.js';
import type { BtfTypeInfo } from './codecs.js';
import { packageRoot } from './paths.js';

export { bpfObjectPath, packageRoot } from './paths.js';

export interface NativeFdHandle {
  readonly fd: number;
  pin(path: string): void;
  close(): void;
}
export interface NativeMapInfo {
  id: number;
  name: string;
  type: string;
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
}
/**
 * A map handle's own key slot (`bytes` at 0) and value slot (at max(keyBytes, 1) rounded
 * up to 8), with lookup / update / delete working on them: no arguments to unwrap.
 */
export interface NativeMapSlot {
  bytes: Buffer;
  lookup(): boolean;
  update(flags: number): void;
  delete(): boolean;
}
export interface NativeMapHandle extends NativeFdHandle {
  lookup(key: Uint8Array, out: Uint8Array): boolean;
  update(key: Uint8Array, value: Uint8Array, flags: number): void;
  delete(key: Uint8Array): boolean;
  /** This handle's single-entry hot path (the same object on every call). */
  scratch(keyBytes: number, valueBytes: number): NativeMapSlot;
  lookupAndDelete(key: Uint8Array | null, out: Uint8Array): boolean;
  nextKey(key: Uint8Array | null, out: Uint8Array): boolean;
  lookupBatch(keys: Uint8Array, values: Uint8Array, maxCount: number, chunk?: number): Promise<number>;
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags: number): Promise<number>;
  deleteBatch(keys: Uint8Array, values: null, count: number, flags: number): Promise<number>;
  freeze(): void;
  info(): NativeMapInfo;
  btfTypes(): { key: BtfTypeInfo | null; value: BtfTypeInfo | null };
  /** A new shared read-write mapping of a BPF_F_MMAPABLE array map's values (unmapped on GC). */
  mmap(): Buffer;
}
export interface NativeProgramInfo {
  id: number;
  name: string;
  type: string;
  tag: string;
  btfId: number;
}
export interface NativeLinkHandle extends NativeFdHandle {
  update(progFd: number, oldProgFd?: number): void;
  detach(): void;
  info(): { id: number; type: string; progId: number; ifindex?: number };
}
export interface NativeProgramHandle extends NativeFdHandle {
  info(): NativeProgramInfo;
  attachXdp(target: string | number, flags: number, netns?: string): { link: NativeLinkHandle; mode: string; ifindex: number };
  testRun(opts: {
    data: Uint8Array;
    repeat?: number;
    dataOutSize?: number;
    ctx?: Uint8Array;
    ctxOut?: boolean;
    flags?: number;
    batchSize?: number;
    netns?: string;
  }): Promise<{ retval: number; durationNs: number; data?: Buffer; ctx?: Buffer }>;
}
export interface NativeObjectHandle {
  programs(): { name: string; section: string; type: string; autoload: boolean; loaded: boolean }[];
  maps(): { name: string; type: string; keySize: number; valueSize: number; maxEntries: number; internal: boolean; pinPath?: string; pinned: boolean }[];
  globals(): { name: string; section: string; offset: number; size: number; readOnly: boolean }[];
  setMapMaxEntries(name: string, n: number): void;
  setMapPinPath(name: string, path: string | null): void;
  reuseMapFd(name: string, fd: number): void;
  setAutoload(name: string, on: boolean): void;
  setGlobal(name: string, value: Uint8Array): void;
  load(): Promise<void>;
  program(name: string): NativeProgramHandle;
  map(name: string): NativeMapHandle;
  close(): void;
}
/** One address family's records for aclCompile (built by lib/modules/acl/classifier.ts). */
export interface NativeAclFamily {
  family: 4 | 6;
  dims: number;
  count: number;
  /** count x dims lower and upper (inclusive) bounds. */
  lo: Uint32Array;
  hi: Uint32Array;
  prio: Uint32Array;
  meta: Uint32Array;
  tag: Uint32Array;
  /** Bits of each dimension. */
  widths: Uint8Array;
  /** Record indices of each tree, in priority order. */
  groups: Int32Array[];
}
export interface NativeAclCompileOptions {
  binth: number;
  spfac: number;
  maxBits: number;
  maxCutBits: number;
  maxWords: number;
  treeWords?: number;
}
/** The blob words (header left zero: lib/modules/acl/layout.ts writeBlobHeader fills it) or why compiling stopped. */
export interface NativeAclCompileResult {
  words?: Uint32Array;
  trees?: { family: 4 | 6; records: number; nodes: number; leaves: number; maxDepth: number; maxLeaf: number; words: number }[];
  /** Each tree's root node (word offset) and best priority, in the order of `trees`. */
  roots?: { family: 4 | 6; root: number; prio: number }[];
  error?: { family: 4 | 6; depth: number; rules: number };
  tooBig?: boolean;
}
/** addon/ring_buffer.cc: a ring buffer read through libuv (lib/core/ringbuf.ts). */
export interface NativeRingBufferHandle {
  readonly size: number;
  readonly pending: number;
  readonly fd: number;
  consume(buf: Uint8Array, offs: Uint32Array, max: number): number;
  /** The ring's own mapping as external ArrayBuffers (detached by close()). */
  mapping(): { consumer: ArrayBuffer; producer: ArrayBuffer; dataOffset: number; size: number };
  start(): void;
  stop(): void;
  ref(): void;
  unref(): void;
  close(): void;
}
export interface NativeAddon {
  /** The ACL rule-set compiler (addon/acl_compile.cc): builds the trees on the libuv pool. */
  aclCompile(v4: NativeAclFamily, v6: NativeAclFamily, opts: NativeAclCompileOptions): Promise<NativeAclCompileResult>;
  setErrorFactory(fn: (errno: number, syscall: string, message: string, extra: Record<string, unknown>) => Error): void;
  NativeObject: new (src: string | Uint8Array, opts: { name?: string; pinRoot?: string }) => NativeObjectHandle;
  openPinned(path: string): { kind: 'map' | 'program' | 'link'; handle: NativeFdHandle };
  // addon/by_id.cc: kernel objects by id (lib/core/by-id.ts)
  openById(kind: 'map', id: number): NativeMapHandle;
  openById(kind: 'program', id: number): NativeProgramHandle;
  openById(kind: 'link', id: number): NativeLinkHandle;
  progMapIds(progFd: number): number[];
  possibleCpus(): number;
  xdpQuery(target: string | number, netns?: string): { mode: string; progId: number; ifindex: number };
  ifIndex(target: string | number, netns?: string): number;
  // addon/tc.cc: tcx links and clsact filters (lib/core/programs/tc.ts)
  tcxProbe(): boolean;
  tcxAttach(
    progFd: number,
    target: string | number,
    direction: string,
    flags: number,
    relative: number,
    expectedRevision: number,
    netns?: string,
  ): { link: NativeLinkHandle; ifindex: number };
  tcxQuery(
    target: string | number,
    direction: string,
    netns?: string,
  ): { ifindex: number; revision: number; programs: { programId: number; linkId: number }[] };
  tcLinkInfo(linkFd: number): { id: number; type: string; progId: number; ifindex?: number; direction?: string };
  clsactAttach(
    progFd: number,
    target: string | number,
    direction: string,
    handle: number,
    priority: number,
    replace: boolean,
    netns?: string,
  ): { ifindex: number; handle: number; priority: number; createdQdisc: boolean };
  clsactQuery(ifindex: number, direction: string, handle: number, priority: number, netns?: string): number;
  clsactDetach(ifindex: number, direction: string, handle: number, priority: number, netns?: string): boolean;
  // addon/tracing.cc: tracing program attachment and the kernel's BTF enums (lib/core/programs/tracing.ts)
  tracingAttach(progFd: number, kind: string, target: string, cookie?: bigint): NativeLinkHandle;
  tracingProbe(): { kprobe: boolean; tracefs: string | null };
  fentryProbe(): boolean;
  kernelEnum(name: string): [string, number][] | null;
  // addon/pcap.cc: pcap-filter expressions compiled with libpcap (lib/modules/tracer/pcap.ts)
  /** struct bpf_insn[] (8 bytes each), or libpcap's message for a bad expression; ERR_UNSUPPORTED without libpcap. */
  pcapCompile(expr: string, linktype: number, snaplen: number): Buffer | string;
  /** libpcap's version string; absent when built without libpcap. */
  pcapVersion?: string;
  libbpfVersion: string;
  NativeRingBuffer: new (fd: number, owner: object, dispatch: (owner: never, status: number) => void) => NativeRingBufferHandle;
}

// ---- routing: the netlink side of the addon (addon/netlink*.cc) ----------------------
// Absent when the addon was built without libnl; lib/route checks and says so.

/** A rule as the addon takes and returns it (validated and normalised by lib/route). */
export interface NativeRule {
  family: 4 | 6;
  priority: number;
  table?: number;
  action: number;
  flags?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  src?: string;
  srcLen?: number;
  dst?: string;
  dstLen?: number;
  tos?: number;
  ipProto?: number;
  sport?: [number, number];
  dport?: [number, number];
  protocol?: number;
}
/** One next hop of a {@link NativeRoute}. */
export interface NativeNextHop {
  via?: string;
  dev?: string | number;
  ifindex?: number;
  weight?: number;
  flags?: number;
}
/** A route as the addon takes and returns it (validated and normalised by lib/route). */
export interface NativeRoute {
  family: 4 | 6;
  table: number;
  dst: string;
  dstLen: number;
  tos: number;
  metric: number;
  type: number;
  scope: number;
  protocol: number;
  flags?: number;
  prefsrc?: string;
  nexthops: NativeNextHop[];
}
/** One request of an nlBatch. */
export type NativeNlOp = { kind: 'rule'; cmd: 'add' | 'delete'; spec: NativeRule } | { kind: 'route'; cmd: 'add' | 'replace' | 'delete'; spec: NativeRoute };
/** A request of an nlBatch the kernel refused (or that may have been applied: `uncertain`). */
export interface NativeNlFailure {
  index: number;
  errno: number;
  message: string;
  uncertain?: boolean;
}
/**
 * Merged into NativeAddon above. `netns` is a path the addon opens and enters around
 * socket() (a name or an fd is turned into one by netnsPath); undefined: the caller's.
 */
export interface NativeAddon {
  nlBatch?(ops: NativeNlOp[], netns: string | undefined): Promise<NativeNlFailure[]>;
  /** Dumps come back as JSON text: one JSON.parse is much cheaper than an N-API call per field. */
  nlRulesJson?(family: 0 | 4 | 6, netns: string | undefined): Promise<string>;
  nlRoutesJson?(family: 4 | 6, table: number, protocol: number, netns: string | undefined): Promise<string>;
}

let addon: NativeAddon | undefined;

function nativeError(errno: number, syscall: string, message: string, extra: Record<string, unknown>): Error {
  const code = extra.code as BpfkitErrorCode | undefined;
  const details = extra.details as Record<string, unknown> | undefined;
  if (!syscall) {
    const opts: { errno?: number; details?: Record<string, unknown>; field?: string } = {};
    if (errno) opts.errno = errno;
    if (details) opts.details = details;
    if (code === 'ERR_INVALID_ARGUMENT') {
      const m = /^([\w.[\]'-]+): /.exec(message);
      if (m) opts.field = m[1];
    }
    return new BpfkitError(code ?? 'ERR_SYSTEM', message, opts);
  }
  const x: Parameters<typeof errnoError>[3] = {};
  if (code) x.code = code;
  if (typeof extra.log === 'string') x.log = extra.log;
  if (typeof extra.program === 'string') x.program = extra.program;
  if (details) x.details = details;
  return errnoError(errno, syscall, message, x);
}

/** The loaded addon (loaded once, on first use). */
export function native(): NativeAddon {
  if (addon) return addon;
  addon = loadAddon();
  addon.setErrorFactory(nativeError);
  return addon;
}

/** What the published package carries prebuilt (scripts/prebuild.sh; docs/install.md). */
const PREBUILT_FOR = 'linux-x64 with glibc >= 2.34';
/** Debian/Ubuntu packages a source build needs, and the Alpine ones. */
const APT_BUILD_PACKAGES = 'clang llvm cmake make g++ pkg-config libbpf-dev libelf-dev zlib1g-dev libnl-3-dev libnl-route-3-dev libpcap-dev';
const APK_BUILD_PACKAGES = 'clang llvm cmake make g++ pkgconf linux-headers libbpf-dev elfutils-dev zlib-dev libnl3-dev libpcap-dev';

/**
 * node-gyp-build's choice: a local build (build/Release, a source checkout or a source
 * build) first, else prebuilds/<platform>-<arch>/bpfkit.napi.glibc.node. Needs no install
 * script. Where nothing fits, or the file found cannot be loaded here, the error says
 * what to install and the one command that builds the addon from source.
 */
function loadAddon(): NativeAddon {
  const require = createRequire(import.meta.url);
  const ngb = require('node-gyp-build') as { resolve(dir: string): string };
  const root = packageRoot();
  let file: string;
  try {
    file = ngb.resolve(root);
  } catch (e) {
    throw addonError(root, 'has no prebuilt addon for', e);
  }
  try {
    return require(file) as NativeAddon;
  } catch (e) {
    throw addonError(root, `cannot load its addon ${file} on`, e);
  }
}

function addonError(root: string, what: string, cause: unknown): BpfkitError {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const glibc = header?.glibcVersionRuntime;
  const libc = glibc ? `glibc ${glibc}` : 'a libc other than glibc';
  const target = `${process.platform}-${process.arch}, ${libc}, node ${process.version}`;
  const install = glibc ? `apt-get install -y ${APT_BUILD_PACKAGES}` : `apk add ${APK_BUILD_PACKAGES} (or your distribution's equivalents)`;
  const build = `cd '${root}' && npx --yes cmake-js@7.4.0 build --out build`;
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new BpfkitError(
    'ERR_NOT_FOUND',
    `bpfkit ${what} this machine (${target}); prebuilt: ${PREBUILT_FOR}. ` + `Build it from source: ${install}; then: ${build}   (${reason})`,
    { cause, details: { platform: process.platform, arch: process.arch, libc: glibc ? 'glibc' : 'other', glibc, install, build } },
  );
}

/** Opens a pinned object and checks it is of the kind the caller expects. */
export function openPinnedAs<K extends 'map' | 'program' | 'link'>(
  path: string,
  want: K,
): K extends 'map' ? NativeMapHandle : K extends 'program' ? NativeProgramHandle : NativeLinkHandle {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `path: must be an absolute path on a BPF filesystem, got ${String(path)}`, { field: 'path' });
  }
  const { kind, handle } = native().openPinned(path);
  if (kind !== want) {
    handle.close();
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `'${path}' is a pinned ${kind}, not a ${want}`, { field: 'path' });
  }
  return handle as never;
}
