/**
 * Tracing programs: tp_btf, raw_tp, tracepoint, kprobe/kretprobe and fentry/fexit/fmod_ret
 * programs from any BpfObject, attached as bpf_links (`TracingLink`) that detach when
 * closed, garbage collected or when the process dies, unless pinned.
 *
 * The attach target comes from the program's ELF section, as libbpf names them
 * (`SEC("tp_btf/kfree_skb")`, `SEC("raw_tp/kfree_skb")`, `SEC("tracepoint/net/netif_receive_skb")`,
 * `SEC("kprobe/udp_rcv")`, `SEC("fentry/udp_rcv")`); raw_tp, tracepoint and kprobe programs
 * may be attached elsewhere with `attach({ target })`. What the kernel lacks is
 * ERR_UNSUPPORTED naming it: no kprobe PMU, tracefs not mounted (tracepoint programs need
 * it for the event id), BPF trampolines refused (fentry/fexit). `tracingSupport()` says it
 * before anything is loaded.
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import { btfKnows } from '../features.js';
import { native, openPinnedAs, type NativeLinkHandle, type NativeProgramHandle } from '../native.js';
import { BpfProgram } from './program.js';

/** How a tracing program attaches (the ELF section prefix, as libbpf names it). */
export type TracingKind = 'tp_btf' | 'raw_tp' | 'tracepoint' | 'kprobe' | 'kretprobe' | 'fentry' | 'fexit' | 'fmod_ret';

