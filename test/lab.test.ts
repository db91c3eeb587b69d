/**
 * The namespace lab against the real kernel (needs root). Addresses: 198.18.0.0/15 and
 * fd00::/8 only, all inside lab namespaces.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError } from '../lib/core/errors.js';
import {
  LAB_NETNS_PREFIX,
  Lab,
  defaultUdpPayload,
  ensureBpffs,
  exitHookCount,
  exitHooksInstalled,
  findLeaks,
  listXdp,
  isBpffsMounted,
  runExitCleanup,
  type LabHost,
  type LabLink,
} from '../lib/lab/index.js';
import { bundleLab, netnsList, pidGone, runChild } from './helpers/lab-child.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const d = describe.skipIf(!isRoot);

function hasTool(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const hasTcpdump = hasTool('tcpdump', ['--version']);

function rootLinks(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(':').slice(0, 2).join(':').trim())
    .filter(Boolean)
    .sort();
}

async function waitGone(pid: number, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pidGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pidGone(pid);
}

d('lab: two linked hosts', () => {
  let lab: Lab;
  let a: LabHost;
  let b: LabHost;
  let link: LabLink;
  let rootBefore: string[];

  beforeAll(async () => {
    rootBefore = rootLinks();
    lab = await Lab.create({ name: 'lab-test-pair' });
    [a, b] = await Promise.all([lab.host('a'), lab.host('b')]);
    link = await lab.link(a, b, {
      aAddrs: ['198.18.0.1/24', 'fd00::1/64'],
      bAddrs: ['198.18.0.2/24', 'fd00::2/64'],
    });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('names namespaces bk-<8 hex>-<host> and exposes /run/netns paths', () => {
    expect(LAB_NETNS_PREFIX).toBe('bk-');
    expect(lab.id).toMatch(/^[0-9a-f]{8}$/);
    expect(a.netns).toBe(`bk-${lab.id}-a`);
    expect(b.netnsPath).toBe(`/run/netns/bk-${lab.id}-b`);
    expect(existsSync(a.netnsPath)).toBe(true);
    expect(lab.hosts.map((h) => h.name)).toEqual(['a', 'b']);
    expect(netnsList()).toEqual(expect.arrayContaining([a.netns, b.netns]));
  });

  it('creates nothing in the root namespace', () => {
    expect(rootLinks()).toEqual(rootBefore);
  });

  it('reads back ifindex and mac of both ends', async () => {
    expect(link.a.ifname).toBe('eth0');
    expect(link.b.ifname).toBe('eth0');
    expect(link.a.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(link.a.ifindex).toBe(await a.ifindex('eth0'));
    expect(link.b.mac).toBe(await b.mac('eth0'));
    const shown = JSON.parse(await b.ip(['-j', 'link', 'show', 'dev', 'eth0'])) as Array<{ ifindex: number; address: string }>;
    expect(shown[0]).toMatchObject({ ifindex: link.b.ifindex, address: link.b.mac });
    expect(link.a.addrs).toEqual(['198.18.0.1/24', 'fd00::1/64']);
    await expect(a.ifindex('nope0')).rejects.toMatchObject({ code: 'ERR_NO_SUCH_INTERFACE' });
  });

  it('pings over IPv4 and IPv6 both ways', async () => {
    const results = await Promise.all([a.ping('198.18.0.2'), b.ping('198.18.0.1'), a.ping('fd00::2'), b.ping('fd00::1', { count: 2, intervalMs: 50 })]);
    expect(results.map((r) => [r.sent, r.received])).toEqual([
      [3, 3],
      [3, 3],
      [3, 3],
      [2, 2],
    ]);
    expect(results[0]?.rttMs).toHaveLength(3);
  });

  it('reports lost pings without throwing', async () => {
    const r = await a.ping('198.18.0.77', { count: 2, intervalMs: 50, timeoutMs: 600 });
    expect(r).toMatchObject({ sent: 2, received: 0 });
  });

  it('delivers 100 UDP datagrams intact (IPv4)', async () => {
    const sink = await b.udpSink('198.18.0.2', 0);
    expect(sink.port).toBeGreaterThan(0);
    const payload = (i: number): Buffer => {
      const buf = Buffer.alloc(8 + ((i * 37) % 1400));
      buf.writeUInt32BE(i, 0);
      buf.writeUInt32BE(0xb9f0b9f0, 4);
      for (let j = 8; j < buf.length; j++) buf[j] = (i * 7 + j) & 0xff;
      return buf;
    };
    const res = await a.sendUdp('198.18.0.2', sink.port, { count: 100, payload, sport: 40000 });
    expect(res).toEqual({ sent: 100, failed: 0 });
    expect(await sink.waitFor(100, 5_000)).toBe(100);
    const got = sink.payloads();
    expect(got).toHaveLength(100);
    const bySeq = new Map(got.map((p) => [p.readUInt32BE(0), p]));
    for (let i = 0; i < 100; i++) expect(bySeq.get(i)?.equals(payload(i)), `datagram ${i}`).toBe(true);
    expect(sink.datagrams()[0]?.from).toEqual({ address: '198.18.0.1', port: 40000 });
    await sink.close();
    await sink.close(); // idempotent
    expect(sink.process.running).toBe(false);
  });

  it('delivers UDP over IPv6, with default, fixed, empty and list payloads', async () => {
    const sink = await a.udpSink('::', 0);
    await b.sendUdp('fd00::1', sink.port, { count: 3 });
    await b.sendUdp('fd00::1', sink.port, { count: 2, payload: 'fixed', src: 'fd00::2' });
    await b.sendUdp('fd00::1', sink.port, { count: 1, payload: Buffer.alloc(0) });
    await b.sendUdp('198.18.0.1', sink.port, { count: 2, payload: [Buffer.from([0, 1, 2, 255]), 'x'] }); // v4 into a '::' socket
    expect(await sink.waitFor(8, 5_000)).toBe(8);
    expect(sink.payloads().map((p) => p.toString('hex'))).toEqual(
      [defaultUdpPayload(0), defaultUdpPayload(1), defaultUdpPayload(2), 'fixed', 'fixed']
        .map((s) => Buffer.from(s).toString('hex'))
        .concat(['', '000102ff', Buffer.from('x').toString('hex')]),
    );
    expect(sink.datagrams()[3]?.from.address).toBe('fd00::2');
    // waitFor resolves with what arrived when nothing more comes
    expect(await sink.waitFor(9, 200)).toBe(8);
    await sink.close();
  });

  it('TCP: connects to a listener, fails on a closed port and an absent host', async () => {
    const l = await a.tcpListen('::', 0);
    expect(await b.tcpConnect('198.18.0.1', l.port)).toBe(true);
    expect(await b.tcpConnect('fd00::1', l.port)).toBe(true);
    expect(await l.waitForAccepted(2, 5_000)).toBe(2);
    expect(l.accepted()).toBe(2);
    const closedPort = l.port === 1 ? 2 : l.port - 1;
    expect(await b.tcpConnect('198.18.0.1', closedPort, 3_000)).toBe(false);
    expect(await b.tcpConnect('198.18.0.99', l.port, 500)).toBe(false);
    await l.close();
    expect(await b.tcpConnect('198.18.0.1', l.port, 3_000)).toBe(false);
  });

  it('exec: returns output, throws ERR_SYSTEM with stderr on failure unless check is false', async () => {
    const r = await a.exec(['ip', '-br', 'addr', 'show', 'dev', 'eth0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('198.18.0.1/24');
    const err = await a.exec(['sh', '-c', 'echo oops >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BpfkitError);
    expect(err).toMatchObject({ code: 'ERR_SYSTEM' });
    expect((err as Error).message).toContain('oops');
    expect(await a.exec(['sh', '-c', 'exit 4'], { check: false })).toMatchObject({ code: 4 });
    expect((await a.exec(['cat'], { input: 'hello' })).stdout).toBe('hello');
    await expect(a.exec(['sleep', '5'], { timeoutMs: 200 })).rejects.toThrow(/timed out/);
  });

  it('spawn: streams stdout lines; killed on demand', async () => {
    const p = a.spawn(['sh', '-c', 'echo one; echo two; sleep 30']);
    expect(await p.waitForLine('two', 5_000)).toBe('two');
    expect(p.lines()).toEqual(['one', 'two']);
    await p.kill();
    expect(p.running).toBe(false);
    await expect(a.spawn(['sh', '-c', 'echo bad >&2; exit 1']).waitForLine('never', 5_000)).rejects.toThrow(/bad/);
  });

  it('rejects bad names and duplicate hosts', async () => {
    await expect(lab.host('a')).rejects.toMatchObject({ code: 'ERR_EXISTS' });
    await expect(lab.host('bad/name')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(lab.link(a, b, { aName: 'this-name-is-too-long' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(lab.link(a, b, { aName: 'eth0' })).rejects.toMatchObject({ code: 'ERR_EXISTS' });
    await expect(lab.link(a, b, { aAddrs: ['198.18.5.1/24\nlink del eth0'] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'aAddrs' });
    await expect(lab.link(a, b, { bMac: 'zz:00:00:00:00:00' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'bMac' });
  });

  it.skipIf(!hasTcpdump)('sends complete L4 checksums by default (TX checksum offload off)', async () => {
    const cap = b.spawn(['tcpdump', '-l', '-n', '-vv', '-Q', 'in', '-i', 'eth0', 'udp', 'port', '7001']);
    await cap.waitForStderr('listening on', 10_000);
    await a.sendUdp('198.18.0.2', 7001, { count: 2 });
    await a.sendUdp('fd00::2', 7001, { count: 2 });
    const line = await cap.waitForLine(/sum ok|bad udp cksum/, 5_000);
    expect(line).toContain('sum ok');
    await new Promise((r) => setTimeout(r, 200));
    await cap.kill();
    const sums = cap.lines().filter((l) => /cksum|sum ok/.test(l));
    expect(sums.length).toBe(4);
    expect(sums.every((l) => l.includes('sum ok'))).toBe(true);
  });

  it('second link gets eth1, honours names, mtu, macs and gro', async () => {
    const l2 = await lab.link(a, b, {
      bName: 'up0',
      mtu: 1400,
      gro: true,
      aMac: '02:00:00:00:0a:01',
      aAddrs: ['198.18.9.1/24'],
      bAddrs: ['198.18.9.2/24'],
    });
    expect(l2.a.ifname).toBe('eth1');
    expect(l2.b.ifname).toBe('up0');
    expect(l2.a.mac).toBe('02:00:00:00:0a:01');
    const info = JSON.parse(await b.ip(['-j', 'link', 'show', 'dev', 'up0'])) as Array<{ mtu: number }>;
    expect(info[0]?.mtu).toBe(1400);
    expect((await a.ping('198.18.9.2', { count: 1 })).received).toBe(1);
    await b.setGro('up0', false); // verified read-back inside
  });
});

d('lab: three-host chain with forwarding', () => {
  it('routes IPv4 and IPv6 through a forwarding middle host', async () => {
    await using lab = await Lab.create({ name: 'lab-test-chain' });
    const [a, r, c] = await Promise.all([lab.host('a'), lab.host('r', { forwarding: true }), lab.host('c')]);
    await Promise.all([
      lab.link(a, r, { aAddrs: ['198.18.1.1/24', 'fd00:1::1/64'], bAddrs: ['198.18.1.2/24', 'fd00:1::2/64'] }),
      lab.link(r, c, { aAddrs: ['198.18.2.1/24', 'fd00:2::1/64'], bAddrs: ['198.18.2.2/24', 'fd00:2::2/64'] }),
    ]);
    await a.addRoute('198.18.2.0/24 via 198.18.1.2');
    await a.addRoute('fd00:2::/64 via fd00:1::2');
    await c.addRoute('198.18.1.0/24 via 198.18.2.1');
    await c.addRoute('fd00:1::/64 via fd00:2::1');
    // IPv6 first, right after setup: the router must resolve neighbours for forwarded
    // traffic at once (this failed while link-local addresses were still tentative)
    expect((await a.ping('fd00:2::2')).received).toBe(3);
    expect((await c.ping('fd00:1::1')).received).toBe(3);
    expect((await a.ping('198.18.2.2')).received).toBe(3);
    expect((await c.ping('198.18.1.1')).received).toBe(3);
    const sink = await c.udpSink('198.18.2.2', 5353);
    await a.sendUdp('198.18.2.2', 5353, { count: 20, payload: (i) => `hop ${i}` });
    expect(await sink.waitFor(20)).toBe(20);
    expect(sink.payloads().map(String)).toEqual(Array.from({ length: 20 }, (_, i) => `hop ${i}`));
    // forwarding really is what makes it work
    await r.sysctl({ 'net.ipv4.ip_forward': 0 });
    expect((await a.ping('198.18.2.2', { count: 2, intervalMs: 50, timeoutMs: 600 })).received).toBe(0);
    // no route at all: a clear error rather than silent loss
    await expect(a.ping('198.19.0.1', { count: 1 })).rejects.toThrow(/unreachable/i);
  });
});

d('lab: teardown', () => {
  it('close() kills processes, deletes namespaces, is idempotent, and closes the API', async () => {
    const lab = await Lab.create();
    const a = await lab.host('a');
    const b = await lab.host('b');
    await lab.link(a, b, { aAddrs: ['198.18.0.1/30'], bAddrs: ['198.18.0.2/30'] });
    const p = a.spawn(['sleep', '300']);
    const sink = await b.udpSink('0.0.0.0', 0);
    // a process started through exec in the background is not tracked, but still killed
    await a.exec(['sh', '-c', 'sleep 300 >/dev/null 2>&1 &']);
    const pidsBefore = execFileSync('ip', ['netns', 'pids', a.netns], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    expect(pidsBefore.length).toBeGreaterThanOrEqual(2);
    expect(exitHookCount()).toBeGreaterThan(0);

    await Promise.all([lab.close(), lab.close()]);
    await lab.close();
    const names = netnsList();
    expect(names.filter((n) => n.startsWith(`bk-${lab.id}-`))).toEqual([]);
    expect(existsSync(a.netnsPath)).toBe(false);
    expect(p.running).toBe(false);
    expect(sink.process.running).toBe(false);
    for (const pid of pidsBefore) expect(await waitGone(pid), `pid ${pid}`).toBe(true);
    await expect(a.exec(['true'])).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(lab.host('c')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(() => a.spawn(['true'])).toThrow(BpfkitError);
  });

  it('`await using` cleans up when the body throws', async () => {
    let id = '';
    const body = async (): Promise<void> => {
      await using lab = await Lab.create();
      id = lab.id;
      await lab.host('x');
      throw new Error('test body failed');
    };
    await expect(body()).rejects.toThrow('test body failed');
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(netnsList().filter((n) => n.startsWith(`bk-${id}-`))).toEqual([]);
  });

  it('the exit-hook cleanup removes open labs synchronously and unregisters itself', async () => {
    const before = exitHookCount();
    const lab = await Lab.create();
    const h = await lab.host('h');
    const p = h.spawn(['sleep', '300']);
    expect(exitHooksInstalled()).toBe(true);
    expect(exitHookCount()).toBe(before + 1);
    // runs every open lab's closeSync(), exactly what process 'exit' / SIGTERM trigger
    runExitCleanup();
    expect(existsSync(h.netnsPath)).toBe(false);
    expect(await waitGone(p.pid)).toBe(true);
    expect(exitHookCount()).toBe(0);
    expect(exitHooksInstalled()).toBe(false);
    await lab.close(); // still fine afterwards
  });

  describe('a crashing process leaves nothing behind', () => {
    let bundle: Awaited<ReturnType<typeof bundleLab>>;
    beforeAll(async () => {
      bundle = await bundleLab();
    });
    afterAll(() => bundle?.cleanup());

    const childSource = (mod: string): string => `
      import { Lab } from ${JSON.stringify(mod)};
      const lab = await Lab.create({ name: 'crash-child' });
      const a = await lab.host('a');
      const b = await lab.host('b');
      await lab.link(a, b, { aAddrs: ['198.18.0.1/30'], bAddrs: ['198.18.0.2/30'] });
      const p = a.spawn(['sleep', '300']);
      await p.waitForLine(() => true, 300).catch(() => {});
      console.log(JSON.stringify({ id: lab.id, namespaces: lab.namespaces, pid: p.pid }));
      if (process.argv[2] === 'throw') throw new Error('boom from child');
      setInterval(() => {}, 1000); // wait for a signal
    `;

    it.each([
      ['an uncaught exception', 'throw', undefined],
      ['SIGTERM', 'wait', 'SIGTERM'],
      ['SIGINT', 'wait', 'SIGINT'],
    ] as const)('after %s', async (_label, mode, sig) => {
      if (!bundle) {
        console.warn('esbuild unavailable: crash test covered only by the direct exit-hook test');
        return;
      }
      const res = await runChild(bundle.dir, childSource(bundle.module), [mode], {
        ...(sig ? { signalAfterReport: sig } : {}),
      });
      const report = res.report as { id: string; namespaces: string[]; pid: number } | undefined;
      expect(report, res.stderr).toBeDefined();
      if (!report) return;
      expect(report.namespaces).toHaveLength(2);
      if (sig) {
        expect(res.signal).toBe(sig); // cleanup ran, then the signal was re-raised
      } else {
        expect(res.code).toBe(1);
        expect(res.stderr).toContain('boom from child');
      }
      expect(netnsList().filter((n) => n.startsWith(`bk-${report.id}-`))).toEqual([]);
      expect(await waitGone(report.pid)).toBe(true);
    });
  });
});

const clang = hasTool('clang', ['--version']);

d('leak listing', () => {
  it.skipIf(!clang)('sees XDP programs attached in a namespace (same parser as the root-namespace leak check)', async () => {
    await using lab = await Lab.create();
    const h = await lab.host('x');
    const l = await lab.link(h, h, { aName: 'v0', bName: 'v1' });
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-lab-xdp-'));
    try {
      writeFileSync(
        join(dir, 'pass.c'),
        '#include <linux/bpf.h>\n' +
          '__attribute__((section("xdp"), used)) int lab_pass(struct xdp_md *c) { return XDP_PASS; }\n' +
          'char _license[] __attribute__((section("license"), used)) = "GPL";\n',
      );
      const arch = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
      execFileSync('clang', ['-O2', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, '-c', join(dir, 'pass.c'), '-o', join(dir, 'pass.o')]);
      await h.ip(['link', 'set', 'dev', 'v0', 'xdpgeneric', 'obj', join(dir, 'pass.o'), 'sec', 'xdp']);
      const found = await listXdp({ netns: h.netns });
      expect(found).toEqual([expect.objectContaining({ ifname: 'v0', ifindex: l.a.ifindex, mode: 'skb', progName: 'lab_pass' })]);
      expect(found[0]?.progId).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('findLeaks ignores labs whose creator is alive', async () => {
    await using lab = await Lab.create();
    const h = await lab.host('alive');
    const leaks = await findLeaks();
    expect(leaks.namespaces.map((n) => n.name)).not.toContain(h.netns);
    const all = await findLeaks({ includeLiveOwners: true });
    expect(all.namespaces).toContainEqual(expect.objectContaining({ name: h.netns, ownerPid: process.pid, ownerAlive: true }));
  });
});

d('ensureBpffs', () => {
  it('mounts (or finds) the BPF filesystem', async () => {
    await ensureBpffs();
    await ensureBpffs();
    expect(isBpffsMounted()).toBe(true);
  });
});
