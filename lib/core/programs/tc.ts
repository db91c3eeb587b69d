/**
 * TC (sched_cls) programs: attach at an interface's ingress or egress, as a tcx link
 * (Linux >= 6.6: a bpf_link with before/after ordering) or, on kernels without tcx, as a
 * direct-action cls_bpf filter under a clsact qdisc. `TcLink.kind` says which one.
 * BPF_PROG_TEST_RUN with a `struct __sk_buff` context gives fixture tests.
 */
import { checkInteger } from '../validate.js';
import { BpfkitError, invalidArgument } from '../errors.js';
import { native, openPinnedAs, type NativeLinkHandle, type NativeProgramHandle } from '../native.js';
import { checkInterface, netnsPath, type NetnsRef } from '../net/netns.js';
import { BpfProgram } from './program.js';

/** The TC hook: packets received ('ingress') or sent ('egress') by the interface. */
export type TcDirection = 'ingress' | 'egress';
/** 'tcx': a bpf_link (Linux >= 6.6); 'clsact': a cls_bpf filter under a clsact qdisc. */
export type TcKind = 'tcx' | 'clsact';
/**
 * TC_ACT_* return codes by name. 'unspec' (-1, TCX_NEXT) hands the packet to the next
 * program; 'ok' (TCX_PASS) passes it, 'shot' (TCX_DROP) drops it, 'redirect' (TCX_REDIRECT)
 * follows a bpf_redirect*() call.
 */
export type TcVerdict = 'unspec' | 'ok' | 'reclassify' | 'shot' | 'pipe' | 'stolen' | 'queued' | 'repeat' | 'redirect' | 'trap';
const TC_VERDICTS: TcVerdict[] = ['ok', 'reclassify', 'shot', 'pipe', 'stolen', 'queued', 'repeat', 'redirect', 'trap'];

/** Name of a TC return code (signed or as the kernel's u32 retval), or 'unknown(N)'. */
export function tcVerdictName(retval: number): TcVerdict | `unknown(${number})` {
  const v = retval | 0;
  if (v === -1) return 'unspec';
  return TC_VERDICTS[v] ?? `unknown(${v})`;
}

/** The TC_ACT_* code of a verdict name (e.g. for a `const volatile` global). */
export function tcVerdictCode(name: TcVerdict): number {
  if (name === 'unspec') return -1;
  const i = TC_VERDICTS.indexOf(name);
  if (i < 0) invalidArgument('verdict', `unknown TC verdict '${String(name)}' (known: unspec, ${TC_VERDICTS.join(', ')})`);
  return i;
}

/**
 * Where a tcx attachment goes relative to others at the same hook: next to a TcLink
 * (tcx), a program, a program or link by kernel id, or 'all' (before all = run first,
 * after all = run last, the default).
 */
export type TcAnchor = TcLink | BpfProgram | { programId: number } | { linkId: number } | 'all';

/** Options of {@link TcProgram.attach}. */
export interface TcAttachOptions {
  /** The hook to attach to. */
  direction: TcDirection;
  /** Network namespace of the interface (name under /run/netns or a path). */
  netns?: NetnsRef;
  /** Force one mechanism; by default tcx when the kernel has it (see tcxAvailable()), else clsact. */
  kind?: TcKind;
  /** tcx: run before this anchor. */
  before?: TcAnchor;
  /** tcx: run after this anchor. */
  after?: TcAnchor;
  /** tcx: fail with ERR_BUSY unless the hook is still at this revision (TcLink.query().revision). */
  expectedRevision?: number;
  /** clsact: filter priority 1..65535 (lower runs first); the kernel picks one when omitted. Ignored on tcx. */
  priority?: number;
  /** clsact: filter handle; the kernel picks one when omitted. Ignored on tcx. */
  handle?: number;
}

const BPF_F_BEFORE = 1 << 3;
const BPF_F_AFTER = 1 << 4;
const BPF_F_ID = 1 << 5;
const BPF_F_LINK = 1 << 13;

let tcxProbed: boolean | undefined;

/**
 * Whether this kernel has tcx hooks (probed once with a read-only BPF_PROG_QUERY on the
 * loopback device; only EINVAL/EOPNOTSUPP count as "no", any other failure is thrown).
 */
export function tcxAvailable(): boolean {
  tcxProbed ??= native().tcxProbe();
  return tcxProbed;
}

function checkDirection(d: unknown, field = 'direction'): TcDirection {
  if (d !== 'ingress' && d !== 'egress') invalidArgument(field, `must be 'ingress' or 'egress', got ${JSON.stringify(d)}`);
  return d;
}