/** Section prefixes libbpf accepts for each kind ('.s' sleepable and '.w' writable variants included). */
const SECTION_KINDS: [RegExp, TracingKind][] = [
  [/^tp_btf\//, 'tp_btf'],
  [/^(raw_tp|raw_tracepoint)(\.w)?\//, 'raw_tp'],
  [/^(tp|tracepoint)\//, 'tracepoint'],
  [/^kprobe\//, 'kprobe'],
  [/^kretprobe\//, 'kretprobe'],
  [/^fentry(\.s)?\//, 'fentry'],
  [/^fexit(\.s)?\//, 'fexit'],
  [/^fmod_ret(\.s)?\//, 'fmod_ret'],
];
/** Kernel program types of tracing programs (libbpf's names). */
const TRACING_TYPES = new Set(['tracing', 'raw_tracepoint', 'raw_tracepoint_writable', 'tracepoint', 'kprobe']);

/** The kind and target named by a program's section, or undefined for other sections. */
export function tracingSection(section: string): { kind: TracingKind; target: string } | undefined {
  for (const [re, kind] of SECTION_KINDS) {
    const m = re.exec(section);
    if (m) return { kind, target: section.slice(m[0].length) };
  }
  return undefined;
}

/** @internal whether a program of kernel type `type` from `section` is a tracing program. */
export function isTracingProgram(type: string, section: string): boolean {
  return TRACING_TYPES.has(type) && tracingSection(section) !== undefined;
}

/** What the running kernel lets tracing programs do (probed once per process). */
export interface TracingSupport {
  /** BTF-typed tracepoints (tp_btf): need the kernel's BTF. */
  tpBtf: boolean;
  /** Raw tracepoints (raw_tp): every kernel bpfkit runs on. */
  rawTp: true;
  /** Classic tracepoints: where tracefs is mounted (the event ids live there), or null. */
  tracefs: string | null;
  /** kprobe / kretprobe: whether the kernel has a kprobe PMU. */
  kprobe: boolean;
  /** fentry / fexit / fmod_ret: whether the kernel accepts BPF trampolines (a probe program is loaded). */
  fentry: boolean;
  /** One sentence per missing feature, for logs and warnings. */
  missing: string[];
}

let support: TracingSupport | undefined;

/** Probes the kernel for each kind of tracing attachment (cached; tracefs is re-checked each call). */
export function tracingSupport(): TracingSupport {
  const n = native();
  const probe = n.tracingProbe();
  support ??= {
    tpBtf: btfKnows('btf_trace_kfree_skb', 'BPF_MAP_TYPE_HASH') === true,
    rawTp: true,
    tracefs: null,
    kprobe: probe.kprobe,
    fentry: n.fentryProbe(),
    missing: [],
  };
  const s: TracingSupport = { ...support, tracefs: probe.tracefs };
  const missing: string[] = [];
  if (!s.tpBtf) missing.push('tp_btf: the kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)');
  if (!s.tracefs) missing.push('tracepoint: tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing); tp_btf and raw_tp need none');
  if (!s.kprobe) missing.push('kprobe/kretprobe: the kernel has no kprobes (no kprobe PMU: CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)');
  if (!s.fentry) missing.push('fentry/fexit/fmod_ret: the kernel refuses BPF trampolines (EPERM: no ftrace, or lockdown)');
  s.missing = missing;
  return s;
}

/** Whether the running kernel has the tracepoint `name` (a `btf_trace_<name>` type in its BTF; undefined without BTF). */
export function kernelHasTracepoint(name: string): boolean | undefined {
  if (typeof name !== 'string' || !/^\w+$/.test(name)) invalidArgument('name', `'${String(name)}' is not a tracepoint name`);
  return btfKnows(`btf_trace_${name}`, 'BPF_MAP_TYPE_HASH');
}

const enums = new Map<string, Map<number, string> | null>();

/**
 * An enum of the running kernel, read from its BTF: value -> enumerator name (e.g.
 * `kernelEnum('skb_drop_reason').get(3)` is 'SKB_DROP_REASON_NO_SOCKET' on kernels where
 * it is 3). Null when the kernel has no such enum. Cached per process.
 */
export function kernelEnum(name: string): ReadonlyMap<number, string> | null {
  if (typeof name !== 'string' || !/^\w+$/.test(name)) invalidArgument('name', `'${String(name)}' is not a C enum name`);
  if (!enums.has(name)) {
    const pairs = native().kernelEnum(name);
    enums.set(name, pairs ? new Map(pairs.map(([n, v]) => [v, n])) : null);
  }
  return enums.get(name)!;
}

/**
 * A function that names an skb drop reason as the running kernel does: 'NO_SOCKET',
 * 'NETFILTER_DROP', ... (SKB_DROP_REASON_ stripped; 'NOT_DROPPED_YET' and 'CONSUMED' as they
 * are), 'unknown(N)' for values the kernel's enum does not list (subsystem reasons).
 */
export function dropReasonNamer(): (reason: number) => string {
  const e = kernelEnum('skb_drop_reason');
  return (reason) => {
    const n = e?.get(reason);
    if (!n) return `unknown(${reason})`;
    return n.replace(/^SKB_DROP_REASON_/, '').replace(/^SKB_/, '');
  };
}

/** Options of {@link TracingProgram.attach}. */
export interface TracingAttachOptions {
  /**
   * Where to attach, for raw_tp ('kfree_skb'), tracepoint ('net/netif_receive_skb') and
   * kprobe/kretprobe ('udp_rcv', 'udp_rcv+4'); default: the program's section. tp_btf and
   * fentry/fexit targets are fixed at load by the section.
   */
  target?: string;
  /** A u64 the program reads with bpf_get_attach_cookie() (tracepoint and kprobe attachments). */
  cookie?: bigint | number;
}

function checkTarget(kind: TracingKind, target: string, field: string): string {
  const ok = kind === 'tracepoint' ? /^\w+\/\w+$/ : kind === 'kprobe' || kind === 'kretprobe' ? /^[\w.$]+(\+(0x[0-9a-f]+|\d+))?$/i : /^\w+$/;
  if (typeof target !== 'string' || !ok.test(target)) {
    const want = kind === 'tracepoint' ? "'category/name'" : kind.startsWith('k') ? "'function' or 'function+offset'" : 'a tracepoint or function name';
    invalidArgument(field, `${kind} target must be ${want}, got ${JSON.stringify(target)}`);
  }
  return target;
}

/** A loaded tp_btf, raw_tp, tracepoint, kprobe or fentry/fexit program. */
export class TracingProgram extends BpfProgram {
  /** The kind of tracing program, from its section (tp_btf, raw_tp, tracepoint, kprobe, fentry, ...). */
  readonly kind: TracingKind;
  /** The attach target named by the section (tracepoint, category/name or function). */
  readonly target: string;

  /** @internal use BpfObject.program() / tracingProgram(). */
  constructor(handle: NativeProgramHandle, name: string, section: string) {
    super(handle, name);
    const s = tracingSection(section);
    if (!s) throw new BpfkitError('ERR_INVALID_ARGUMENT', `program '${name}' (section '${section}') is not a tracing program`, { field: 'program' });
    this.kind = s.kind;
    this.target = s.target;
  }

  /**
   * Attaches the program. The link detaches when closed, garbage collected or when the
   * process exits (also SIGKILL), unless pinned. Nothing changes in the kernel when this
   * throws; a kind the kernel lacks is ERR_UNSUPPORTED naming what is missing.
   */
  attach(opts: TracingAttachOptions = {}): TracingLink {
    if (!opts || typeof opts !== 'object') invalidArgument('options', 'must be an object');
    let target = this.target;
    if (opts.target !== undefined) {
      if (this.kind === 'tp_btf' || this.kind === 'fentry' || this.kind === 'fexit' || this.kind === 'fmod_ret') {
        invalidArgument('target', `a ${this.kind} program's target is fixed at load by its section ('${this.target}')`);
      }
      target = checkTarget(this.kind, opts.target, 'target');
    }
    let cookie: bigint | undefined;
    if (opts.cookie !== undefined) {
      if (this.kind !== 'tracepoint' && this.kind !== 'kprobe' && this.kind !== 'kretprobe')
        invalidArgument('cookie', `${this.kind} attachments carry no cookie (tracepoint and kprobe ones do)`);
      const c = typeof opts.cookie === 'number' && Number.isSafeInteger(opts.cookie) ? BigInt(opts.cookie) : opts.cookie;
      if (typeof c !== 'bigint' || c < 0n || c >= 1n << 64n) invalidArgument('cookie', `must be an integer in 0..2^64-1, got ${String(opts.cookie)}`);
      cookie = c;
    }
    const link = native().tracingAttach(this.fd, this.kind, target, cookie);
    return new TracingLink(link, { kind: this.kind, target, program: this.name });
  }
}

/**
 * Turns EPERM at load, as root, of an object with fentry/fexit/fmod_ret programs into
 * ERR_UNSUPPORTED naming them: this kernel refuses BPF trampolines (a privilege problem
 * would be refused for any program, and a root process has the privileges). Others pass.
 */
export function explainTracingLoadError(err: unknown, programs: readonly { name: string; section: string; autoload: boolean }[]): unknown {
  if (!(err instanceof BpfkitError) || err.errno !== 1 || process.geteuid?.() !== 0) return err;
  const tramp = programs.filter((p) => p.autoload && /^(fentry|fexit|fmod_ret)/.test(tracingSection(p.section)?.kind ?? ''));
  if (tramp.length === 0) return err;
  const names = tramp.map((p) => `'${p.name}' (${p.section})`).join(', ');
  return new BpfkitError(
    'ERR_UNSUPPORTED',
    `program ${names}: the running kernel refuses BPF trampolines (fentry/fexit/fmod_ret load fails with EPERM as root: no ftrace, or lockdown); use tp_btf or raw_tp tracepoints, or set autoload: false for these programs`,
    {
      errno: 1,
      details: { feature: 'BPF trampolines (fentry/fexit)' },
      cause: err,
    },
  );
}

/** Kernel view of a tracing link. */
export interface TracingLinkInfo {
  /** The link's kernel id (as in `bpftool link`). */
  id: number;
  /** bpf_link type as libbpf names it: 'raw_tracepoint', 'tracing', 'perf_event'. */
  type: string;
  /** Id of the program it runs. */
  progId: number;
}

/** A tracing attachment (a bpf_link): detaches on close() unless pinned. */
export class TracingLink {
  /** The program's kind ('unknown' for a link re-opened from a pin). */
  readonly kind: TracingKind | 'unknown';
  /** What it is attached to ('' for a link re-opened from a pin). */
  readonly target: string;
  #h: NativeLinkHandle | undefined;
  #program: string;

  /** @internal */
  constructor(h: NativeLinkHandle, meta: { kind: TracingKind | 'unknown'; target: string; program: string }) {
    this.#h = h;
    this.kind = meta.kind;
    this.target = meta.target;
    this.#program = meta.program;
  }

  /** Re-opens a pinned tracing link (its kind and target are not recorded in the kernel's link info: 'unknown'). */
  static openPinned(path: string): TracingLink {
    const h = openPinnedAs(path, 'link');
    const info = h.info();
    if (!['raw_tracepoint', 'tracing', 'perf_event'].includes(info.type)) {
      h.close();
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `'${path}' is a ${info.type} link, not a tracing link`, { field: 'path' });
    }
    return new TracingLink(h, { kind: 'unknown', target: '', program: `prog#${info.progId}` });
  }

  /** @internal */
  get handle(): NativeLinkHandle {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', 'tracing link is closed');
    return this.#h;
  }
  /** True once closed. */
  get closed(): boolean {
    return this.#h === undefined;
  }
  /** Kernel view: link id, link type, id of the program it runs. */
  get info(): TracingLinkInfo {
    const i = this.handle.info();
    return { id: i.id, type: i.type, progId: i.progId };
  }
  /** Name of the attached program. */
  get program(): string {
    return this.#program;
  }
  /** Pins the link: it stays attached after this process closes it or exits. */
  pin(path: string): void {
    this.handle.pin(path);
  }
  /**
   * Detaches now, even if pinned (remove the pin file separately). Kernels without
   * BPF_LINK_DETACH for this link type (raw tracepoint links, up to at least 6.18) give
   * ERR_UNSUPPORTED: remove the pin and close every handle instead.
   */
  detach(): void {
    try {
      this.handle.detach();
    } catch (e) {
      if (e instanceof BpfkitError && e.errno === 95) {
        throw new BpfkitError(
          'ERR_UNSUPPORTED',
          `the kernel cannot force-detach a ${this.handle.info().type} link (BPF_LINK_DETACH: EOPNOTSUPP): remove its pin and close it`,
          { errno: 95, syscall: 'bpf(BPF_LINK_DETACH)', cause: e },
        );
      }
      throw e;
    }
  }
  /** Releases this handle: detaches unless the link is pinned. */
  close(): void {
    this.#h?.close();
    this.#h = undefined;
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
