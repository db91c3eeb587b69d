/**
 * Network-namespace lab: throwaway hosts (network namespaces) joined by veth pairs, for
 * testing eBPF programs against real kernel datapaths.
 *
 * Ground rules the implementation keeps:
 * - everything lives in namespaces the lab creates; veth pairs are created directly inside
 *   their namespaces, so nothing is ever created in, or moved through, the root namespace,
 *   and the root namespace's links, routes and rules are never touched;
 * - every namespace is named `bk-<8 hex>-<host>` (see {@link LAB_NETNS_PREFIX}), unique per
 *   lab, so parallel test files never collide;
 * - {@link Lab.close} kills what the lab spawned (and anything else still running inside
 *   its namespaces) and deletes the namespaces, which removes their veths; a synchronous
 *   version runs from process `exit`/SIGINT/SIGTERM/SIGHUP hooks while a lab is open;
 * - every wait is bounded by a timeout.
 *
 * Requires root (or CAP_SYS_ADMIN + CAP_NET_ADMIN + CAP_NET_RAW), iproute2's `ip`,
 * `sysctl`, Node (helpers run with `process.execPath`) and python3 (ping, GRO toggling).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { BpfkitError } from '../core/errors.js';
import { registerForExit, unregisterForExit } from './cleanup.js';
import {
  ETHTOOL_PY,
  LabProcess,
  PING_PY,
  TCP_CONNECT_JS,
  TCP_LISTEN_JS,
  UDP_SEND_JS,
  UDP_SINK_JS,
  type LabProcessExit,
} from './procs.js';
import {
  commandError,
  DEFAULT_RUN_TIMEOUT_MS,
  ipBin,
  pollUntil,
  pythonBin,
  run,
  runSync,
  type RunResult,
} from './run.js';

/** Every namespace the lab creates starts with this; leak checks recognise ours by it. */
export const LAB_NETNS_PREFIX = 'bk-';
/** Where iproute2 keeps named namespaces. */
export const NETNS_RUN_DIR = '/run/netns';
/**
 * The lab writes `bpfkit-lab:pid=<creator pid>:lab=<id>` as the alias of each namespace's
 * `lo`, so leak checks can tell a live lab of another process from a leftover.
 */
export const LAB_OWNER_ALIAS_PREFIX = 'bpfkit-lab:';

// Node 20.4+ defines Symbol.asyncDispose/Symbol.dispose (as Symbol.for('nodejs.…'));
// fall back to the same registry symbols so `await using` works wherever Node polyfills it.
const asyncDisposeSymbol: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose);
const disposeSymbol: typeof Symbol.dispose =
  (Symbol as { dispose?: typeof Symbol.dispose }).dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose);

const HOST_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

/** Options for {@link Lab.create}. */
export interface LabOptions {
  /** Label used in error messages and in the owner alias; does not change namespace names. */
  name?: string;
}

/** Options for {@link Lab.host}. */
export interface HostOptions {
  /** Enable IPv4 and IPv6 forwarding in the namespace (for routers). */
  forwarding?: boolean;
  /** Extra sysctls to set in the namespace, e.g. `{ 'net.ipv4.conf.all.accept_local': 1 }`. */
  sysctls?: Record<string, string | number>;
}

/** Options for {@link Lab.link}. */
export interface LinkOptions {
  /** Interface name on host a (default: the lowest free `eth<N>` of that host). Max 15 chars. */
  aName?: string;
  /** Interface name on host b (default: the lowest free `eth<N>` of that host). */
  bName?: string;
  /** Addresses for the a end in CIDR form, e.g. `['198.18.0.1/24', 'fd00::1/64']`. */
  aAddrs?: string[];
  /** Addresses for the b end. */
  bAddrs?: string[];
  /** MTU for both ends. */
  mtu?: number;
  /**
   * GRO on both ends: `true` turns it on, `false` off, undefined leaves the kernel default
   * (off for veth). What it changes for XDP (observed on 6.18):
   * - frames XDP_REDIRECTed into a veth (ndo_xdp_xmit) are only delivered to its peer when
   *   the peer runs NAPI, i.e. has an XDP program attached or GRO on; otherwise they are
   *   silently lost. `gro: true` is enough for that.
   * - frames bounced with XDP_TX from a veth reach the peer only if the peer has an XDP
   *   program of its own (XDP_PASS will do); with GRO alone they sit in the peer's ring
   *   until other traffic happens to wake its NAPI.
   * GRO also merges TCP segments on receive, which changes packet counts seen after it.
   */
  gro?: boolean;
  /**
   * TX checksum offload on both ends. Default **false** (the kernel default for veth is
   * on): with offload, packets sent from sockets in the lab leave with only a partial
   * (pseudo-header) L4 checksum that the kernel completes later. XDP programs would then
   * see checksums no wire would carry, and a frame XDP_TX'd / XDP_REDIRECTed onward
   * arrives with a bad checksum and is dropped by the receiver's UDP/TCP stack
   * (UdpInCsumErrors). Off, every packet carries a complete checksum, like traffic from a
   * real wire. Turning it off also turns off TSO, so TCP is segmented before the veth.
   */
  txChecksum?: boolean;
  /** Fixed MAC for the a end (default random). */
  aMac?: string;
  /** Fixed MAC for the b end (default random). */
  bMac?: string;
  /** How long to wait for both ends to report operstate UP. Default 5000 ms. */
  upTimeoutMs?: number;
}