function anchorOf(a: TcAnchor, field: string): { flags: number; relative: number } {
  if (a === 'all') return { flags: 0, relative: 0 };
  if (a instanceof TcLink) {
    if (a.kind !== 'tcx') invalidArgument(field, 'a clsact attachment cannot anchor a tcx one (order clsact filters with priority)');
    return { flags: BPF_F_LINK, relative: a.handle.fd };
  }
  if (a instanceof BpfProgram) return { flags: 0, relative: a.fd };
  if (a && typeof a === 'object' && 'programId' in a) return { flags: BPF_F_ID, relative: checkInteger(a.programId, `${field}.programId`, 1, 0xffffffff) };
  if (a && typeof a === 'object' && 'linkId' in a) return { flags: BPF_F_ID | BPF_F_LINK, relative: checkInteger(a.linkId, `${field}.linkId`, 1, 0xffffffff) };
  return invalidArgument(field, "must be a TcLink, a program, { programId }, { linkId } or 'all'");
}

/** Options of {@link TcProgram.testRun}. */
export interface TcTestRunOptions {
  /** Run the program this many times (durationNs is the mean). */
  repeat?: number;
  /** __sk_buff.mark going in. */
  mark?: number;
  /** __sk_buff.priority going in. */
  priority?: number;
  /** The device the skb is on (__sk_buff.ifindex; the kernel uses loopback when omitted). */
  iface?: string | number;
  /** The device it arrived on (__sk_buff.ingress_ifindex). */
  ingress?: string | number;
  /** __sk_buff.cb[0..4] going in (up to five u32). */
  cb?: number[];
  /** Namespace the interfaces are looked up in. */
  netns?: NetnsRef;
}

/** The __sk_buff fields the kernel copies back after a test run. */
export interface TcTestRunContext {
  /** __sk_buff.mark. */
  mark: number;
  /** __sk_buff.priority. */
  priority: number;
  /** __sk_buff.ifindex. */
  ifindex: number;
  /** __sk_buff.ingress_ifindex. */
  ingressIfindex: number;
  /** __sk_buff.cb[0..4]. */
  cb: number[];
  /** __sk_buff.wire_len. */
  wireLen: number;
}

/** Result of {@link TcProgram.testRun}. */
export interface TcTestRunResult {
  /** The verdict by name ('ok', 'shot', ...; 'unknown(N)' for other return values). */
  verdict: TcVerdict | `unknown(${number})`;
  /** The program's return value, signed (TC_ACT_UNSPEC is -1). */
  retval: number;
  /** The packet as the program left it. */
  packet: Buffer;
  /** The __sk_buff fields as the program left them. */
  ctx: TcTestRunContext;
  /** Mean run time per repetition, measured by the kernel. */
  durationNs: number;
}

// struct __sk_buff (192 bytes): the offsets of the fields a test run may set or returns.
const SKB_SIZE = 192;
const SKB = { mark: 8, priority: 32, ingressIfindex: 36, ifindex: 40, cb: 48, wireLen: 160 } as const;

