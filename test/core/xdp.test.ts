import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfMap, BpfObject, VerifierError, XdpLink, XdpProgram, struct, u32, u64 } from '../../lib/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';
import { udpFrame } from '../helpers/packets.js';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });
const sum = (v: { packets: bigint }[] | undefined) => Number((v ?? []).reduce((s, c) => s + c.packets, 0n));

let lab: Lab;
let a: LabHost;
let b: LabHost;
beforeAll(async () => {
  lab = await Lab.create({ name: 'core-xdp' });
  a = await lab.host('a');
  b = await lab.host('b');
  await lab.link(a, b, { aAddrs: ['198.18.0.1/24', 'fd00::1/64'], bAddrs: ['198.18.0.2/24', 'fd00::2/64'] });
});
afterAll(async () => {
  await lab?.close();
});

async function txPackets(h: LabHost, ifname: string): Promise<number> {
  const [l] = JSON.parse(await h.ip(['-s', '-j', 'link', 'show', ifname])) as { stats64: { tx: { packets: number } } }[];
  return l!.stats64.tx.packets;
}

/**
 * XDP on veth runs in the receiver's NAPI poll, after the sender's tx counter moved, and
 * the kernel sends background frames of its own (IPv6 RS/MLD, ARP). So compare deltas
 * taken at quiet moments: `baseline` waits (bounded) until two reads of (count, tx) 25 ms
 * apart agree, `settled` waits until the count delta equals the tx delta.
 */
async function pairNow(h: LabHost, ifname: string, count: () => number): Promise<[number, number]> {
  return [count(), await txPackets(h, ifname)];
}
async function baseline(h: LabHost, ifname: string, count: () => number): Promise<[number, number]> {
  let prev = await pairNow(h, ifname, count);
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const cur = await pairNow(h, ifname, count);
    if (cur[0] === prev[0] && cur[1] === prev[1]) return cur;
    prev = cur;
  }
  return prev;
}
async function settled(h: LabHost, ifname: string, base: [number, number], count: () => number): Promise<[number, number]> {
  let pair: [number, number] = [0, -1];
  for (let i = 0; i < 40; i++) {
    const [c, t] = await pairNow(h, ifname, count);
    pair = [c - base[0], t - base[1]];
    if (pair[0] === pair[1]) return pair;
    await new Promise((r) => setTimeout(r, 25));
  }
  return pair;
}

async function xdpWitness(h: LabHost, ifname: string): Promise<{ mode?: number; prog?: { id: number } } | undefined> {
  const [l] = JSON.parse(await h.ip(['-d', '-j', 'link', 'show', ifname])) as { xdp?: { mode: number; prog?: { id: number } } }[];
  return l!.xdp;
}