/** One end of a veth pair. `ifindex` and `mac` are read back from the kernel. */
export interface LabEnd {
  host: LabHost;
  ifname: string;
  ifindex: number;
  mac: string;
  addrs: string[];
}

/** A veth pair between two hosts (`a` and `b` may be the same host). */
export interface LabLink {
  a: LabEnd;
  b: LabEnd;
}

/** Options for {@link LabHost.exec}. */
export interface ExecOptions {
  /** Kill (SIGKILL) and throw after this long. Default 30 000 ms. A timeout always throws. */
  timeoutMs?: number;
  /** Data for the command's stdin. */
  input?: string | Buffer;
  /** Throw `BpfkitError('ERR_SYSTEM')` (message includes stderr) on nonzero exit. Default true. */
  check?: boolean;
}

/** Result of {@link LabHost.ping}. */
export interface PingResult {
  sent: number;
  received: number;
  /** Round-trip times of the received replies, in ms, in sequence order. */
  rttMs: number[];
}

/** Options for {@link LabHost.ping}. */
export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Gap between requests. Default 100 ms. */
  intervalMs?: number;
  /**
   * Overall limit for the whole ping, sends included; replies arriving later are not
   * counted. Default `count * intervalMs + 1000`.
   */
  timeoutMs?: number;
  /** Source address to bind. */
  src?: string;
  /** ICMP payload size in bytes (rounded down to a multiple of 16, min 16). Default 48. */
  size?: number;
}

/** Payload(s) for {@link LabHost.sendUdp}. */
export type UdpPayload = Buffer | string | ReadonlyArray<Buffer | string> | ((seq: number) => Buffer | string);

/** Options for {@link LabHost.sendUdp}. */
export interface SendUdpOptions {
  /** Number of datagrams. */
  count: number;
  /**
   * A fixed payload, a list used round-robin, or a function of the 0-based sequence number.
   * Default: {@link defaultUdpPayload} (`'bpfkit-lab udp <seq>'`). Strings are UTF-8.
   */
  payload?: UdpPayload;
  /** Source address to bind. */
  src?: string;
  /** Source port to bind. */
  sport?: number;
  /** Gap between datagrams. Default 0 (as fast as the socket takes them). */
  intervalMs?: number;
  /** Limit for the whole send. Default `count * intervalMs + 30000`. */
  timeoutMs?: number;
}

/** Result of {@link LabHost.sendUdp}. */
export interface SendUdpResult {
  /** Datagrams the kernel accepted. */
  sent: number;
  /** Datagrams whose send failed (e.g. EPERM from a netfilter drop, ENETUNREACH). */
  failed: number;
  firstError?: string;
}

/** A received datagram. */
export interface UdpDatagram {
  payload: Buffer;
  from: { address: string; port: number };
}

/** Options for {@link LabHost.udpSink}. */
export interface UdpSinkOptions {
  /** How many datagrams to keep for {@link UdpSink.payloads}; later ones are only counted. Default 10 000. */
  keep?: number;
  /** How long to wait for the socket to be bound. Default 10 000 ms. */
  readyTimeoutMs?: number;
}

/** The default payload of datagram `seq` sent by {@link LabHost.sendUdp}. */
export function defaultUdpPayload(seq: number): string {
  return `bpfkit-lab udp ${seq}`;
}

function closedError(what: string): BpfkitError {
  return new BpfkitError('ERR_CLOSED', `${what}: the lab is closed`);
}

function isV6(addr: string): boolean {
  return addr.includes(':');
}

function validatePort(field: string, port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid port ${port}`, { field });
  }
}

/** An address as `ip addr add` takes it, without anything that could smuggle options in. */
function validateAddr(field: string, addr: string): void {
  if (!/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(addr) || !/[.:]/.test(addr)) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid address '${addr}' (want e.g. 198.18.0.1/24 or fd00::1/64)`, {
      field,
    });
  }
}

function validateIfname(field: string, name: string): void {
  if (!IFNAME_RE.test(name)) {
    throw new BpfkitError(
      'ERR_INVALID_ARGUMENT',
      `${field}: invalid interface name '${name}' (1-15 chars of [A-Za-z0-9_.-])`,
      { field },
    );
  }
}

/** Turn a failed `ip` command into a BpfkitError, mapping permission problems to ERR_PERMISSION. */
function wrapIpError(err: unknown, what: string): BpfkitError {
  if (err instanceof BpfkitError) {
    const stderr = String((err.details as { stderr?: unknown } | undefined)?.stderr ?? '');
    if (/Operation not permitted|Permission denied/.test(stderr)) {
      return new BpfkitError(
        'ERR_PERMISSION',
        `${what}: permission denied; the lab needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN): ${stderr.trim()}`,
        { cause: err, ...(err.details ? { details: err.details } : {}) },
      );
    }
    return err;
  }
  return new BpfkitError('ERR_SYSTEM', `${what}: ${String(err)}`, { cause: err });
}