/** A loaded sched_cls (TC) program: attach it to an interface's ingress or egress hook (tcx or clsact), or test-run it on a packet. */
export class TcProgram extends BpfProgram {
  /** Opens a pinned sched_cls program. */
  static override openPinned(path: string): TcProgram {
    const h = openPinnedAs(path, 'program');
    const type = h.info().type;
    if (type !== 'sched_cls') {
      h.close();
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `'${path}' is a ${type} program, not sched_cls`, { field: 'path' });
    }
    return new TcProgram(h);
  }

  /**
   * Attaches at `direction` of an interface. tcx links detach when closed, garbage
   * collected or when the process exits, unless pinned; clsact filters are removed on
   * close(), garbage collection and normal process exit (not when the process is killed:
   * they are netlink objects, not links). Nothing changes in the kernel when this throws.
   */
  attach(iface: string | number, opts: TcAttachOptions): TcLink {
    checkInterface(iface);
    if (!opts || typeof opts !== 'object') invalidArgument('direction', "options with direction 'ingress' or 'egress' are required");
    const direction = checkDirection(opts.direction);
    if (opts.kind !== undefined && opts.kind !== 'tcx' && opts.kind !== 'clsact')
      invalidArgument('kind', `must be 'tcx' or 'clsact', got ${JSON.stringify(opts.kind)}`);
    if (opts.before !== undefined && opts.after !== undefined) invalidArgument('before', 'give either before or after, not both');
    const anchorField = opts.before !== undefined ? 'before' : 'after';
    const anchorVal = opts.before ?? opts.after;
    const anchor = anchorVal === undefined ? undefined : anchorOf(anchorVal, anchorField);
    const rev = opts.expectedRevision === undefined ? 0 : checkInteger(opts.expectedRevision, 'expectedRevision', 1, Number.MAX_SAFE_INTEGER);
    const priority = opts.priority === undefined ? 0 : checkInteger(opts.priority, 'priority', 1, 0xffff);
    const handle = opts.handle === undefined ? 0 : checkInteger(opts.handle, 'handle', 1, 0xffffffff);
    if (opts.kind === 'tcx' && (opts.priority !== undefined || opts.handle !== undefined)) {
      invalidArgument(opts.priority !== undefined ? 'priority' : 'handle', "applies to kind 'clsact' only (order tcx links with before/after)");
    }
    if (opts.kind === 'clsact' && (anchor || opts.expectedRevision !== undefined)) {
      invalidArgument(anchor ? anchorField : 'expectedRevision', "applies to kind 'tcx' only (order clsact filters with priority)");
    }
    const ns = netnsPath(opts.netns);
    const kind = opts.kind ?? (tcxAvailable() ? 'tcx' : 'clsact');
    if (kind === 'clsact' && (anchor || opts.expectedRevision !== undefined) && opts.priority === undefined) {
      throw new BpfkitError(
        'ERR_UNSUPPORTED',
        `${anchor ? anchorField : 'expectedRevision'}: this kernel has no tcx hooks, and clsact filters are ordered by priority only: pass priority as well`,
        { field: anchor ? anchorField : 'expectedRevision' },
      );
    }
    if (kind === 'tcx') {
      const flags = anchor ? anchor.flags | (opts.before !== undefined ? BPF_F_BEFORE : BPF_F_AFTER) : 0;
      const r = native().tcxAttach(this.fd, iface, direction, flags, anchor?.relative ?? 0, rev, ns);
      return new TcLink({ kind, ifindex: r.ifindex, direction, netns: ns, program: this.name, link: r.link });
    }
    const r = native().clsactAttach(this.fd, iface, direction, handle, priority, false, ns);
    return new TcLink({ kind, ifindex: r.ifindex, direction, netns: ns, program: this.name, handle: r.handle, priority: r.priority });
  }

  /**
   * Runs the program once (or `repeat` times) on `packet` (an Ethernet frame) with
   * BPF_PROG_TEST_RUN and a `struct __sk_buff` context. The kernel lets a test run set
   * mark, priority, ifindex, ingress_ifindex and cb[] (and returns them with wire_len);
   * it refuses a data_meta area for skb test runs (XDP metadata needs a real packet).
   */
  async testRun(packet: Uint8Array, opts: TcTestRunOptions = {}): Promise<TcTestRunResult> {
    const repeat = opts.repeat === undefined ? 1 : checkInteger(opts.repeat, 'repeat', 1, 0xffffffff);
    if (!(packet instanceof Uint8Array) || packet.length < 14) invalidArgument('packet', 'must be a Buffer of at least 14 bytes (an Ethernet frame)');
    const ctx = Buffer.alloc(SKB_SIZE);
    if (opts.mark !== undefined) ctx.writeUInt32LE(checkInteger(opts.mark, 'mark', 0, 0xffffffff), SKB.mark);
    if (opts.priority !== undefined) ctx.writeUInt32LE(checkInteger(opts.priority, 'priority', 0, 0xffffffff), SKB.priority);
    if (opts.cb !== undefined) {
      if (!Array.isArray(opts.cb) || opts.cb.length > 5) invalidArgument('cb', 'must be an array of up to 5 u32');
      opts.cb.forEach((v, i) => ctx.writeUInt32LE(checkInteger(v, `cb[${i}]`, 0, 0xffffffff), SKB.cb + 4 * i));
    }
    if (opts.iface !== undefined) checkInterface(opts.iface, 'iface');
    if (opts.ingress !== undefined) checkInterface(opts.ingress, 'ingress');
    const ns = netnsPath(opts.netns);
    if (opts.iface !== undefined) ctx.writeUInt32LE(native().ifIndex(opts.iface, ns), SKB.ifindex);
    if (opts.ingress !== undefined) ctx.writeUInt32LE(native().ifIndex(opts.ingress, ns), SKB.ingressIfindex);
    const run: Parameters<NativeProgramHandle['testRun']>[0] = { data: packet, repeat, ctx, ctxOut: true };
    if (ns) run.netns = ns;
    const r = await this.handle.testRun(run);
    const out = r.ctx ?? Buffer.alloc(SKB_SIZE);
    return {
      verdict: tcVerdictName(r.retval),
      retval: r.retval | 0,
      packet: r.data ?? Buffer.alloc(0),
      ctx: {
        mark: out.readUInt32LE(SKB.mark),
        priority: out.readUInt32LE(SKB.priority),
        ifindex: out.readUInt32LE(SKB.ifindex),
        ingressIfindex: out.readUInt32LE(SKB.ingressIfindex),
        cb: [0, 1, 2, 3, 4].map((i) => out.readUInt32LE(SKB.cb + 4 * i)),
        wireLen: out.readUInt32LE(SKB.wireLen),
      },
      durationNs: r.durationNs,
    };
  }
}

