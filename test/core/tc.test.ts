/**
 * TcProgram / TcLink on the real kernel: tcx links and clsact filters on a veth pair in
 * lab namespaces, witnessed from outside (bpftool, tc, nft counters, interface stats) and
 * by real packets; BPF_PROG_TEST_RUN fixtures with a __sk_buff context.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, TcLink, TcProgram, XdpProgram, struct, tcVerdictCode, tcVerdictName, tcxAvailable, u32, u64 } from '../../lib/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { nodeChild } from '../helpers/node-child.js';
import { testObject } from '../helpers/objects.js';
import { udpFrame } from '../helpers/packets.js';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });
const sum = (v: { packets: bigint }[] | undefined) => Number((v ?? []).reduce((s, c) => s + c.packets, 0n));
const OBJ = testObject('tc_test');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let lab: Lab;
let a: LabHost;
let b: LabHost;
beforeAll(async () => {
  lab = await Lab.create({ name: 'core-tc' });
  a = await lab.host('a');
  b = await lab.host('b');
  await lab.link(a, b, { aAddrs: ['198.18.3.1/24'], bAddrs: ['198.18.3.2/24'] });
});
afterAll(async () => {
  await lab?.close();
});

async function ifStats(h: LabHost, dir: 'rx' | 'tx'): Promise<number> {
  const [l] = JSON.parse(await h.ip(['-s', '-j', 'link', 'show', 'eth0'])) as { stats64: Record<'rx' | 'tx', { packets: number }> }[];
  return l!.stats64[dir].packets;
}
/**
 * A TC counter runs after the interface counted the packet (rx) or before (tx), and the
 * kernel sends frames of its own (ARP): compare deltas taken at quiet moments.
 * `baseline` waits (bounded) for two equal reads 25 ms apart; `settled` until the counter
 * delta equals the interface's delta.
 */
async function baseline(dir: 'rx' | 'tx', count: () => number): Promise<[number, number]> {
  let prev: [number, number] = [count(), await ifStats(b, dir)];
  for (let i = 0; i < 40; i++) {
    await sleep(25);
    const cur: [number, number] = [count(), await ifStats(b, dir)];
    if (cur[0] === prev[0] && cur[1] === prev[1]) return cur;
    prev = cur;
  }
  return prev;
}
async function settled(dir: 'rx' | 'tx', base: [number, number], count: () => number): Promise<[number, number]> {
  let pair: [number, number] = [0, -1];
  for (let i = 0; i < 40; i++) {
    pair = [count() - base[0], (await ifStats(b, dir)) - base[1]];
    if (pair[0] === pair[1]) return pair;
    await sleep(25);
  }
  return pair;
}

/** tcx links as bpftool 7.1 (older than tcx) sees them: link type 11 and a program id. */
async function bpftoolTcxProgs(h: LabHost): Promise<number[]> {
  const links = JSON.parse((await h.exec(['bpftool', '-j', 'link', 'show'])).stdout || '[]') as { type: unknown; prog_id: number }[];
  return links.filter((l) => l.type === 11 || l.type === 'tcx').map((l) => l.prog_id);
}
const tcxProgs = (dir: 'ingress' | 'egress') => TcLink.query('eth0', { direction: dir, netns: b.netns }).programs.map((p) => p.programId);
/** cls_bpf filters as `tc filter show` lists them. */
async function tcFilters(dir: 'ingress' | 'egress'): Promise<{ pref: number; handle: string; progId: number; name: string }[]> {
  const out = JSON.parse((await b.exec(['tc', '-j', 'filter', 'show', 'dev', 'eth0', dir])).stdout || '[]') as {
    pref: number;
    options?: { handle: string; bpf_name: string; 'direct-action': boolean; prog: { id: number } };
  }[];
  return out.filter((f) => f.options).map((f) => ({ pref: f.pref, handle: f.options!.handle, progId: f.options!.prog.id, name: f.options!.bpf_name }));
}
async function nftMarked(): Promise<number> {
  const out = JSON.parse((await b.exec(['nft', '-j', 'list', 'chain', 'inet', 'tctest', 'pre'])).stdout) as {
    nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
  };
  const rule = out.nftables.find((x) => x.rule)!.rule!;
  return rule.expr.find((e) => e.counter)!.counter!.packets;
}

