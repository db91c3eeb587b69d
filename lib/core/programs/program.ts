/**
 * Loaded BPF programs. `BpfProgram` is any program; `XdpProgram` adds XDP attachment
 * (as a bpf_link) and BPF_PROG_TEST_RUN with XDP verdicts, including live-frames mode.
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import { native, openPinnedAs, type NativeLinkHandle, type NativeProgramHandle, type NativeProgramInfo } from '../native.js';
import { checkInterface, netnsPath, type NetnsRef } from '../net/netns.js';
import { requireXdpLink } from '../features.js';
import { checkObjectId } from '../validate.js';

/** The kernel's view of a loaded program: id (as in `bpftool prog`), name, type, tag. */
export type ProgramInfo = NativeProgramInfo;

/**
 * A loaded BPF program of any type. Programs of an object come from {@link BpfObject.program}
 * (XDP ones as {@link XdpProgram}, sched_cls ones as {@link TcProgram}, tracing ones as
 * {@link TracingProgram}); loaded programs by {@link BpfProgram.openPinned} or {@link BpfProgram.fromId}.
 */
export class BpfProgram {
  /** The program's name (its C function's name when it comes from an object). */
  readonly name: string;
  /** libbpf's name of the program type ('xdp', 'sched_cls', 'tracing', ...). */
  readonly type: string;
  #h: NativeProgramHandle | undefined;

  /** @internal use BpfObject.program() or BpfProgram.openPinned(). */
  constructor(handle: NativeProgramHandle, name?: string) {
    this.#h = handle;
    const info = handle.info();
    this.name = name ?? info.name;
    this.type = info.type;
  }

  /** Opens a program pinned on a BPF filesystem; XDP programs come back as XdpProgram. */
  static openPinned(path: string): BpfProgram {
    return wrapProgram(openPinnedAs(path, 'program'));
  }

  /** Opens a loaded program by its kernel id (as `bpftool prog show id N`); XDP programs come back as XdpProgram. */
  static fromId(id: number): BpfProgram {
    return wrapProgram(native().openById('program', checkObjectId(id)));
  }