/** Kernel view of a TC attachment. */
export interface TcLinkInfo {
  /** The mechanism: 'tcx' or 'clsact'. */
  kind: TcKind;
  /** bpf_link id (tcx only). */
  id?: number;
  /** Id of the program now attached (0: a clsact filter that is gone). */
  progId: number;
  /** Index of the interface. */
  ifindex: number;
  /** The hook. */
  direction: TcDirection;
  /** clsact filter handle (clsact only). */
  handle?: number;
  /** clsact filter priority (clsact only). */
  priority?: number;
}

/** The programs at one tcx hook, in the order the kernel runs them. */
export interface TcxHookState {
  /** Index of the interface. */
  ifindex: number;
  /** Bumped by every change at the hook; see TcAttachOptions.expectedRevision. */
  revision: number;
  /** linkId 0: attached without a link (BPF_PROG_ATTACH by another tool). */
  programs: { programId: number; linkId: number }[];
}

interface ClsactTarget {
  ifindex: number;
  direction: TcDirection;
  handle: number;
  priority: number;
  netns: string | undefined;
}

function detachClsact(t: ClsactTarget): boolean {
  return native().clsactDetach(t.ifindex, t.direction, t.handle, t.priority, t.netns);
}

// clsact filters are netlink objects: nothing removes them when their owner dies. These
// remove the ones this process still holds when a TcLink is collected or the process exits.
const liveClsact = new Set<ClsactTarget>();
const clsactGc = new FinalizationRegistry<ClsactTarget>((t) => {
  if (!liveClsact.delete(t)) return;
  try {
    detachClsact(t);
  } catch {
    /* namespace or interface gone: so is the filter */
  }
});
let exitHook = false;
function trackClsact(link: TcLink, t: ClsactTarget): void {
  liveClsact.add(t);
  clsactGc.register(link, t, link);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const t of liveClsact) {
      try {
        detachClsact(t);
      } catch {
        /* best effort at exit */
      }
    }
    liveClsact.clear();
  });
}

/**
 * A TC attachment. kind 'tcx': a bpf_link, detached on close() unless pinned.
 * kind 'clsact': a cls_bpf filter, removed on close(); it cannot be pinned. The clsact
 * qdisc itself is left in place (an empty one costs nothing, and netlink has no
 * "delete if empty": removing it could take other users' filters with it).
 */
export class TcLink {
  /** The mechanism the program is attached with: 'tcx' or 'clsact'. */
  readonly kind: TcKind;
  /** Index of the interface. */
  readonly ifindex: number;
  /** The hook. */
  readonly direction: TcDirection;
  /** Path of the interface's network namespace (undefined: the process's own). */
  readonly netns: string | undefined;
  /** clsact filter handle (undefined for tcx). */
  readonly filterHandle: number | undefined;
  /** clsact filter priority (undefined for tcx). */
  readonly priority: number | undefined;
  #link: NativeLinkHandle | undefined;
  #clsact: ClsactTarget | undefined;
  #closed = false;
  #program: string;

  /** @internal */
  constructor(m: {
    kind: TcKind;
    ifindex: number;
    direction: TcDirection;
    netns: string | undefined;
    program: string;
    link?: NativeLinkHandle;
    handle?: number;
    priority?: number;
  }) {
    this.kind = m.kind;
    this.ifindex = m.ifindex;
    this.direction = m.direction;
    this.netns = m.netns;
    this.#program = m.program;
    this.filterHandle = m.handle;
    this.priority = m.priority;
    if (m.link) this.#link = m.link;
    if (m.kind === 'clsact') {
      this.#clsact = { ifindex: m.ifindex, direction: m.direction, handle: m.handle!, priority: m.priority!, netns: m.netns };
      trackClsact(this, this.#clsact);
    }
  }

  /** Re-opens a pinned tcx link (e.g. in a new process). */
  static openPinned(path: string, opts: { netns?: NetnsRef } = {}): TcLink {
    const h = openPinnedAs(path, 'link');
    const info = native().tcLinkInfo(h.fd);
    if (info.type !== 'tcx') {
      h.close();
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `'${path}' is a ${info.type} link, not a tcx link`, { field: 'path' });
    }
    return new TcLink({
      kind: 'tcx',
      ifindex: info.ifindex ?? 0,
      direction: info.direction as TcDirection,
      netns: netnsPath(opts.netns),
      program: `prog#${info.progId}`,
      link: h,
    });
  }

