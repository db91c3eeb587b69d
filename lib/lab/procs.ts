/**
 * Long-running processes inside lab namespaces, and the tiny helper programs the lab runs
 * there (UDP sink/sender, TCP connect/listen in Node; ping and GRO toggling in Python,
 * which need raw sockets / ioctls Node does not have).
 *
 * The helpers are plain source strings passed with `node -e` / `python3 -c`, so they keep
 * working after lib/ is bundled: there is no file to locate at run time. Configuration is
 * passed as one JSON argument after `--` (or on stdin when it may be large), results come
 * back as lines on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BpfkitError } from '../core/errors.js';
import { describeCommand, labDebug } from './run.js';

/** How a {@link LabProcess} ended. */
export interface LabProcessExit {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
}

/** What {@link LabProcess.waitForLine} matches: a substring, a RegExp, or a predicate. */
export type LineMatcher = string | RegExp | ((line: string) => boolean);

const MAX_KEPT_LINES = 10_000;
const MAX_KEPT_STDERR = 64 * 1024;

function matches(m: LineMatcher, line: string): boolean {
  if (typeof m === 'string') return line.includes(m);
  if (m instanceof RegExp) {
    m.lastIndex = 0;
    return m.test(line);
  }
  return m(line);
}

/**
 * A long-running process started by {@link LabHost.spawn}. It runs in its own process
 * group (so helpers it starts are killed with it) and is killed when the lab closes.
 *
 * stdout is split into lines: the last 10 000 are kept in {@link lines}, and every line is
 * delivered to {@link onLine} listeners. The last 64 KiB of stderr are kept.
 */
export class LabProcess {
  /** The command as given (without the `ip netns exec <ns>` prefix). */
  readonly argv: readonly string[];
  /** Process id (also its process group id). */
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<LabProcessExit>;

  #child: ChildProcess;
  #lines: string[] = [];
  #lineCount = 0;
  #partial = '';
  #stderr = '';
  #listeners = new Set<(line: string) => void>();
  #stderrListeners = new Set<() => void>();
  #exit: LabProcessExit | null = null;
  #onGone: (p: LabProcess) => void;