  /** @internal */
  get handle(): NativeProgramHandle {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', `program '${this.name}' is closed`);
    return this.#h;
  }
  /** The program's file descriptor (throws `ERR_CLOSED` once closed). */
  get fd(): number {
    return this.handle.fd;
  }
  /** True once closed. */
  get closed(): boolean {
    return this.#h === undefined;
  }
  /** Kernel view: id (as in `bpftool prog`), name, type, tag. */
  get info(): ProgramInfo {
    return this.handle.info();
  }
  /** Ids of the maps the program uses (open one with BpfMap.fromId / BpfMap.infoById). */
  mapIds(): number[] {
    return native().progMapIds(this.handle.fd);
  }
  /** Pins the program on a BPF filesystem at `path`: it stays loaded until the pin is removed. */
  pin(path: string): void {
    this.handle.pin(path);
  }
  /** Releases this handle; attachments (links) keep the program running. */
  close(): void {
    this.#h?.close();
    this.#h = undefined;
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** XDP attach mode: 'native' (driver), 'generic' (skb) or 'auto' (the kernel's choice). */
export type XdpMode = 'native' | 'generic' | 'auto';
/** An XDP verdict by name (XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT). */
export type XdpAction = 'aborted' | 'drop' | 'pass' | 'tx' | 'redirect';
const XDP_ACTIONS: XdpAction[] = ['aborted', 'drop', 'pass', 'tx', 'redirect'];
const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;

/** Name of an XDP return code ('pass', 'drop', ...), or 'unknown(N)'. */
export function xdpActionName(retval: number): XdpAction | `unknown(${number})` {
  return XDP_ACTIONS[retval] ?? `unknown(${retval})`;
}

/** Options of {@link XdpProgram.attach}. */
export interface XdpAttachOptions {
  /** 'native' (driver mode, the default), 'generic' (skb mode) or 'auto' (kernel's choice). Never falls back silently. */
  mode?: XdpMode;
  /** Network namespace of the interface (a name under /run/netns, a path or an open fd: {@link NetnsRef}). */
  netns?: NetnsRef;
}

/** Options of {@link XdpProgram.testRun}. */
export interface TestRunOptions {
  /** Run the program this many times (durationNs is the mean). */
  repeat?: number;
  /** Pretend the packet arrived on this interface (sets xdp_md.ingress_ifindex). */
  ingress?: string | number;
  /** Pretend the packet arrived on this RX queue (sets xdp_md.rx_queue_index). */
  rxQueue?: number;
  /** Network namespace in which `ingress` is looked up and the program runs. */
  netns?: NetnsRef;
}

/** Result of {@link XdpProgram.testRun}. */
export interface TestRunResult {
  /** The verdict by name ('pass', 'drop', ...; 'unknown(N)' for other return codes). */
  action: XdpAction | `unknown(${number})`;
  /** The program's return code. */
  retval: number;
  /** The packet as the program left it. */
  packet: Buffer;
  /** Mean run time per repetition, measured by the kernel. */
  durationNs: number;
}

function xdpCtx(ifindex: number, rxQueue: number, len: number): Uint8Array {
  // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
  const ctx = new Uint32Array([0, len, 0, ifindex, rxQueue, 0]);
  return new Uint8Array(ctx.buffer);
}

function checkRepeat(n: number | undefined, field: string): number {
  if (n === undefined) return 1;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) invalidArgument(field, `must be an integer in 1..2^32-1, got ${n}`);
  return n;
}

/** A loaded XDP program: attach it to an interface, run it on test packets, or use it as a traffic generator. */
export class XdpProgram extends BpfProgram {
  /**
   * Attaches to an interface as a bpf_link. The link detaches when closed, garbage
   * collected or when the process exits, unless pinned.
   */
  attach(iface: string | number, opts: XdpAttachOptions = {}): XdpLink {
    checkInterface(iface);
    const mode = opts.mode ?? 'native';
    const flags = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE, auto: 0 }[mode];
    if (flags === undefined) invalidArgument('mode', `must be 'native', 'generic' or 'auto', got '${String(mode)}'`);
    const ns = netnsPath(opts.netns);
    requireXdpLink(`attach XDP program '${this.name}'`);
    const r = this.handle.attachXdp(iface, flags, ns);
    if (mode !== 'auto' && r.mode !== mode) {
      r.link.close();
      throw new BpfkitError('ERR_UNSUPPORTED', `asked for XDP mode '${mode}' but the kernel attached in mode '${r.mode}'`);
    }
    return new XdpLink(r.link, { ifindex: r.ifindex, mode: r.mode, netns: ns, program: this.name });
  }

  /** Runs the program once (or `repeat` times) on `packet` with BPF_PROG_TEST_RUN. */
  async testRun(packet: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    const repeat = checkRepeat(opts.repeat, 'repeat');
    if (!(packet instanceof Uint8Array) || packet.length < 14) invalidArgument('packet', 'must be a Buffer of at least 14 bytes (an Ethernet frame)');
    const ns = netnsPath(opts.netns);
    const run: Parameters<NativeProgramHandle['testRun']>[0] = { data: packet, repeat };
    if (opts.ingress !== undefined || opts.rxQueue !== undefined) {
      const ifindex = opts.ingress === undefined ? 0 : native().ifIndex(checkInterface(opts.ingress, 'ingress'), ns);
      run.ctx = xdpCtx(ifindex, opts.rxQueue ?? 0, packet.length);
    }
    if (ns) run.netns = ns;
    const r = await this.handle.testRun(run);
    return { action: xdpActionName(r.retval), retval: r.retval, packet: r.data ?? Buffer.alloc(0), durationNs: r.durationNs };
  }

  /**
   * Live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): feeds `count` copies of `packet` to
   * the program as if received on `iface`, and really performs what it returns:
   * XDP_TX sends the frame out of `iface`, XDP_REDIRECT redirects it. With a program
   * that returns XDP_TX this is a line-rate traffic generator. Note: a veth peer with no
   * XDP program and GRO off silently drops XDP-transmitted frames (lab: `gro: true`).
   * The kernel recycles the frame pages between batches without copying `packet` in again:
   * a program that rewrites the frame it transmits sees its own output on the next pass
   * (restamp the bytes you change, or use a program that only returns XDP_TX).
   * Resolves with the frames `sent` and the wall time the run took (`durationNs`).
   */
  async generate(
    packet: Uint8Array,
    opts: { iface: string | number; netns?: NetnsRef; count: number; batchSize?: number },
  ): Promise<{ sent: number; durationNs: number }> {
    const count = checkRepeat(opts.count, 'count');
    checkInterface(opts.iface, 'iface');
    if (!(packet instanceof Uint8Array) || packet.length < 14) invalidArgument('packet', 'must be a Buffer of at least 14 bytes (an Ethernet frame)');
    const batch = opts.batchSize ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 256) invalidArgument('batchSize', `must be 1..256, got ${batch}`);
    const ns = netnsPath(opts.netns);
    const ifindex = native().ifIndex(opts.iface, ns);
    const run: Parameters<NativeProgramHandle['testRun']>[0] = {
      data: packet,
      repeat: count,
      flags: BPF_F_TEST_XDP_LIVE_FRAMES,
      batchSize: batch,
      ctx: xdpCtx(ifindex, 0, packet.length),
    };
    if (ns) run.netns = ns;
    const t0 = process.hrtime.bigint();
    await this.handle.testRun(run);
    return { sent: count, durationNs: Number(process.hrtime.bigint() - t0) };
  }
}