  /** The programs at an interface's tcx hook, in run order (BPF_PROG_QUERY). */
  static query(iface: string | number, opts: { direction: TcDirection; netns?: NetnsRef }): TcxHookState {
    checkInterface(iface);
    const direction = checkDirection(opts?.direction);
    return native().tcxQuery(iface, direction, netnsPath(opts.netns));
  }

  /** @internal the bpf_link handle (tcx only). */
  get handle(): NativeLinkHandle {
    if (this.#closed) throw new BpfkitError('ERR_CLOSED', 'TC link is closed');
    if (!this.#link) throw new BpfkitError('ERR_UNSUPPORTED', 'a clsact attachment is a netlink filter, not a bpf_link');
    return this.#link;
  }

  /** Kernel view: link id (tcx), the attached program's id, where it is attached. */
  get info(): TcLinkInfo {
    if (this.#closed) throw new BpfkitError('ERR_CLOSED', 'TC link is closed');
    if (this.#link) {
      const i = native().tcLinkInfo(this.#link.fd);
      return {
        kind: 'tcx',
        id: i.id,
        progId: i.progId,
        ifindex: i.ifindex ?? this.ifindex,
        direction: (i.direction as TcDirection | undefined) ?? this.direction,
      };
    }
    const t = this.#clsact!;
    const progId = native().clsactQuery(t.ifindex, t.direction, t.handle, t.priority, t.netns);
    return { kind: 'clsact', progId, ifindex: t.ifindex, direction: t.direction, handle: t.handle, priority: t.priority };
  }

  /** Name of the program attached through this link (as last set from this process). */
  get program(): string {
    return this.#program;
  }

  /**
   * Atomically replaces the attached program: every packet is handled by the old or the
   * new one, never by none. tcx: BPF_LINK_UPDATE; with `expected`, ERR_BUSY if the link
   * no longer runs that program (checked by the kernel in the same step). clsact: a
   * filter replace on the same handle and priority (atomic in the kernel); `expected` is
   * checked just before, not in the same step.
   */
  replace(program: TcProgram, opts: { expected?: TcProgram } = {}): void {
    if (!(program instanceof TcProgram)) invalidArgument('program', 'must be a TcProgram');
    if (opts.expected !== undefined && !(opts.expected instanceof TcProgram)) invalidArgument('expected', 'must be a TcProgram');
    if (this.#closed) throw new BpfkitError('ERR_CLOSED', 'TC link is closed');
    if (this.#link) {
      this.#link.update(program.fd, opts.expected?.fd);
    } else {
      const t = this.#clsact!;
      const now = native().clsactQuery(t.ifindex, t.direction, t.handle, t.priority, t.netns);
      if (now === 0)
        throw new BpfkitError(
          'ERR_NOT_FOUND',
          `the clsact filter (handle ${t.handle}, priority ${t.priority}) is gone from the ${t.direction} of interface ${t.ifindex}`,
        );
      if (opts.expected && now !== opts.expected.info.id)
        throw new BpfkitError('ERR_BUSY', `the clsact filter runs program ${now}, not the expected ${opts.expected.info.id}`);
      native().clsactAttach(program.fd, t.ifindex, t.direction, t.handle, t.priority, true, t.netns);
    }
    this.#program = program.name;
  }

  /** Pins a tcx link; a clsact attachment has no link to pin (ERR_UNSUPPORTED). */
  pin(path: string): void {
    if (this.kind === 'clsact') {
      throw new BpfkitError('ERR_UNSUPPORTED', 'a clsact attachment cannot be pinned: it is a netlink filter, not a bpf_link (use kind tcx, Linux >= 6.6)');
    }
    this.handle.pin(path);
  }

  /** Detaches now, even if pinned (remove the pin file separately). */
  detach(): void {
    if (this.#closed) throw new BpfkitError('ERR_CLOSED', 'TC link is closed');
    if (this.#link) {
      this.#link.detach();
      return;
    }
    this.#dropClsact();
  }

  /** Releases this handle: detaches unless the (tcx) link is pinned. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.close();
    this.#link = undefined;
    this.#dropClsact();
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #dropClsact(): void {
    const t = this.#clsact;
    if (!t || !liveClsact.delete(t)) return;
    clsactGc.unregister(this);
    detachClsact(t);
  }
}