interface IpLinkJson {
  ifindex: number;
  ifname: string;
  address?: string;
  operstate?: string;
  mtu?: number;
  flags?: string[];
  ifalias?: string;
}

/**
 * A lab: a set of hosts (network namespaces) and the veth links between them.
 *
 * ```ts
 * await using lab = await Lab.create();
 * const a = await lab.host('a');
 * const b = await lab.host('b');
 * await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
 * expect((await a.ping('198.18.0.2')).received).toBe(3);
 * ```
 */
export class Lab {
  /** Random 8-hex id; every namespace of this lab is named `bk-<id>-<host>`. */
  readonly id: string;
  /** Label given at creation (defaults to the id). */
  readonly name: string;

  #hosts: { host: LabHost; order: number }[] = [];
  #hostSeq = 0;
  #netns = new Set<string>(); // includes namespaces being created
  #procs = new Set<LabProcess>();
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(id: string, name: string) {
    this.id = id;
    this.name = name;
  }

  /**
   * Create an empty lab and register it with the process exit hooks. Creates nothing in
   * the kernel until {@link host} is called.
   */
  static async create(opts: LabOptions = {}): Promise<Lab> {
    let id = randomBytes(4).toString('hex');
    // bounded: a collision with a namespace already present is astronomically rare
    for (let i = 0; i < 5 && labIdInUse(id); i++) id = randomBytes(4).toString('hex');
    const name = opts.name ?? id;
    const lab = new Lab(id, name);
    registerForExit(lab);
    return lab;
  }