/** @internal picks the class for a program handle by its kernel type. */
export function wrapProgram(handle: NativeProgramHandle, name?: string): BpfProgram {
  return handle.info().type === 'xdp' ? new XdpProgram(handle, name) : new BpfProgram(handle, name);
}

/** An XDP attachment (a bpf_link): detaches on close() unless pinned. */
export class XdpLink {
  /** Index of the interface the program is attached to. */
  readonly ifindex: number;
  /** The mode the kernel actually attached in: 'native' or 'generic'. */
  readonly mode: string;
  /** Path of the network namespace of the interface (undefined: the process's own). */
  readonly netns: string | undefined;
  #h: NativeLinkHandle | undefined;
  #program: string;

  /** @internal */
  constructor(h: NativeLinkHandle, meta: { ifindex: number; mode: string; netns: string | undefined; program: string }) {
    this.#h = h;
    this.ifindex = meta.ifindex;
    this.mode = meta.mode;
    this.netns = meta.netns;
    this.#program = meta.program;
  }

  /** Re-opens a pinned XDP link (e.g. in a new process). */
  static openPinned(path: string, opts: { netns?: NetnsRef } = {}): XdpLink {
    const h = openPinnedAs(path, 'link');
    const info = h.info();
    if (info.type !== 'xdp') {
      h.close();
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `'${path}' is a ${info.type} link, not an XDP link`, { field: 'path' });
    }
    const ns = netnsPath(opts.netns);
    let mode = 'unknown';
    if (info.ifindex) {
      try {
        mode = native().xdpQuery(info.ifindex, ns).mode;
      } catch {
        /* interface in another namespace: mode stays unknown */
      }
    }
    return new XdpLink(h, { ifindex: info.ifindex ?? 0, mode, netns: ns, program: `prog#${info.progId}` });
  }

  /** @internal */
  get handle(): NativeLinkHandle {
    if (!this.#h) throw new BpfkitError('ERR_CLOSED', 'XDP link is closed');
    return this.#h;
  }
  /** Kernel view of the link: id, type, id of the program it runs, ifindex. */
  get info(): { id: number; type: string; progId: number; ifindex?: number } {
    return this.handle.info();
  }
  /** Name of the program attached through this link (as last set from this process). */
  get program(): string {
    return this.#program;
  }

  /**
   * Atomically replaces the attached program (BPF_LINK_UPDATE): every packet is handled
   * by either the old or the new program, never by none. With `expected`, fails with
   * ERR_BUSY if the link no longer runs that program.
   */
  replace(program: XdpProgram, opts: { expected?: XdpProgram } = {}): void {
    if (!(program instanceof XdpProgram)) invalidArgument('program', 'must be an XdpProgram');
    this.handle.update(program.fd, opts.expected?.fd);
    this.#program = program.name;
  }

  /** Pins the link on a BPF filesystem: the program stays attached after this process exits. */
  pin(path: string): void {
    this.handle.pin(path);
  }

  /** Detaches now, even if pinned (remove the pin file separately). */
  detach(): void {
    this.handle.detach();
  }

  /** Releases this handle: detaches the program unless the link is pinned. */
  close(): void {
    this.#h?.close();
    this.#h = undefined;
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
