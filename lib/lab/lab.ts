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
import { closedError, HOST_NAME_RE, LAB_NETNS_PREFIX, LAB_OWNER_ALIAS_PREFIX, NETNS_RUN_DIR, wrapIpError } from './common.js';
import { LabHost } from './host.js';
import { linkHosts, type LabLink, type LinkOptions } from './links.js';
import type { LabProcess } from './procs.js';
import { ipBin, run, runSync } from './run.js';

// Node 20.4+ defines Symbol.asyncDispose/Symbol.dispose (as Symbol.for('nodejs.…'));
// fall back to the same registry symbols so `await using` works wherever Node polyfills it.
const asyncDisposeSymbol: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose);
const disposeSymbol: typeof Symbol.dispose = (Symbol as { dispose?: typeof Symbol.dispose }).dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose);

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
    return linkHosts(this, a, b, opts);
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