describe('XdpProgram on a real veth', () => {
  it('counts real packets; attachment confirmed by iproute2 and bpftool', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using prog = obj.xdpProgram('xdp_count');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    {
      using link = prog.attach('eth0', { mode: 'native', netns: b.netns });
      expect(link.mode).toBe('native');
      const w = await xdpWitness(b, 'eth0');
      expect(w?.mode).toBe(1); // XDP_ATTACHED_DRV
      expect(w?.prog?.id).toBe(prog.info.id);
      const bt = await b.exec(['bpftool', '-j', 'net', 'show', 'dev', 'eth0']);
      expect(JSON.parse(bt.stdout)[0].xdp[0].id).toBe(prog.info.id);

      const count = () => sum(counters.get(0));
      const base = await baseline(a, 'eth0', count);
      const r = await a.ping('198.18.0.2', { count: 5, intervalMs: 20 });
      expect(r.received).toBe(5);
      const [counted, sent] = await settled(a, 'eth0', base, count);
      expect(counted).toBe(sent);
      expect(sent).toBeGreaterThanOrEqual(5);
      const bytes = counters.get(0)!.reduce((s, c) => s + c.bytes, 0n);
      expect(bytes).toBeGreaterThanOrEqual(5n * 98n);
    }
    // closing the (unpinned) link detached the program
    expect(await xdpWitness(b, 'eth0')).toBeUndefined();
  });

  it('replace() swaps programs atomically: every packet counted by exactly one', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using p0 = obj.xdpProgram('xdp_count');
    using p1 = obj.xdpProgram('xdp_count_alt');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    using link = p0.attach('eth0', { netns: b.netns });
    const count = () => sum(counters.get(0)) + sum(counters.get(1));
    const base = await baseline(a, 'eth0', count);
    const sending = a.sendUdp('198.18.0.2', 9, { count: 600, intervalMs: 1 });
    for (let i = 0; i < 200 && sum(counters.get(0)) < 100; i++) await new Promise((r) => setTimeout(r, 10));
    link.replace(p1, { expected: p0 });
    expect((await xdpWitness(b, 'eth0'))?.prog?.id).toBe(p1.info.id);
    const res = await sending;
    expect(res.sent).toBe(600);
    const [counted, sent] = await settled(a, 'eth0', base, count);
    const c0 = sum(counters.get(0));
    const c1 = sum(counters.get(1));
    expect(c0).toBeGreaterThanOrEqual(100);
    expect(c1).toBeGreaterThan(0);
    expect(counted).toBe(sent);
    // the expected-program guard refuses a stale swap
    expect(() => link.replace(p0, { expected: p0 })).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
  });

  it('pinned link and map survive the JS objects and re-open from the pins', async () => {
    const dir = `/sys/fs/bpf/bpfkit-test-xdp-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    try {
      {
        using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
        using prog = obj.xdpProgram('xdp_count');
        using counters = obj.perCpuMap('counters', { key: u32, value: counter });
        using link = prog.attach('eth0', { netns: b.netns });
        link.pin(`${dir}/link`);
        counters.pin(`${dir}/counters`);
      }
      // every JS handle is closed: the pin keeps the program attached
      const w = await xdpWitness(b, 'eth0');
      expect(w?.prog?.id).toBeGreaterThan(0);
      using link = XdpLink.openPinned(`${dir}/link`, { netns: b.netns });
      expect(link.info.progId).toBe(w!.prog!.id);
      expect(link.mode).toBe('native');
      using counters = BpfMap.openPinnedPerCpu(`${dir}/counters`, { key: u32, value: counter });
      const c = sum(counters.get(0));
      expect((await a.ping('198.18.0.2', { count: 2, intervalMs: 20 })).received).toBe(2);
      expect(sum(counters.get(0))).toBeGreaterThanOrEqual(c + 2);
      link.detach();
      expect(await xdpWitness(b, 'eth0')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generate(): live frames from A arrive at B (XDP_TX traffic generator)', async () => {
    using gen = await BpfObject.load(join(packageRoot(), 'build/bpf/xdp_basic.bpf.o'));
    using tx = gen.xdpProgram('xdp_tx');
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'), { globals: { verdict: 1 } });
    using cnt = obj.xdpProgram('xdp_count');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    using link = cnt.attach('eth0', { netns: b.netns });
    const frame = udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 1000, dport: 9 });
    const r = await tx.generate(frame, { iface: 'eth0', netns: a.netns, count: 10_000, batchSize: 64 });
    expect(r.sent).toBe(10_000);
    expect(link.mode).toBe('native');
    // every generated frame reached B's XDP program (which drops them: verdict = XDP_DROP)
    expect(sum(counters.get(0))).toBeGreaterThanOrEqual(10_000);
  });

  it("generate(): with GRO on, XDP_TX'd frames reach a peer that runs no XDP, payload intact", async () => {
    const c = await lab.host('c');
    const d = await lab.host('d');
    const l = await lab.link(c, d, { aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'], gro: true });
    const sink = await d.udpSink('198.18.2.2', 7000);
    using gen = await BpfObject.load(join(packageRoot(), 'build/bpf/xdp_basic.bpf.o'));
    const frame = udpFrame({ srcMac: l.a.mac, dstMac: l.b.mac, src: '198.18.2.1', dst: '198.18.2.2', sport: 7001, dport: 7000, payload: 'live' });
    await gen.xdpProgram('xdp_tx').generate(frame, { iface: l.a.ifname, netns: c.netns, count: 200, batchSize: 16 });
    expect(await sink.waitFor(200, 5000)).toBe(200);
    expect(sink.payloads()[0]!.toString()).toBe('live');
  });

  it('bad targets: unknown interface, unknown namespace, bad mode, second attach', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using prog = obj.xdpProgram('xdp_count');
    expect(() => prog.attach('nosuch0', { netns: b.netns })).toThrow(expect.objectContaining({ code: 'ERR_NO_SUCH_INTERFACE', errno: 19 }));
    expect(() => prog.attach('eth0', { netns: 'bk-no-such-ns' })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    expect(() => prog.attach('eth0', { netns: b.netns, mode: 'fast' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'mode' }),
    );
    expect(() => prog.attach('bad name!', { netns: b.netns })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    using link = prog.attach('eth0', { netns: b.netns, mode: 'generic' });
    expect(link.mode).toBe('generic');
    expect((await xdpWitness(b, 'eth0'))?.mode).toBe(2); // XDP_ATTACHED_SKB
    expect(() => prog.attach('eth0', { netns: b.netns })).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
  });
});

describe('testRun fixtures (BPF_PROG_TEST_RUN)', () => {
  it('packet in -> action and packet out; counters see every repetition', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using prog = obj.xdpProgram('xdp_count');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    const frame = udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 5, dport: 7, payload: 'hello' });
    const r = await prog.testRun(frame, { repeat: 1000 });
    expect(r.action).toBe('pass');
    expect(r.packet.equals(frame)).toBe(true);
    expect(sum(counters.get(0))).toBe(1000);
    expect(counters.get(0)!.reduce((s, c) => s + c.bytes, 0n)).toBe(BigInt(1000 * frame.length));
    expect(r.durationNs).toBeGreaterThanOrEqual(0);
  });

  it('read-only globals configure the program before load', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'), { globals: { verdict: 1 } });
    using prog = obj.xdpProgram('xdp_count');
    const r = await prog.testRun(udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 5, dport: 7 }));
    expect(r.action).toBe('drop');
  });

  it('ingress interface for testRun comes from a namespace', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/xdp_basic.bpf.o'));
    using prog = obj.xdpProgram('xdp_pass');
    const r = await prog.testRun(udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 5, dport: 7 }), { ingress: 'eth0', netns: b.netns });
    expect(r.action).toBe('pass');
    await expect(prog.testRun(Buffer.alloc(4))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'packet' });
    await expect(prog.testRun(Buffer.alloc(60), { repeat: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'repeat' });
  });
});

describe('BpfObject configuration and bad objects', () => {
  it('lists programs, maps and globals; applies maxEntries and autoload', async () => {
    using obj = BpfObject.open(join(packageRoot(), 'build/bpf/counter.bpf.o'), {
      maps: { counters: { maxEntries: 8 } },
      programs: { xdp_count_alt: { autoload: false } },
    });
    expect(obj.programs.map((p) => p.name).sort()).toEqual(['xdp_count', 'xdp_count_alt']);
    expect(obj.globals).toEqual([expect.objectContaining({ name: 'verdict', size: 4, readOnly: true })]);
    await obj.load();
    using m = obj.perCpuMap('counters', { key: u32, value: counter });
    expect(m.info.maxEntries).toBe(8);
    expect(() => obj.program('xdp_count_alt')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    expect(() => obj.configure({ maps: { counters: { maxEntries: 2 } } })).toThrow(/before load/);
  });

  it('opens from a buffer', async () => {
    const { readFileSync } = await import('node:fs');
    using obj = await BpfObject.load(readFileSync(join(packageRoot(), 'build/bpf/xdp_basic.bpf.o')), { name: 'basic' });
    expect(obj.program('xdp_drop')).toBeInstanceOf(XdpProgram);
  });

  it('rejects bad configuration before touching anything', () => {
    const path = join(packageRoot(), 'build/bpf/counter.bpf.o');
    expect(() => BpfObject.open(path, { globals: { nope: 1 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'globals.nope' }));
    expect(() => BpfObject.open(path, { globals: { verdict: 2 ** 40 } })).toThrow(expect.objectContaining({ field: 'globals.verdict' }));
    expect(() => BpfObject.open(path, { maps: { counters: { maxEntries: 0 } } })).toThrow(expect.objectContaining({ field: 'maps.counters.maxEntries' }));
    expect(() => BpfObject.open(path, { maps: { nomap: {} } })).toThrow(expect.objectContaining({ field: 'maps.nomap' }));
  });

  it('missing file -> ERR_NOT_FOUND; malformed ELF -> ERR_INVALID_OBJECT', () => {
    expect(() => BpfObject.open('/nonexistent/x.bpf.o')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND', errno: 2 }));
    expect(() => BpfObject.open(Buffer.from('not an elf'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OBJECT' }));
    const junk = Buffer.alloc(256, 0xab);
    junk.write('\x7fELF', 0, 'latin1');
    expect(() => BpfObject.open(junk)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OBJECT' }));
  });

  it('verifier rejection -> VerifierError with the full log', async () => {
    const err = await BpfObject.load(testObject('reject')).catch((e) => e);
    expect(err).toBeInstanceOf(VerifierError);
    expect(err).toBeInstanceOf(BpfkitError);
    expect(err.code).toBe('ERR_VERIFIER');
    expect(err.program).toBe('xdp_unchecked');
    expect(err.log).toMatch(/invalid access to packet/);
    expect(err.log.split('\n').length).toBeGreaterThan(3);
    expect(err.message).toMatch(/xdp_unchecked.*invalid access to packet/);
  });

  it('without privileges: ERR_PERMISSION with a hint (capabilities dropped via setpriv)', () => {
    const dist = join(packageRoot(), 'dist/index.js');
    expect(existsSync(dist), 'dist/ is built by scripts/bootstrap.sh (npm test)').toBe(true);
    const script = `import('${dist}').then(async (m) => {
      try { await m.BpfObject.load('${join(packageRoot(), 'build/bpf/counter.bpf.o')}'); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, message: e.message })); }
    })`;
    const r = spawnSync('setpriv', ['--inh-caps=-all', '--bounding-set=-all', '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.code).toBe('ERR_PERMISSION');
    expect(out.errno).toBe(1);
    expect(out.message).toMatch(/CAP_BPF/);
  });
});
