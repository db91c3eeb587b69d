/**
 * The DaemonSet's container, run as a child process: `bpfkit firewall` (dist/cli.js) with
 * the arguments of deploy/kubernetes/daemonset.yaml, its JSON-lines notices read as they
 * come. Plus a UDP flood that runs until told to stop, and the rebuild of dist/ when lib/
 * is newer (the children run the built library).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import { ensureDist, ROOT } from '../helpers/dist.js';

export { ensureDist, ROOT };

/**
 * The container's command line from the manifest, for a lab: the image's `bpfkit` is
 * dist/cli.js, $(BPFKIT_IFACE) the lab interface, the pin root and the rule file test
 * paths. Throws if the manifest no longer has what is substituted (so drift shows here).
 */
export function manifestArgs(sub: { iface: string; pinRoot: string; rules: string }): string[] {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const c = docs.find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0];
  if (JSON.stringify(c.command) !== '["bpfkit"]') throw new Error(`unexpected command ${JSON.stringify(c.command)}`);
  const args = (c.args as string[]).map((a) =>
    a.replaceAll('$(BPFKIT_IFACE)', sub.iface).replace('=/sys/fs/bpf/bpfkit/', `=${sub.pinRoot}/`).replace('=/etc/bpfkit/rules.yaml', `=${sub.rules}`),
  );
  for (const want of [`--iface=${sub.iface}`, `--pin=${sub.pinRoot}/firewall-${sub.iface}`, `--rules=${sub.rules}`, '--keep', '--json']) {
    if (!args.includes(want)) throw new Error(`manifest args ${JSON.stringify(c.args)} lack ${want}`);
  }
  return args;
}

export interface Notice {
  type: string;
  [k: string]: unknown;
}

/** One agent process: `node dist/cli.js <args>`, its JSON notices in order. */
export class Agent {
  readonly child: ChildProcess;
  readonly notices: Notice[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';
  #waiters = new Set<() => void>();

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [join(ROOT, 'dist', 'cli.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.notices.push(JSON.parse(line) as Notice);
      } catch {
        this.notices.push({ type: 'text', line });
      }
      for (const w of this.#waiters) w();
    });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    void this.exited.then(() => {
      for (const w of this.#waiters) w();
    });
  }

  /** The first notice of this type (waits up to `timeoutMs`; rejects if the process exits first). */
  async notice(type: string, timeoutMs = 30_000): Promise<Notice> {
    const find = () => this.notices.find((n) => n.type === type);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = find();
      if (n) return n;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`agent exited (${this.child.exitCode ?? this.child.signalCode}) before '${type}': ${this.stderr.trim()}`);
      }
      if (Date.now() > deadline) throw new Error(`no '${type}' notice within ${timeoutMs} ms: ${JSON.stringify(this.notices)} ${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(done, 200);
        const self = this;
        function done() {
          clearTimeout(t);
          self.#waiters.delete(done);
          r();
        }
        this.#waiters.add(done);
      });
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(sig);
  }
}

/**
 * A UDP sender for a lab host: from `src` to dst:port as fast as the socket takes it
 * (64 datagrams per turn, one turn per ms) until SIGTERM, then prints {"sent":n,"failed":m}.
 */
export function floodScript(src: string, dst: string, port: number): string {
  return `
const s = require('node:dgram').createSocket('udp4');
let sent = 0, failed = 0, stop = false;
process.on('SIGTERM', () => (stop = true));
s.bind({ address: ${JSON.stringify(src)}, port: 0 }, () => {
  const payload = Buffer.from('bpfkit fleet flood');
  const tick = () => {
    if (stop) { console.log(JSON.stringify({ sent, failed })); s.close(); return; }
    let pending = 64;
    for (let i = 0; i < 64; i++) {
      s.send(payload, ${port}, ${JSON.stringify(dst)}, (e) => {
        if (e) failed++; else sent++;
        if (--pending === 0) setTimeout(tick, 1);
      });
    }
  };
  console.log('ready');
  tick();
});`;
}