describe('tcx links on a real veth', () => {
  it('the kernel has tcx; ingress and egress count real packets and ingress sets skb->mark', async () => {
    expect(tcxAvailable()).toBe(true);
    await b.exec(['nft', '-f', '-'], {
      input: 'table inet tctest {\n chain pre {\n  type filter hook prerouting priority 0;\n  meta mark 0x42 counter\n }\n}\n',
    });
    try {
      using obj = await BpfObject.load(OBJ, { globals: { mark: 0x42 } });
      using ing = obj.tcProgram('tc_mark');
      using eg = obj.tcProgram('tc_mark_alt');
      using counters = obj.perCpuMap('counters', { key: u32, value: counter });
      {
        using li = ing.attach('eth0', { direction: 'ingress', netns: b.netns });
        using le = eg.attach('eth0', { direction: 'egress', netns: b.netns });
        expect([li.kind, li.direction, le.direction]).toEqual(['tcx', 'ingress', 'egress']);
        expect(li.info).toMatchObject({ kind: 'tcx', progId: ing.info.id, ifindex: await b.ifindex('eth0'), direction: 'ingress' });
        expect(tcxProgs('ingress')).toEqual([ing.info.id]);
        expect(tcxProgs('egress')).toEqual([eg.info.id]);
        expect(await bpftoolTcxProgs(b)).toEqual(expect.arrayContaining([ing.info.id, eg.info.id]));

        const inCount = () => sum(counters.get(0));
        const outCount = () => sum(counters.get(1));
        const baseIn = await baseline('rx', inCount);
        const baseOut = await baseline('tx', outCount);
        const marked0 = await nftMarked();
        expect((await a.ping('198.18.3.2', { count: 5, intervalMs: 20 })).received).toBe(5);
        const [cin, rx] = await settled('rx', baseIn, inCount);
        const [cout, tx] = await settled('tx', baseOut, outCount);
        expect(cin).toBe(rx);
        expect(cout).toBe(tx);
        expect(rx).toBeGreaterThanOrEqual(5);
        expect(tx).toBeGreaterThanOrEqual(5);
        // every IPv4 packet that came in carried the mark when netfilter saw it
        expect((await nftMarked()) - marked0).toBeGreaterThanOrEqual(5);
      }
      // closing the unpinned links detached both programs
      expect(tcxProgs('ingress')).toEqual([]);
      expect(tcxProgs('egress')).toEqual([]);
      expect(await bpftoolTcxProgs(b)).not.toContain(ing.info.id);
    } finally {
      await b.exec(['nft', 'delete', 'table', 'inet', 'tctest']);
    }
  });

  it('before/after place programs; the kernel runs them in that order', async () => {
    using obj = await BpfObject.load(OBJ);
    using pa = obj.tcProgram('tc_order_a');
    using pb = obj.tcProgram('tc_order_b');
    using pc = obj.tcProgram('tc_order_c');
    using order = obj.map('order', { key: u32, value: u64 });
    using la = pa.attach('eth0', { direction: 'ingress', netns: b.netns });
    using lb = pb.attach('eth0', { direction: 'ingress', netns: b.netns, before: 'all' });
    expect(tcxProgs('ingress')).toEqual([pb.info.id, pa.info.id]);
    const rev = TcLink.query('eth0', { direction: 'ingress', netns: b.netns }).revision;
    // a stale revision is refused, nothing changes
    expect(() => pc.attach('eth0', { direction: 'ingress', netns: b.netns, after: pb, expectedRevision: rev - 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_BUSY' }),
    );
    using lc = pc.attach('eth0', { direction: 'ingress', netns: b.netns, after: pb, expectedRevision: rev });
    const ids = [pb.info.id, pc.info.id, pa.info.id];
    expect(tcxProgs('ingress')).toEqual(ids);
    expect(TcLink.query('eth0', { direction: 'ingress', netns: b.netns }).programs.map((p) => p.linkId)).toEqual([lb.info.id, lc.info.id, la.info.id]);
    expect(await bpftoolTcxProgs(b)).toEqual(expect.arrayContaining(ids));

    expect((await a.ping('198.18.3.2', { count: 3, intervalMs: 20 })).received).toBe(3);
    const seen = new Map([...order].map(([k, v]) => [k, Number(v)]));
    // b (2), then c (3), then a (1): every packet left 0x2, 0x23, 0x231 behind
    expect(seen.get(0x231)).toBeGreaterThanOrEqual(3);
    expect(seen.get(0x231)).toBe(seen.get(0x2));
    expect([...seen.keys()].sort()).toEqual([0x2, 0x23, 0x231]);

    // anchors by id, and anchors that are not at this hook
    lc.close();
    using lc2 = pc.attach('eth0', { direction: 'ingress', netns: b.netns, before: { linkId: lb.info.id! } });
    expect(tcxProgs('ingress')).toEqual([pc.info.id, pb.info.id, pa.info.id]);
    lc2.close();
    using lc3 = pc.attach('eth0', { direction: 'ingress', netns: b.netns, after: { programId: pa.info.id } });
    expect(tcxProgs('ingress')).toEqual([pb.info.id, pa.info.id, pc.info.id]);
    expect(() => pa.attach('eth0', { direction: 'egress', netns: b.netns, before: lb })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    expect(() => pa.attach('eth0', { direction: 'ingress', netns: b.netns })).toThrow(expect.objectContaining({ code: 'ERR_EXISTS' }));
    expect(tcxProgs('egress')).toEqual([]);
    lc3.close();
  });

  it('replace() swaps programs atomically: under a flood every packet is counted by exactly one', async () => {
    using obj = await BpfObject.load(OBJ);
    using p0 = obj.tcProgram('tc_mark');
    using p1 = obj.tcProgram('tc_mark_alt');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    using link = p0.attach('eth0', { direction: 'ingress', netns: b.netns });
    const count = () => sum(counters.get(0)) + sum(counters.get(1));
    const base = await baseline('rx', count);
    const sending = a.sendUdp('198.18.3.2', 9, { count: 600, intervalMs: 1 });
    for (let i = 0; i < 200 && sum(counters.get(0)) < 100; i++) await sleep(10);
    link.replace(p1, { expected: p0 });
    expect(tcxProgs('ingress')).toEqual([p1.info.id]);
    expect(link.info.progId).toBe(p1.info.id);
    expect(link.program).toBe('tc_mark_alt');
    expect((await sending).sent).toBe(600);
    const [counted, received] = await settled('rx', base, count);
    expect(sum(counters.get(0))).toBeGreaterThanOrEqual(100);
    expect(sum(counters.get(1))).toBeGreaterThan(0);
    expect(counted).toBe(received);
    expect(received).toBeGreaterThanOrEqual(600);
    // the expected-program guard refuses a stale swap
    expect(() => link.replace(p0, { expected: p0 })).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
    expect(tcxProgs('ingress')).toEqual([p1.info.id]);
  });

  it('a pinned link survives close() and re-opens from the pin; detach() removes it', async () => {
    const dir = `/sys/fs/bpf/bpfkit-test-tc-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    try {
      let progId: number;
      {
        using obj = await BpfObject.load(OBJ);
        using prog = obj.tcProgram('tc_mark');
        progId = prog.info.id;
        using link = prog.attach('eth0', { direction: 'egress', netns: b.netns });
        link.pin(`${dir}/link`);
        prog.pin(`${dir}/prog`);
      }
      expect(tcxProgs('egress')).toEqual([progId]);
      using pinnedProg = TcProgram.openPinned(`${dir}/prog`);
      expect(pinnedProg.info.id).toBe(progId);
      expect(() => TcProgram.openPinned(`${dir}/link`)).toThrow(expect.objectContaining({ field: 'path' }));
      using link = TcLink.openPinned(`${dir}/link`, { netns: b.netns });
      expect(link).toMatchObject({ kind: 'tcx', direction: 'egress', ifindex: await b.ifindex('eth0') });
      expect(link.info.progId).toBe(progId);
      link.close();
      expect(tcxProgs('egress')).toEqual([progId]);
      using again = TcLink.openPinned(`${dir}/link`, { netns: b.netns });
      again.detach();
      expect(tcxProgs('egress')).toEqual([]);
      expect(() => TcLink.openPinned(`${dir}/nope`)).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('clsact fallback (forced with kind)', () => {
  it('attaches a direct-action filter seen by tc; counts packets; replace, priorities, close', async () => {
    using obj = await BpfObject.load(OBJ);
    using p0 = obj.tcProgram('tc_mark');
    using p1 = obj.tcProgram('tc_mark_alt');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    {
      using link = p0.attach('eth0', { direction: 'ingress', netns: b.netns, kind: 'clsact', priority: 10 });
      expect(link.kind).toBe('clsact');
      expect(link.priority).toBe(10);
      expect(await tcFilters('ingress')).toEqual([
        { pref: 10, handle: `0x${link.filterHandle!.toString(16)}`, progId: p0.info.id, name: `tc_mark:[${p0.info.id}]` },
      ]);
      expect(tcxProgs('ingress')).toEqual([]);
      expect(link.info).toMatchObject({ kind: 'clsact', progId: p0.info.id, priority: 10 });
      const net = JSON.parse((await b.exec(['bpftool', '-j', 'net', 'show', 'dev', 'eth0'])).stdout) as { tc: { kind: string; id: number }[] }[];
      expect(net[0]!.tc).toEqual([expect.objectContaining({ kind: 'clsact/ingress', id: p0.info.id })]);

      const count = () => sum(counters.get(0)) + sum(counters.get(1));
      const base = await baseline('rx', count);
      const sending = a.sendUdp('198.18.3.2', 9, { count: 400, intervalMs: 1 });
      for (let i = 0; i < 200 && sum(counters.get(0)) < 50; i++) await sleep(10);
      link.replace(p1, { expected: p0 });
      expect((await tcFilters('ingress')).map((f) => f.progId)).toEqual([p1.info.id]);
      expect((await sending).sent).toBe(400);
      const [counted, received] = await settled('rx', base, count);
      expect(counted).toBe(received);
      expect(sum(counters.get(1))).toBeGreaterThan(0);
      expect(() => link.replace(p0, { expected: p0 })).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
      expect(() => link.pin('/sys/fs/bpf/bpfkit-test-tc-clsact')).toThrow(
        expect.objectContaining({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/cannot be pinned/) }),
      );
    }
    expect(await tcFilters('ingress')).toEqual([]);
    // the qdisc stays (see TcLink): an empty clsact
    expect((await b.exec(['tc', 'qdisc', 'show', 'dev', 'eth0'])).stdout).toMatch(/clsact/);
  });

  it('priorities order clsact filters: lower runs first', async () => {
    using obj = await BpfObject.load(OBJ);
    using pa = obj.tcProgram('tc_order_a');
    using pb = obj.tcProgram('tc_order_b');
    using order = obj.map('order', { key: u32, value: u64 });
    using la = pa.attach('eth0', { direction: 'ingress', netns: b.netns, kind: 'clsact', priority: 20 });
    using lb = pb.attach('eth0', { direction: 'ingress', netns: b.netns, kind: 'clsact', priority: 10 });
    expect((await tcFilters('ingress')).map((f) => [f.pref, f.progId])).toEqual([
      [10, pb.info.id],
      [20, pa.info.id],
    ]);
    expect((await a.ping('198.18.3.2', { count: 3, intervalMs: 20 })).received).toBe(3);
    const keys = [...order].map(([k]) => k).sort();
    expect(keys).toEqual([0x2, 0x21]);
    expect(() => pa.attach('eth0', { direction: 'ingress', netns: b.netns, kind: 'clsact', priority: 10, handle: lb.filterHandle! })).toThrow(
      expect.objectContaining({ code: 'ERR_EXISTS' }),
    );
    la.close();
    lb.close();
    expect(await tcFilters('ingress')).toEqual([]);
  });
});

describe('bad input: typed errors before any kernel change', () => {
  it('interface, namespace, direction, kind and option mix-ups', async () => {
    using obj = await BpfObject.load(OBJ);
    using prog = obj.tcProgram('tc_mark');
    using other = obj.tcProgram('tc_mark_alt');
    const ns = b.netns;
    expect(() => prog.attach('nosuch0', { direction: 'ingress', netns: ns })).toThrow(expect.objectContaining({ code: 'ERR_NO_SUCH_INTERFACE', errno: 19 }));
    expect(() => prog.attach('nosuch0', { direction: 'ingress', netns: ns, kind: 'clsact' })).toThrow(
      expect.objectContaining({ code: 'ERR_NO_SUCH_INTERFACE' }),
    );
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: 'bk-no-such-ns' })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    expect(() => prog.attach('eth0', { direction: 'sideways' as never, netns: ns })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'direction' }),
    );
    expect(() => prog.attach('eth0', undefined as never)).toThrow(expect.objectContaining({ field: 'direction' }));
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, kind: 'tc' as never })).toThrow(expect.objectContaining({ field: 'kind' }));
    expect(() => prog.attach('bad name!', { direction: 'ingress', netns: ns })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'interface' }),
    );
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, before: 'all', after: 'all' })).toThrow(expect.objectContaining({ field: 'before' }));
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, before: 42 as never })).toThrow(expect.objectContaining({ field: 'before' }));
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, kind: 'clsact', after: other })).toThrow(expect.objectContaining({ field: 'after' }));
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, kind: 'tcx', priority: 5 })).toThrow(expect.objectContaining({ field: 'priority' }));
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, kind: 'clsact', priority: 70000 })).toThrow(
      expect.objectContaining({ field: 'priority' }),
    );
    expect(() => prog.attach('eth0', { direction: 'ingress', netns: ns, after: { programId: -1 } })).toThrow(
      expect.objectContaining({ field: 'after.programId' }),
    );
    {
      using cl = other.attach('eth0', { direction: 'egress', netns: ns, kind: 'clsact' });
      expect(() => prog.attach('eth0', { direction: 'egress', netns: ns, before: cl })).toThrow(expect.objectContaining({ field: 'before' }));
    }
    expect(tcxProgs('ingress')).toEqual([]);
    expect(tcxProgs('egress')).toEqual([]);
    expect(await tcFilters('ingress')).toEqual([]);
    expect(await tcFilters('egress')).toEqual([]);
    // a closed link and a non-TC program
    const l = prog.attach('eth0', { direction: 'ingress', netns: ns });
    l.close();
    l.close();
    expect(() => l.info).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(() => l.replace(other)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    using xdp = await BpfObject.load(`${packageRoot()}/build/bpf/counter.bpf.o`);
    expect(() => xdp.tcProgram('xdp_count')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'program' }));
    expect(xdp.program('xdp_count')).toBeInstanceOf(XdpProgram);
    expect(obj.program('tc_empty')).toBeInstanceOf(TcProgram);
    expect(() => l.replace(xdp.xdpProgram('xdp_count') as never)).toThrow(expect.objectContaining({ field: 'program' }));
  });
});

describe('lifetime', () => {
  const childAttach = (kind: 'tcx' | 'clsact') =>
    nodeChild(`
    const obj = await m.BpfObject.load('${OBJ}');
    (() => { obj.tcProgram('tc_empty').attach('eth0', { direction: 'egress', kind: '${kind}', netns: '${b.netns}' }); })();
    say('attached');
    await wait();
    for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
    say('collected');
    await wait();
    globalThis.keep = obj.tcProgram('tc_empty').attach('eth0', { direction: 'egress', kind: '${kind}', netns: '${b.netns}' });
    say('attached again');
    await wait();
    process.exit(0);
  `);
  const attached = async (kind: 'tcx' | 'clsact') => (kind === 'tcx' ? tcxProgs('egress').length : (await tcFilters('egress')).length);

  for (const kind of ['tcx', 'clsact'] as const) {
    it(`${kind}: dropped without close() it detaches when garbage collected, and at process exit`, async () => {
      const c = childAttach(kind);
      try {
        expect(await c.next()).toBe('attached');
        expect(await attached(kind)).toBe(1);
        c.p.stdin!.write('gc\n');
        expect(await c.next()).toBe('collected');
        expect(await attached(kind)).toBe(0);
        c.p.stdin!.write('again\n');
        expect(await c.next()).toBe('attached again');
        expect(await attached(kind)).toBe(1);
        c.p.stdin!.write('exit\n');
        expect(await c.exited).toBe(0);
        expect(await attached(kind)).toBe(0);
      } finally {
        c.p.kill('SIGKILL');
      }
    });
  }
});

describe('testRun fixtures (BPF_PROG_TEST_RUN with __sk_buff)', () => {
  const frame = udpFrame({ src: '198.18.3.1', dst: '198.18.3.2', sport: 5, dport: 7, payload: 'hello' });

  it('mark, priority, ifindex and cb go in; the program changes come back; verdict by name', async () => {
    using obj = await BpfObject.load(OBJ, { globals: { verdict: tcVerdictCode('shot'), mark_add: 1 } });
    using prog = obj.tcProgram('tc_ctx');
    const r = await prog.testRun(frame, { mark: 41, priority: 3, cb: [9, 9, 9, 9, 11], iface: 'eth0', ingress: 'eth0', netns: b.netns });
    const ifindex = await b.ifindex('eth0');
    expect(r.verdict).toBe('shot');
    expect(r.retval).toBe(2);
    expect(r.ctx).toEqual({ mark: 42, priority: 7, ifindex, ingressIfindex: ifindex, cb: [ifindex, ifindex, 0, 9, 11], wireLen: frame.length });
    expect(r.packet.equals(frame)).toBe(true);
    // no metadata area in a skb test run (cb[2] = data - data_meta)
    expect(r.ctx.cb[2]).toBe(0);
  });

  it('counts every repetition; TC_ACT_UNSPEC comes back as unspec', async () => {
    using obj = await BpfObject.load(OBJ, { globals: { verdict: -1, mark: 0x10 } });
    using prog = obj.tcProgram('tc_mark');
    using counters = obj.perCpuMap('counters', { key: u32, value: counter });
    const r = await prog.testRun(frame, { repeat: 1000 });
    expect(r.verdict).toBe('unspec');
    expect(r.retval).toBe(-1);
    expect(r.ctx.mark).toBe(0x10);
    expect(sum(counters.get(0))).toBe(1000);
  });

  it('verdict names and bad input', async () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map(tcVerdictName)).toEqual(['ok', 'reclassify', 'shot', 'pipe', 'stolen', 'queued', 'repeat', 'redirect', 'trap']);
    expect(tcVerdictName(0xffffffff)).toBe('unspec');
    expect(tcVerdictName(99)).toBe('unknown(99)');
    expect(tcVerdictCode('redirect')).toBe(7);
    expect(() => tcVerdictCode('nope' as never)).toThrow(expect.objectContaining({ field: 'verdict' }));
    using obj = await BpfObject.load(OBJ);
    using prog = obj.tcProgram('tc_empty');
    expect((await prog.testRun(frame)).verdict).toBe('ok');
    await expect(prog.testRun(Buffer.alloc(10))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'packet' });
    await expect(prog.testRun(frame, { cb: [1, 2, 3, 4, 5, 6] })).rejects.toMatchObject({ field: 'cb' });
    await expect(prog.testRun(frame, { mark: -1 })).rejects.toMatchObject({ field: 'mark' });
    await expect(prog.testRun(frame, { repeat: 0 })).rejects.toMatchObject({ field: 'repeat' });
    await expect(prog.testRun(frame, { iface: 'nosuch0', netns: b.netns })).rejects.toMatchObject({ code: 'ERR_NO_SUCH_INTERFACE' });
  });
});