  /** @internal use {@link LabHost.spawn}. */
  constructor(netns: string, argv: readonly string[], ipBinary: string, onGone: (p: LabProcess) => void) {
    if (argv.length === 0) throw new BpfkitError('ERR_INVALID_ARGUMENT', 'spawn: empty command', { field: 'cmd' });
    this.argv = [...argv];
    this.#onGone = onGone;
    const args = ['netns', 'exec', netns, ...argv];
    labDebug('spawn', describeCommand(ipBinary, args));
    const child = spawn(ipBinary, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.#child = child;
    this.exited = new Promise<LabProcessExit>((resolve) => {
      let spawnError: Error | undefined;
      child.once('error', (err) => {
        spawnError = err;
        this.#stderr += `spawn failed: ${err.message}\n`;
        if (child.pid === undefined) {
          this.#exit = { code: 127, signal: null };
          this.#onGone(this);
          resolve(this.#exit);
        }
      });
      child.once('close', (code, signal) => {
        if (this.#partial) this.#pushLine(this.#partial);
        this.#partial = '';
        this.#exit = { code: spawnError && code === null && !signal ? 127 : code, signal };
        this.#onGone(this);
        resolve(this.#exit);
      });
    });
    this.pid = child.pid ?? -1;
    child.stdin?.on('error', () => {});
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      for (const p of parts) this.#pushLine(p);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr += chunk;
      if (this.#stderr.length > MAX_KEPT_STDERR) this.#stderr = this.#stderr.slice(-MAX_KEPT_STDERR);
      for (const l of [...this.#stderrListeners]) l();
    });
  }

  #pushLine(line: string): void {
    this.#lineCount++;
    this.#lines.push(line);
    if (this.#lines.length > MAX_KEPT_LINES + 1000) this.#lines.splice(0, this.#lines.length - MAX_KEPT_LINES);
    for (const l of [...this.#listeners]) {
      try {
        l(line);
      } catch {
        /* a listener's bug must not kill the reader */
      }
    }
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.#exit === null;
  }

  /** Exit status once exited, else null. */
  get exit(): LabProcessExit | null {
    return this.#exit;
  }

  /** The last (up to) 10 000 stdout lines. */
  lines(): string[] {
    return this.#lines.slice(-MAX_KEPT_LINES);
  }

  /** Number of stdout lines seen in total. */
  get lineCount(): number {
    return this.#lineCount;
  }

  /** The last 64 KiB of stderr. */
  stderr(): string {
    return this.#stderr;
  }

  /** Call `fn` for every future stdout line. Returns an unsubscribe function. */
  onLine(fn: (line: string) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Write to the process's stdin. */
  write(data: string | Buffer): void {
    this.#child.stdin?.write(data);
  }

  /** Close the process's stdin. */
  endInput(): void {
    this.#child.stdin?.end();
  }

  /**
   * Resolve with the first stdout line matching `match` (already-received lines count).
   * Rejects with `ERR_SYSTEM` on timeout or if the process exits first.
   */
  waitForLine(match: LineMatcher, timeoutMs = 10_000): Promise<string> {
    const seen = this.#lines.find((l) => matches(match, l));
    if (seen !== undefined) return Promise.resolve(seen);
    return this.#settle<string>(
      timeoutMs,
      (hit) =>
        this.onLine((l) => {
          if (matches(match, l)) hit(l);
        }),
      () =>
        new BpfkitError('ERR_SYSTEM', `timed out after ${timeoutMs} ms waiting for output from ${this.#describe()}`, {
          details: { stderr: this.#stderr, lines: this.lines().slice(-20) },
        }),
      (exit) =>
        new BpfkitError(
          'ERR_SYSTEM',
          `${this.#describe()} exited (code ${exit.code}, signal ${exit.signal}) before the expected output${
            this.#stderr.trim() ? `: ${this.#stderr.trim().slice(-2000)}` : ''
          }`,
          { details: { stderr: this.#stderr, exit } },
        ),
    );
  }

  /**
   * Resolve with the stderr text once it matches `match` (e.g. tcpdump's
   * `'listening on'`, which it prints on stderr). Rejects on timeout or exit first.
   */
  waitForStderr(match: string | RegExp, timeoutMs = 10_000): Promise<string> {
    const test = (): boolean => (typeof match === 'string' ? this.#stderr.includes(match) : ((match.lastIndex = 0), match.test(this.#stderr)));
    if (test()) return Promise.resolve(this.#stderr);
    return this.#settle<string>(
      timeoutMs,
      (hit) => {
        const check = (): void => {
          if (test()) hit(this.#stderr);
        };
        this.#stderrListeners.add(check);
        return () => this.#stderrListeners.delete(check);
      },
      () => new BpfkitError('ERR_SYSTEM', `timed out after ${timeoutMs} ms waiting for stderr of ${this.#describe()}`, { details: { stderr: this.#stderr } }),
      (exit) => new BpfkitError('ERR_SYSTEM', `${this.#describe()} exited (code ${exit.code}, signal ${exit.signal}): ${this.#stderr.trim().slice(-2000)}`),
      () => (test() ? this.#stderr : undefined),
    );
  }

  /**
   * The wait behind waitForLine/waitForStderr: resolves with the first value `subscribe`
   * reports, rejects on timeout or when the process exits first. On exit, output delivered
   * together with 'close' gets one turn (setImmediate) to match, and `lastChance` a final look.
   */
  #settle<T>(
    timeoutMs: number,
    subscribe: (hit: (v: T) => void) => () => void,
    onTimeout: () => BpfkitError,
    onExit: (exit: LabProcessExit) => BpfkitError,
    lastChance?: () => T | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        fn();
      };
      const unsubscribe = subscribe((v) => finish(() => resolve(v)));
      const timer = setTimeout(() => finish(() => reject(onTimeout())), timeoutMs);
      void this.exited.then((exit) =>
        setImmediate(() => {
          const v = lastChance?.();
          if (v !== undefined) finish(() => resolve(v));
          else finish(() => reject(onExit(exit)));
        }),
      );
    });
  }

  #describe(): string {
    const s = describeCommand(this.argv[0] ?? '', this.argv.slice(1));
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
  }

  #signal(sig: NodeJS.Signals): void {
    if (this.#exit || this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig); // whole process group
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* already gone */
      }
    }
  }

  /**
   * Stop the process: send `signal` (default SIGTERM) to its process group, then SIGKILL
   * if it is still running after `graceMs` (default 1000). Resolves once it has exited.
   */
  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 1_000): Promise<LabProcessExit> {
    if (this.#exit) return this.#exit;
    this.#signal(signal);
    let t: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((r) => {
      t = setTimeout(() => {
        this.#signal('SIGKILL');
        r();
      }, graceMs);
    });
    await Promise.race([this.exited, forced]);
    clearTimeout(t);
    // after SIGKILL the exit comes promptly; still bound the wait
    let t2: NodeJS.Timeout | undefined;
    const res = await Promise.race([
      this.exited,
      new Promise<LabProcessExit>((r) => {
        t2 = setTimeout(() => r({ code: null, signal: 'SIGKILL' }), 5_000);
      }),
    ]);
    clearTimeout(t2);
    return res;
  }

  /** Synchronous SIGKILL of the process group (used by exit hooks). */
  killSync(): void {
    this.#signal('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------
// Helper programs. Plain JS / Python source; no `${}` interpolation, config comes as JSON.
// ---------------------------------------------------------------------------------------

/**
 * UDP sink. argv[1] = {"bind","port","cap","rcvbuf"}.
 * Prints `READY <port>`, then per datagram (first `cap` only)
 * `D <count> <srcaddr> <srcport> <hex payload>`; beyond the cap `N <count>` at most every 20 ms.
 */
export const UDP_SINK_JS = String.raw`'use strict';
const dgram = require('node:dgram');
const cfg = JSON.parse(process.argv[1]);
const sock = dgram.createSocket({ type: cfg.bind.includes(':') ? 'udp6' : 'udp4' });
let count = 0, stored = 0, dirty = false;
sock.on('message', (msg, rinfo) => {
  count++;
  if (stored < cfg.cap) {
    stored++;
    process.stdout.write('D ' + count + ' ' + rinfo.address + ' ' + rinfo.port + ' ' + msg.toString('hex') + '\n');
  } else dirty = true;
});
setInterval(() => { if (dirty) { dirty = false; process.stdout.write('N ' + count + '\n'); } }, 20);
sock.on('error', (e) => { process.stderr.write('udp sink: ' + (e && e.message) + '\n'); process.exit(2); });
sock.bind({ address: cfg.bind, port: cfg.port }, () => {
  try { sock.setRecvBufferSize(cfg.rcvbuf); } catch (e) {}
  process.stdout.write('READY ' + sock.address().port + '\n');
});
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * UDP sender. stdin = {"dst","port","count","payloads":[base64...],"src","sport","intervalMs"};
 * datagram i carries payloads[i % payloads.length]. Prints one JSON line
 * {"sent","failed","firstError"} and exits 0 (exit 2 on setup errors such as bind).
 */
export const UDP_SEND_JS = String.raw`'use strict';
const dgram = require('node:dgram');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => { main().catch((e) => { process.stderr.write('udp sender: ' + (e && e.message) + '\n'); process.exit(2); }); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main() {
  const cfg = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const payloads = cfg.payloads.map((b) => Buffer.from(b, 'base64'));
  const sock = dgram.createSocket({ type: cfg.dst.includes(':') ? 'udp6' : 'udp4' });
  let fatal = null;
  sock.on('error', (e) => { fatal = e; });
  if (cfg.src || cfg.sport) {
    await new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: cfg.src || undefined, port: cfg.sport || 0 }, () => { sock.off('error', reject); resolve(); });
    });
  }
  let sent = 0, failed = 0, firstError = null;
  for (let i = 0; i < cfg.count; i++) {
    if (fatal) throw fatal;
    const p = payloads[i % payloads.length];
    await new Promise((resolve) => sock.send(p, cfg.port, cfg.dst, (err) => {
      if (err) { failed++; if (!firstError) firstError = (err.code || '') + ' ' + err.message; } else sent++;
      resolve();
    }));
    if (cfg.intervalMs > 0 && i + 1 < cfg.count) await sleep(cfg.intervalMs);
  }
  process.stdout.write(JSON.stringify({ sent, failed, firstError }) + '\n');
  sock.close();
}
`;

/**
 * TCP connect probe. argv[1] = {"dst","port","src","timeoutMs"}.
 * Prints `CONNECTED`, `ERROR <code>` or `TIMEOUT`; always exits 0.
 */
export const TCP_CONNECT_JS = String.raw`'use strict';
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]);
const opts = { host: cfg.dst, port: cfg.port };
if (cfg.src) opts.localAddress = cfg.src;
const s = net.connect(opts);
const t = setTimeout(() => { process.stdout.write('TIMEOUT\n'); s.destroy(); process.exit(0); }, cfg.timeoutMs);
s.on('connect', () => { clearTimeout(t); process.stdout.write('CONNECTED\n'); s.end(() => process.exit(0)); setTimeout(() => process.exit(0), 200); });
s.on('error', (e) => { clearTimeout(t); process.stdout.write('ERROR ' + (e.code || e.message) + '\n'); process.exit(0); });
`;

/**
 * TCP listener. argv[1] = {"bind","port"}. Prints `READY <port>`, then
 * `A <count> <remoteaddr> <remoteport>` per accepted connection; echoes received data.
 */
export const TCP_LISTEN_JS = String.raw`'use strict';
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]);
let n = 0;
const srv = net.createServer((c) => {
  n++;
  process.stdout.write('A ' + n + ' ' + c.remoteAddress + ' ' + c.remotePort + '\n');
  c.on('error', () => {});
  c.on('data', (d) => c.write(d));
  c.on('end', () => c.end());
});
srv.on('error', (e) => { process.stderr.write('tcp listener: ' + (e && e.message) + '\n'); process.exit(2); });
srv.listen({ host: cfg.bind, port: cfg.port }, () => process.stdout.write('READY ' + srv.address().port + '\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * ICMP echo over a raw socket (root/CAP_NET_RAW in the namespace; no `ping` binary needed).
 * argv[1] = {"dst","count","intervalMs","timeoutMs","src","size"}. Prints one JSON line
 * {"sent","received","rttMs":[...],"errors":[...]}.
 */
export const PING_PY = String.raw`
import json, os, select, socket, struct, sys, time
cfg = json.loads(sys.argv[1])
dst = cfg['dst']
v6 = ':' in dst
fam = socket.AF_INET6 if v6 else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
if cfg.get('src'):
    s.bind((cfg['src'], 0))
def bare(a):
    return socket.inet_pton(fam, a.split('%')[0])
want = bare(dst)
def csum(b):
    if len(b) % 2:
        b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
ident = os.getpid() & 0xffff
count = int(cfg['count'])
interval = cfg['intervalMs'] / 1000.0
start = time.monotonic()
deadline = start + cfg['timeoutMs'] / 1000.0
body = b'bpfkit-lab-ping!' * max(1, int(cfg.get('size', 48)) // 16)
sent = 0
failed = 0
errors = []
sendt = {}
got = {}
next_send = start
while True:
    now = time.monotonic()
    if now >= deadline:
        break
    if sent < count and now >= next_send:
        seq = (sent + 1) & 0xffff
        typ = 128 if v6 else 8
        pkt = struct.pack('!BBHHH', typ, 0, 0, ident, seq) + body
        if not v6:
            pkt = struct.pack('!BBHHH', typ, 0, csum(pkt), ident, seq) + body
        sent += 1
        try:
            s.sendto(pkt, (dst, 0))
            sendt[seq] = now
        except OSError as e:
            failed += 1
            errors.append(e.strerror or str(e))
        next_send = max(next_send + interval, now)
        continue
    if sent >= count and len(got) + failed >= sent:
        break
    wait = deadline - now
    if sent < count:
        wait = min(wait, max(0.0, next_send - now))
    r, _, _ = select.select([s], [], [], max(0.0, wait))
    if not r:
        continue
    data, addr = s.recvfrom(65535)
    icmp = data if v6 else data[(data[0] & 0x0f) * 4:]
    if len(icmp) < 8:
        continue
    typ, code, _, rid, rseq = struct.unpack('!BBHHH', icmp[:8])
    if typ != (129 if v6 else 0) or rid != ident or rseq not in sendt or rseq in got:
        continue
    try:
        if bare(addr[0]) != want:
            continue
    except OSError:
        continue
    got[rseq] = (time.monotonic() - sendt[rseq]) * 1000.0
print(json.dumps({'sent': sent, 'received': len(got), 'rttMs': [round(got[k], 3) for k in sorted(got)], 'errors': errors[:10]}))
`;

/**
 * Set interface features through the legacy ethtool ioctls (no `ethtool` binary needed),
 * then read them back. argv[1] = {"ifname", "set": {"gro"?: 0|1, "txcsum"?: 0|1}};
 * prints {"gro": 0|1, "txcsum": 0|1} for the features that were set.
 */
export const ETHTOOL_PY = String.raw`
import ctypes, fcntl, json, socket, struct, sys
SIOCETHTOOL = 0x8946
CMDS = {'txcsum': (0x16, 0x17), 'gro': (0x2b, 0x2c)}
cfg = json.loads(sys.argv[1])
name = cfg['ifname'].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def call(cmd, val):
    buf = ctypes.create_string_buffer(struct.pack('II', cmd, val), 8)
    ifr = struct.pack('16sP', name, ctypes.addressof(buf)).ljust(40, b'\0')
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    return struct.unpack('II', buf.raw)[1]
out = {}
for feat, val in cfg['set'].items():
    get, put = CMDS[feat]
    call(put, int(val))
    out[feat] = 1 if call(get, 0) else 0
print(json.dumps(out))
`;