  /** Hosts in the order {@link host} was called (also when created concurrently). */
  get hosts(): readonly LabHost[] {
    return [...this.#hosts].sort((x, y) => x.order - y.order).map((e) => e.host);
  }

  /** Namespace names this lab owns (created or being created). */
  get namespaces(): readonly string[] {
    return [...this.#netns];
  }

  /** True once {@link close} (or {@link closeSync}) has started. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Namespace name a host called `name` gets in this lab. */
  netnsName(name: string): string {
    return `${LAB_NETNS_PREFIX}${this.id}-${name}`;
  }

  /** @internal */
  assertOpen(what: string): void {
    if (this.#closed) throw closedError(what);
  }

  /**
   * Create a host: a new network namespace `bk-<id>-<name>` with `lo` up,
   * `rp_filter` off (so results do not depend on the root namespace's settings, which IPv4
   * inherits), IPv6 DAD off (link-local addresses are usable at once too), and optionally
   * IPv4+IPv6 forwarding.
   */
  async host(name: string, opts: HostOptions = {}): Promise<LabHost> {
    this.assertOpen('host');
    if (!HOST_NAME_RE.test(name)) {
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `host: invalid name '${name}' (1-32 chars of [A-Za-z0-9_-])`, {
        field: 'name',
      });
    }
    const netns = this.netnsName(name);
    if (this.#netns.has(netns)) {
      throw new BpfkitError('ERR_EXISTS', `host: this lab already has a host named '${name}'`, { field: 'name' });
    }
    this.#netns.add(netns); // before creating, so cleanup covers a half-made host
    const order = this.#hostSeq++;
    try {
      await run(ipBin(), ['netns', 'add', netns], { timeoutMs: 10_000 });
    } catch (err) {
      this.#netns.delete(netns);
      throw wrapIpError(err, `host '${name}': cannot create namespace ${netns}`);
    }
    const host = new LabHost(this, name, netns);
    try {
      await host.batch(['link set dev lo up', `link set dev lo alias ${LAB_OWNER_ALIAS_PREFIX}pid=${process.pid}:lab=${this.id}`]);
      const sysctls: Record<string, string | number> = {
        'net.ipv4.conf.all.rp_filter': 0,
        'net.ipv4.conf.default.rp_filter': 0,
        // No DAD, also for link-local addresses: a router cannot send a neighbour
        // solicitation for forwarded traffic while its link-local address is tentative,
        // which would make IPv6 through a fresh router fail for the first ~2 s.
        'net.ipv6.conf.all.accept_dad': 0,
        'net.ipv6.conf.default.accept_dad': 0,
      };
      if (opts.forwarding) {
        sysctls['net.ipv4.ip_forward'] = 1;
        sysctls['net.ipv6.conf.all.forwarding'] = 1;
      }
      Object.assign(sysctls, opts.sysctls ?? {});
      await host.sysctl(sysctls);
    } catch (err) {
      await run(ipBin(), ['netns', 'del', netns], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
      this.#netns.delete(netns);
      throw err;
    }
    if (this.#closed) {
      // close() ran while we were creating: it may have missed this namespace
      await run(ipBin(), ['netns', 'del', netns], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
      throw closedError('host');
    }
    this.#hosts.push({ host, order });
    return host;
  }

  /**
   * Create a veth pair between `a` and `b` (created directly inside the two namespaces),
   * set MTU/GRO/addresses, bring both ends up and wait until both report operstate UP.
   * IPv6 addresses are added with `nodad`, so they are usable at once.
   */
  async link(a: LabHost, b: LabHost, opts: LinkOptions = {}): Promise<LabLink> {
    this.assertOpen('link');
    for (const h of [a, b]) {
      if (h.lab !== this) throw new BpfkitError('ERR_INVALID_ARGUMENT', `link: host '${h.name}' belongs to another lab`);
    }
    if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535)) {
      throw new BpfkitError('ERR_INVALID_ARGUMENT', `link: invalid mtu ${opts.mtu}`, { field: 'mtu' });
    }
    // names are reserved synchronously so concurrent link() calls do not collide
    const aName = a.reserveIfname(opts.aName, 'aName');
    let bName: string;
    try {
      bName = b.reserveIfname(opts.bName, 'bName');
    } catch (err) {
      a.releaseIfname(aName);
      throw err;
    }
    const aAddrs = [...(opts.aAddrs ?? [])];
    const bAddrs = [...(opts.bAddrs ?? [])];
    try {
      for (const [field, list] of [['aAddrs', aAddrs], ['bAddrs', bAddrs]] as const) {
        for (const ad of list) validateAddr(field, ad);
      }
      for (const [field, mac] of [['aMac', opts.aMac], ['bMac', opts.bMac]] as const) {
        if (mac !== undefined && !MAC_RE.test(mac)) {
          throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid MAC '${mac}'`, { field });
        }
      }
    } catch (err) {
      a.releaseIfname(aName);
      b.releaseIfname(bName);
      throw err;
    }
    try {
      const args = ['-n', a.netns, 'link', 'add', aName];
      if (opts.aMac) args.push('address', opts.aMac);
      args.push('type', 'veth', 'peer', 'name', bName);
      if (opts.bMac) args.push('address', opts.bMac);
      if (b !== a) args.push('netns', b.netns);
      await run(ipBin(), args, { timeoutMs: 10_000 }).catch((err: unknown) => {
        throw wrapIpError(err, `link ${a.name}:${aName} <-> ${b.name}:${bName}`);
      });
      const setup = async (h: LabHost, ifname: string, addrs: string[]): Promise<void> => {
        const cmds: string[] = [];
        if (opts.mtu !== undefined) cmds.push(`link set dev ${ifname} mtu ${opts.mtu}`);
        for (const ad of addrs) cmds.push(`addr add ${ad} dev ${ifname}${isV6(ad) ? ' nodad' : ''}`);
        cmds.push(`link set dev ${ifname} up`);
        await h.setFeatures(ifname, { txChecksum: opts.txChecksum ?? false });
        await h.batch(cmds);
      };
      await Promise.all([setup(a, aName, aAddrs), setup(b, bName, bAddrs)]);
      const timeoutMs = opts.upTimeoutMs ?? 5_000;
      const [ia, ib] = await Promise.all([a.waitLinkUp(aName, timeoutMs), b.waitLinkUp(bName, timeoutMs)]);
      // GRO only once both ends are up: the decap benchmark saw a veth whose GRO was
      // switched on while down drop XDP_TX'd frames from its peer until an XDP program had
      // been attached once (not reproduced by test/core/xdp.test.ts; setting it late is safe).
      if (opts.gro !== undefined) await Promise.all([a.setFeatures(aName, { gro: opts.gro }), b.setFeatures(bName, { gro: opts.gro })]);
      return {
        a: { host: a, ifname: aName, ifindex: ia.ifindex, mac: ia.address ?? '', addrs: aAddrs },
        b: { host: b, ifname: bName, ifindex: ib.ifindex, mac: ib.address ?? '', addrs: bAddrs },
      };
    } catch (err) {
      // best effort: remove a half-made pair (deleting one end deletes both)
      await run(ipBin(), ['-n', a.netns, 'link', 'del', aName], { check: false, timeoutMs: 5_000 }).catch(() => undefined);
      a.releaseIfname(aName);
      b.releaseIfname(bName);
      throw err;
    }
  }

  /** @internal track a spawned process so close() kills it. */
  trackProcess(p: LabProcess): void {
    this.#procs.add(p);
  }

  /** @internal */
  untrackProcess(p: LabProcess): void {
    this.#procs.delete(p);
  }

  /**
   * Tear everything down: kill spawned processes (SIGTERM, then SIGKILL), kill anything
   * else still running in the lab's namespaces, delete the namespaces (which deletes their
   * veths) and unregister the exit hooks. Idempotent; concurrent calls share one teardown.
   * Throws `ERR_SYSTEM` listing what could not be removed (after trying everything).
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      this.#closing = this.#doClose();
    }
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    const problems: string[] = [];
    await Promise.all([...this.#procs].map((p) => p.kill('SIGTERM', 500).catch(() => undefined)));
    this.#procs.clear();
    await Promise.all(
      [...this.#netns].map(async (ns) => {
        try {
          const pids = await run(ipBin(), ['netns', 'pids', ns], { check: false, timeoutMs: 10_000 });
          killPids(pids.stdout);
          const r = await run(ipBin(), ['netns', 'del', ns], { check: false, timeoutMs: 10_000 });
          if (r.code !== 0 && existsSync(`${NETNS_RUN_DIR}/${ns}`)) problems.push(`${ns}: ${r.stderr.trim()}`);
        } catch (err) {
          if (existsSync(`${NETNS_RUN_DIR}/${ns}`)) problems.push(`${ns}: ${(err as Error).message}`);
        }
      }),
    );
    this.#netns.clear();
    unregisterForExit(this);
    if (problems.length) {
      throw new BpfkitError('ERR_SYSTEM', `lab ${this.name}: could not delete ${problems.join('; ')}`, {
        details: { problems },
      });
    }
  }

  /**
   * Synchronous best-effort teardown (SIGKILL everything, delete the namespaces). This is
   * what the exit hooks run; callable directly when async cleanup is not possible. Never
   * throws.
   */
  closeSync(): void {
    this.#closed = true;
    for (const p of this.#procs) p.killSync();
    this.#procs.clear();
    for (const ns of this.#netns) {
      const pids = runSync(ipBin(), ['netns', 'pids', ns]);
      if (pids) killPids(pids.stdout);
      runSync(ipBin(), ['netns', 'del', ns]);
    }
    this.#netns.clear();
    unregisterForExit(this);
    if (!this.#closing) this.#closing = Promise.resolve();
  }

  /** `await using lab = await Lab.create()` closes the lab at scope exit. */
  [asyncDisposeSymbol](): Promise<void> {
    return this.close();
  }

  /** `using lab = ...` tears down synchronously at scope exit. */
  [disposeSymbol](): void {
    this.closeSync();
  }
}

function labIdInUse(id: string): boolean {
  try {
    return readdirSync(NETNS_RUN_DIR).some((n) => n.startsWith(`${LAB_NETNS_PREFIX}${id}-`));
  } catch {
    return false; // no /run/netns yet: nothing can collide
  }
}

/** SIGKILL the pids listed (one per line), never ourselves or our parent. */
function killPids(list: string): void {
  for (const tok of list.split(/\s+/)) {
    const pid = Number(tok);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

/**
 * A host of a {@link Lab}: one network namespace. Native bpfkit operations take
 * `{ netns: host.netnsPath }`.
 */
export class LabHost {
  /** Short name given by the user, e.g. `'a'`. */
  readonly name: string;
  /** Namespace name, e.g. `'bk-1a2b3c4d-a'`. */
  readonly netns: string;
  /** `/run/netns/<netns>`. */
  readonly netnsPath: string;
  /** The lab this host belongs to. */
  readonly lab: Lab;

  #ifnames = new Set<string>();

  /** @internal use {@link Lab.host}. */
  constructor(lab: Lab, name: string, netns: string) {
    this.lab = lab;
    this.name = name;
    this.netns = netns;
    this.netnsPath = `${NETNS_RUN_DIR}/${netns}`;
  }

  /** @internal */
  reserveIfname(requested: string | undefined, field: string): string {
    if (requested !== undefined) {
      validateIfname(field, requested);
      if (this.#ifnames.has(requested)) {
        throw new BpfkitError('ERR_EXISTS', `link: host '${this.name}' already has an interface '${requested}'`, {
          field,
        });
      }
      this.#ifnames.add(requested);
      return requested;
    }
    // lowest free eth<N>; bounded: at most as many steps as names in use, plus one
    for (let i = 0; i <= this.#ifnames.size; i++) {
      const n = `eth${i}`;
      if (!this.#ifnames.has(n)) {
        this.#ifnames.add(n);
        return n;
      }
    }
    throw new BpfkitError('ERR_SYSTEM', 'unreachable: no free interface name');
  }

  /** @internal */
  releaseIfname(name: string): void {
    this.#ifnames.delete(name);
  }

  /**
   * Run a command inside the namespace (`ip netns exec <ns> ...cmd`), no shell. With
   * `check` (default true) a nonzero exit throws `BpfkitError('ERR_SYSTEM')` carrying
   * stderr; a timeout always throws. Note that `ip netns exec` gives the command a private
   * mount of /sys, so /sys/fs/bpf pins made in the root mount namespace are not visible.
   */
  async exec(cmd: string[], opts: ExecOptions = {}): Promise<RunResult> {
    this.lab.assertOpen('exec');
    if (cmd.length === 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'exec: empty command', { field: 'cmd' });
    return run(ipBin(), ['netns', 'exec', this.netns, ...cmd], opts);
  }

  /**
   * Start a long-running command in the namespace. It is killed (with its process group)
   * when the lab closes, or earlier with {@link LabProcess.kill}.
   */
  spawn(cmd: string[]): LabProcess {
    this.lab.assertOpen('spawn');
    const p = new LabProcess(this.netns, cmd, ipBin(), (gone) => this.lab.untrackProcess(gone));
    if (p.running) this.lab.trackProcess(p);
    return p;
  }

  /** `ip -n <ns> ...args`; returns stdout. */
  async ip(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    this.lab.assertOpen('ip');
    const r = await run(ipBin(), ['-n', this.netns, ...args], { timeoutMs: opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS });
    return r.stdout;
  }

  /** `ip -j -n <ns> ...args`, parsed. */
  async ipJson<T = unknown>(args: string[]): Promise<T> {
    const out = await this.ip(['-j', ...args]);
    try {
      return JSON.parse(out || 'null') as T;
    } catch (err) {
      throw new BpfkitError('ERR_SYSTEM', `cannot parse output of ip -j ${args.join(' ')}`, { cause: err });
    }
  }

  /** Run several `ip` commands in one process (`ip -n <ns> -batch -`), one per entry. */
  async batch(commands: string[]): Promise<void> {
    this.lab.assertOpen('batch');
    if (commands.length === 0) return;
    await run(ipBin(), ['-n', this.netns, '-batch', '-'], { input: `${commands.join('\n')}\n`, timeoutMs: 15_000 });
  }

  /** Set sysctls inside the namespace, e.g. `{ 'net.ipv4.ip_forward': 1 }`. */
  async sysctl(settings: Record<string, string | number>): Promise<void> {
    const kv = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
    if (kv.length === 0) return;
    await this.exec(['sysctl', '-q', '-w', ...kv], { timeoutMs: 10_000 });
  }

  /** `ip -j link show dev <ifname>` of one interface. */
  async linkInfo(ifname: string): Promise<IpLinkJson> {
    let list: IpLinkJson[] | null;
    try {
      list = await this.ipJson<IpLinkJson[]>(['link', 'show', 'dev', ifname]);
    } catch (err) {
      throw new BpfkitError('ERR_NO_SUCH_INTERFACE', `${this.name}: no interface '${ifname}'`, { cause: err });
    }
    const l = list?.[0];
    if (!l) throw new BpfkitError('ERR_NO_SUCH_INTERFACE', `${this.name}: no interface '${ifname}'`);
    return l;
  }

  /** Interface index of `ifname` in this namespace. */
  async ifindex(ifname: string): Promise<number> {
    return (await this.linkInfo(ifname)).ifindex;
  }

  /** MAC address of `ifname`, lowercase `aa:bb:cc:dd:ee:ff`. */
  async mac(ifname: string): Promise<string> {
    return (await this.linkInfo(ifname)).address ?? '';
  }

  /** @internal wait until `ifname` reports operstate UP. */
  async waitLinkUp(ifname: string, timeoutMs: number): Promise<IpLinkJson> {
    return pollUntil(
      `${this.name}:${ifname} to come up`,
      async () => {
        const l = await this.linkInfo(ifname);
        return l.operstate === 'UP' ? l : undefined;
      },
      timeoutMs,
    );
  }

  /** Add an address (CIDR) to an interface; IPv6 gets `nodad`. */
  async addAddr(ifname: string, addr: string): Promise<void> {
    validateAddr('addr', addr);
    await this.ip(['addr', 'add', addr, 'dev', ifname, ...(isV6(addr) ? ['nodad'] : [])]);
  }

  /**
   * Add a route: `spec` is what follows `ip route add`, e.g.
   * `'198.18.1.0/24 via 198.18.0.2'` or `'fd00:1::/64 via fd00::2'`.
   */
  async addRoute(spec: string): Promise<void> {
    const args = spec.trim().split(/\s+/).filter(Boolean);
    if (args.length === 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'addRoute: empty spec', { field: 'spec' });
    const fam = isV6(args[0] ?? '') ? ['-6'] : [];
    await this.ip([...fam, 'route', 'add', ...args]);
  }

  /**
   * Switch interface features (legacy ethtool ioctls through python; no ethtool binary
   * needed) and verify the kernel kept them: `gro` (generic receive offload) and
   * `txChecksum` (TX checksum offload; turning it off also turns off TSO). Throws
   * `ERR_UNSUPPORTED` if the interface refuses.
   */
  async setFeatures(ifname: string, features: { gro?: boolean; txChecksum?: boolean }): Promise<void> {
    const set: Record<string, number> = {};
    if (features.gro !== undefined) set.gro = features.gro ? 1 : 0;
    if (features.txChecksum !== undefined) set.txcsum = features.txChecksum ? 1 : 0;
    if (Object.keys(set).length === 0) return;
    const r = await this.exec([pythonBin(), '-c', ETHTOOL_PY, JSON.stringify({ ifname, set })], {
      timeoutMs: 10_000,
      check: false,
    });
    let got: Record<string, number> | undefined;
    try {
      got = JSON.parse(r.stdout.trim()) as Record<string, number>;
    } catch {
      got = undefined;
    }
    if (r.code !== 0 || !got) {
      throw new BpfkitError('ERR_UNSUPPORTED', `${this.name}: cannot set features ${JSON.stringify(set)} on ${ifname}: ${r.stderr.trim()}`);
    }
    for (const [k, v] of Object.entries(set)) {
      if (got[k] !== v) {
        throw new BpfkitError('ERR_UNSUPPORTED', `${this.name}: ${k} on ${ifname} stayed ${got[k] ? 'on' : 'off'}`);
      }
    }
  }

  /** Turn GRO on/off on `ifname`; see {@link setFeatures}. */
  async setGro(ifname: string, on: boolean): Promise<void> {
    await this.setFeatures(ifname, { gro: on });
  }

  /**
   * Send ICMP echo requests (IPv6 when `dst` contains ':') from a raw socket in this
   * namespace and count matching replies. Does not throw for lost replies; throws
   * `ERR_SYSTEM` if no request could be sent at all (e.g. "Network is unreachable").
   */
  async ping(dst: string, opts: PingOptions = {}): Promise<PingResult> {
    const count = opts.count ?? 3;
    const intervalMs = opts.intervalMs ?? 100;
    if (!Number.isInteger(count) || count < 1) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'ping: count must be >= 1', { field: 'count' });
    const timeoutMs = opts.timeoutMs ?? count * intervalMs + 1_000;
    const cfg = { dst, count, intervalMs, timeoutMs, src: opts.src, size: opts.size ?? 48 };
    const r = await this.exec([pythonBin(), '-c', PING_PY, JSON.stringify(cfg)], {
      timeoutMs: timeoutMs + 10_000,
      check: false,
    });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let res: { sent: number; received: number; rttMs: number[]; errors: string[] };
    try {
      res = JSON.parse(line) as typeof res;
    } catch {
      throw commandError(`ping ${dst} (in ${this.name})`, r.code, r.stdout, r.stderr);
    }
    if (res.received === 0 && res.errors.length > 0 && res.errors.length >= res.sent) {
      throw new BpfkitError('ERR_SYSTEM', `ping ${dst} from ${this.name}: ${res.errors[0]}`, { details: { ...res } });
    }
    return { sent: res.sent, received: res.received, rttMs: res.rttMs };
  }

  /**
   * Start a UDP receiver bound to `bind`:`port` (port 0 picks one; see {@link UdpSink.port}).
   * Resolves once the socket is bound. `'::'` receives IPv4 too.
   */
  async udpSink(bind: string, port: number, opts: UdpSinkOptions = {}): Promise<UdpSink> {
    validatePort('port', port, true);
    const keep = opts.keep ?? 10_000;
    const cfg = { bind, port, cap: keep, rcvbuf: 4 * 1024 * 1024 };
    const proc = this.spawn([process.execPath, '-e', UDP_SINK_JS, '--', JSON.stringify(cfg)]);
    const sink = new UdpSink(proc, bind);
    try {
      const ready = await proc.waitForLine(/^READY /, opts.readyTimeoutMs ?? 10_000);
      sink.port = Number(ready.split(' ')[1]);
    } catch (err) {
      await proc.kill('SIGKILL');
      throw err;
    }
    return sink;
  }

  /**
   * Send `count` UDP datagrams to `dst`:`port` from a helper process in this namespace.
   * Resolves when all were handed to the kernel. Throws `ERR_SYSTEM` if the sender could
   * not start/bind, or if every send failed; partial failures are reported in the result.
   */
  async sendUdp(dst: string, port: number, opts: SendUdpOptions): Promise<SendUdpResult> {
    validatePort('port', port, false);
    if (opts.sport !== undefined) validatePort('sport', opts.sport, true);
    const count = opts.count;
    if (!Number.isInteger(count) || count < 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'sendUdp: bad count', { field: 'count' });
    if (count === 0) return { sent: 0, failed: 0 };
    const enc = (p: Buffer | string): string => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p).toString('base64');
    const payload = opts.payload ?? defaultUdpPayload;
    let payloads: string[];
    if (typeof payload === 'function') payloads = Array.from({ length: count }, (_, i) => enc(payload(i)));
    else if (typeof payload === 'string' || Buffer.isBuffer(payload)) payloads = [enc(payload)];
    else {
      payloads = payload.map(enc);
      if (payloads.length === 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'sendUdp: empty payload list', { field: 'payload' });
    }
    const intervalMs = opts.intervalMs ?? 0;
    const cfg = { dst, port, count, payloads, src: opts.src, sport: opts.sport, intervalMs };
    const timeoutMs = opts.timeoutMs ?? count * intervalMs + 30_000;
    const r = await this.exec([process.execPath, '-e', UDP_SEND_JS], {
      input: JSON.stringify(cfg),
      timeoutMs,
      check: false,
    });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let res: { sent: number; failed: number; firstError: string | null };
    try {
      if (r.code !== 0) throw new Error('exit');
      res = JSON.parse(line) as typeof res;
    } catch {
      throw commandError(`udp sender to ${dst}:${port} (in ${this.name})`, r.code, r.stdout, r.stderr);
    }
    if (res.sent === 0) {
      throw new BpfkitError('ERR_SYSTEM', `sendUdp ${dst}:${port} from ${this.name}: every send failed: ${res.firstError}`, {
        details: { ...res },
      });
    }
    return { sent: res.sent, failed: res.failed, ...(res.firstError ? { firstError: res.firstError } : {}) };
  }

  /**
   * Try a TCP handshake to `dst`:`port`. Resolves true if it completed, false on refusal,
   * unreachability or timeout (default 3000 ms).
   */
  async tcpConnect(dst: string, port: number, timeoutMs = 3_000, opts: { src?: string } = {}): Promise<boolean> {
    validatePort('port', port, false);
    const cfg = { dst, port, timeoutMs, src: opts.src };
    const r = await this.exec([process.execPath, '-e', TCP_CONNECT_JS, '--', JSON.stringify(cfg)], {
      timeoutMs: timeoutMs + 10_000,
      check: false,
    });
    const out = r.stdout.trim();
    if (out.startsWith('CONNECTED')) return true;
    if (out.startsWith('ERROR') || out.startsWith('TIMEOUT')) return false;
    throw commandError(`tcp connect ${dst}:${port} (in ${this.name})`, r.code, r.stdout, r.stderr);
  }

  /**
   * Start a TCP listener on `bind`:`port` (port 0 picks one) that accepts, counts and
   * echoes. Resolves once it is listening.
   */
  async tcpListen(bind: string, port: number, opts: { readyTimeoutMs?: number } = {}): Promise<TcpListener> {
    validatePort('port', port, true);
    const proc = this.spawn([process.execPath, '-e', TCP_LISTEN_JS, '--', JSON.stringify({ bind, port })]);
    const l = new TcpListener(proc);
    try {
      const ready = await proc.waitForLine(/^READY /, opts.readyTimeoutMs ?? 10_000);
      l.port = Number(ready.split(' ')[1]);
    } catch (err) {
      await proc.kill('SIGKILL');
      throw err;
    }
    return l;
  }

  /** Human-readable description for logs. */
  toString(): string {
    return `LabHost(${this.name} @ ${this.netns})`;
  }
}

/** Wait until `get() >= n` or the process dies or `timeoutMs` passes; resolves with get(). */
function waitCount(proc: LabProcess, get: () => number, n: number, timeoutMs: number, what: string): Promise<number> {
  if (get() >= n) return Promise.resolve(get());
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      off();
      fn();
    };
    const off = proc.onLine(() => {
      if (get() >= n) finish(() => resolve(get()));
    });
    const timer = setTimeout(() => finish(() => resolve(get())), timeoutMs);
    void proc.exited.then((exit: LabProcessExit) =>
      setImmediate(() => {
        if (get() >= n) finish(() => resolve(get()));
        else
          finish(() =>
            reject(
              new BpfkitError('ERR_CLOSED', `${what} stopped (code ${exit.code}, signal ${exit.signal}): ${proc.stderr().trim()}`),
            ),
          );
      }),
    );
  });
}

/** A UDP receiver running in a lab namespace; see {@link LabHost.udpSink}. */
export class UdpSink {
  /** Bound port (the real one when 0 was requested). */
  port = 0;
  /** Bound address. */
  readonly bind: string;
  /** The helper process. */
  readonly process: LabProcess;
  #count = 0;
  #kept: UdpDatagram[] = [];

  /** @internal */
  constructor(proc: LabProcess, bind: string) {
    this.process = proc;
    this.bind = bind;
    proc.onLine((line) => {
      if (line.startsWith('D ')) {
        const [, n, address, port, hex] = line.split(' ');
        this.#count = Math.max(this.#count, Number(n));
        this.#kept.push({ payload: Buffer.from(hex ?? '', 'hex'), from: { address: address ?? '', port: Number(port) } });
      } else if (line.startsWith('N ')) {
        this.#count = Math.max(this.#count, Number(line.slice(2)));
      }
    });
  }

  /** Datagrams received so far (all of them, not only the kept ones). */
  received(): number {
    return this.#count;
  }

  /** Payloads of the first `keep` (default 10 000) datagrams, in arrival order. */
  payloads(): Buffer[] {
    return this.#kept.map((d) => d.payload);
  }

  /** The first `keep` datagrams with their source address/port. */
  datagrams(): UdpDatagram[] {
    return [...this.#kept];
  }

  /**
   * Wait until at least `n` datagrams arrived. Resolves with the count reached, which is
   * below `n` if `timeoutMs` (default 5000) passed first; it does not reject on timeout,
   * so `expect(await sink.waitFor(100)).toBe(100)` reads well and `waitFor(1, 500)` can
   * assert that nothing arrives. Rejects if the sink process died.
   */
  waitFor(n: number, timeoutMs = 5_000): Promise<number> {
    return waitCount(this.process, () => this.#count, n, timeoutMs, 'udp sink');
  }

  /** Stop the receiver. Idempotent. */
  async close(): Promise<void> {
    await this.process.kill('SIGTERM', 500);
  }
}

/** A TCP listener running in a lab namespace; see {@link LabHost.tcpListen}. */
export class TcpListener {
  /** Listening port (the real one when 0 was requested). */
  port = 0;
  /** The helper process. */
  readonly process: LabProcess;
  #accepted = 0;

  /** @internal */
  constructor(proc: LabProcess) {
    this.process = proc;
    proc.onLine((line) => {
      if (line.startsWith('A ')) this.#accepted = Math.max(this.#accepted, Number(line.split(' ')[1]));
    });
  }

  /** Connections accepted so far. */
  accepted(): number {
    return this.#accepted;
  }

  /** Like {@link UdpSink.waitFor}, for accepted connections. */
  waitForAccepted(n: number, timeoutMs = 5_000): Promise<number> {
    return waitCount(this.process, () => this.#accepted, n, timeoutMs, 'tcp listener');
  }

  /** Stop listening. Idempotent. */
  async close(): Promise<void> {
    await this.process.kill('SIGTERM', 500);
  }
}

