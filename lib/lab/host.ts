/** A host of a lab: one network namespace, and what runs in it. */
import { BpfkitError } from '../core/errors.js';
import { isV6, NETNS_RUN_DIR, validateAddr, validateIfname, validatePort, type IpLinkJson } from './common.js';
import type { Lab } from './lab.js';
import { ETHTOOL_PY, LabProcess, PING_PY, TCP_CONNECT_JS, TCP_LISTEN_JS, UDP_SEND_JS, UDP_SINK_JS } from './procs.js';
import { commandError, DEFAULT_RUN_TIMEOUT_MS, ipBin, pollUntil, pythonBin, run, type RunResult } from './run.js';
import {
  defaultUdpPayload,
  TcpListener,
  UdpSink,
  type PingOptions,
  type PingResult,
  type SendUdpOptions,
  type SendUdpResult,
  type UdpSinkOptions,
} from './traffic.js';

/** Options for {@link LabHost.exec}. */
export interface ExecOptions {
  /** Kill (SIGKILL) and throw after this long. Default 30 000 ms. A timeout always throws. */
  timeoutMs?: number;
  /** Data for the command's stdin. */
  input?: string | Buffer;
  /** Throw `BpfkitError('ERR_SYSTEM')` (message includes stderr) on nonzero exit. Default true. */
  check?: boolean;
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
