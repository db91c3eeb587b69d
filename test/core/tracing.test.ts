/**
 * TracingProgram / TracingLink on the real kernel: tp_btf, raw_tp and tracepoint programs
 * counting receives and drops caused by real packets in a lab namespace; pin, close, GC and
 * process death as lifetimes (bpftool as witness); kprobe and fentry attachments refused
 * with ERR_UNSUPPORTED where the kernel lacks them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpfObject,
  BpfkitError,
  TracingLink,
  TracingProgram,
  dropReasonNamer,
  kernelEnum,
  kernelHasTracepoint,
  struct,
  tracingSection,
  tracingSupport,
  u32,
  u64,
} from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { nodeChild } from '../helpers/node-child.js';
import { bpftoolProgExists } from '../helpers/bpftool.js';
import { testObject } from '../helpers/objects.js';

const OBJ = testObject('tracing_test');
const C_RECEIVE_TP_BTF = 0;
const C_KFREE_RAW_TP = 1;
const C_RECEIVE_TRACEPOINT = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dropKey = struct('drop_key', { netns: u32, reason: u32 });

let lab: Lab;
let a: LabHost;
let b: LabHost;
let bIno: number;
beforeAll(async () => {
  lab = await Lab.create({ name: 'core-trace' });
  a = await lab.host('a');
  b = await lab.host('b');
  await lab.link(a, b, { aAddrs: ['198.18.5.1/24'], bAddrs: ['198.18.5.2/24'] });
  bIno = statSync(b.netnsPath).ino;
  await a.ping('198.18.5.2', { count: 1 }); // neighbours resolved: later sends are all data
});
afterAll(async () => {
  await lab?.close();
});

/** bpftool's view of a link id (undefined: no such link). */
function bpftoolLink(id: number): { id: number; prog_id: number } | undefined {
  try {
    return JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'id', String(id)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as {
      id: number;
      prog_id: number;
    };
  } catch {
    return undefined;
  }
}
/** Waits (bounded) until `cond` holds; returns whether it did. */
async function until(cond: () => boolean, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

async function loadCounters() {
  const obj = await BpfObject.load(OBJ, { globals: { target_netns: bIno } });
  const counts = obj.map('counts', { key: u32, value: u64 });
  const drops = obj.map('drops', { key: dropKey, value: u64 });
  return { obj, counts, count: (slot: number) => Number(counts.get(slot) ?? 0n), drops };
}

describe('sections and kernel facts', () => {
  it('names the kind and target of each libbpf section', () => {
    expect(tracingSection('tp_btf/kfree_skb')).toEqual({ kind: 'tp_btf', target: 'kfree_skb' });
    expect(tracingSection('raw_tp/kfree_skb')).toEqual({ kind: 'raw_tp', target: 'kfree_skb' });
    expect(tracingSection('tracepoint/net/netif_receive_skb')).toEqual({ kind: 'tracepoint', target: 'net/netif_receive_skb' });
    expect(tracingSection('kretprobe/udp_rcv')).toEqual({ kind: 'kretprobe', target: 'udp_rcv' });
    expect(tracingSection('fentry.s/udp_rcv')).toEqual({ kind: 'fentry', target: 'udp_rcv' });
    expect(tracingSection('xdp')).toBeUndefined();
  });

  it('reads the kernel enum skb_drop_reason from BTF and names reasons by it', () => {
    const e = kernelEnum('skb_drop_reason');
    expect(e).not.toBeNull();
    const noSocket = [...e!].find(([, n]) => n === 'SKB_DROP_REASON_NO_SOCKET');
    expect(noSocket).toBeDefined();
    expect(dropReasonNamer()(noSocket![0])).toBe('NO_SOCKET');
    expect(dropReasonNamer()(0x7fff_fff0)).toBe('unknown(2147483632)');
    expect(kernelEnum('no_such_enum_in_any_kernel')).toBeNull();
    expect(kernelHasTracepoint('kfree_skb')).toBe(true);
    expect(kernelHasTracepoint('no_such_tracepoint_anywhere')).toBe(false);
    expect(() => kernelEnum('bad name')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'name' }));
  });

  it('tracingSupport() reports each kind, with a sentence per missing one', () => {
    const s = tracingSupport();
    expect(s.tpBtf).toBe(true);
    expect(s.rawTp).toBe(true);
    expect(typeof s.kprobe).toBe('boolean');
    expect(typeof s.fentry).toBe('boolean');
    expect(s.missing.some((m) => m.startsWith('kprobe'))).toBe(!s.kprobe);
    expect(s.missing.some((m) => m.startsWith('fentry'))).toBe(!s.fentry);
  });
});

describe('tp_btf and raw_tp programs on real packets', () => {
  it('count receives (tp_btf) and drops (raw_tp) that packets to a closed UDP port cause in the lab namespace; drops per reason and namespace from tp_btf', async () => {
    const { obj, count, drops } = await loadCounters();
    try {
      const recv = obj.tracingProgram('count_receive');
      expect(recv).toBeInstanceOf(TracingProgram);
      expect([recv.kind, recv.target, recv.type]).toEqual(['tp_btf', 'netif_receive_skb', 'tracing']);
      const kfree = obj.program('count_kfree') as TracingProgram;
      expect([kfree.kind, kfree.target, kfree.type]).toEqual(['raw_tp', 'kfree_skb', 'raw_tracepoint']);
      using l1 = recv.attach();
      using l2 = kfree.attach();
      using l3 = obj.tracingProgram('drops_by_reason').attach();
      expect(l1.info.progId).toBe(recv.info.id);
      expect(bpftoolLink(l2.info.id)?.prog_id).toBe(kfree.info.id);
      expect(count(C_RECEIVE_TP_BTF)).toBe(0);
      const sent = await a.sendUdp('198.18.5.2', 9, { count: 50 }); // nobody listens on port 9 in b
      expect(sent.sent).toBe(50);
      expect(await until(() => count(C_RECEIVE_TP_BTF) >= 50 && count(C_KFREE_RAW_TP) >= 50)).toBe(true);
      const name = dropReasonNamer();
      const inB = [...drops].filter(([k]) => k.netns === bIno).map(([k, v]) => [name(k.reason), Number(v)] as const);
      expect(inB.find(([r]) => r === 'NO_SOCKET')?.[1]).toBeGreaterThanOrEqual(50);
      void l3;
    } finally {
      obj.close();
    }
  });

  it('close() detaches: later packets are not counted and bpftool no longer lists the link', async () => {
    const { obj, count } = await loadCounters();
    try {
      const link = obj.tracingProgram('count_receive').attach();
      const id = link.info.id;
      expect(bpftoolLink(id)).toBeDefined();
      link.close();
      link.close(); // twice is fine
      expect(link.closed).toBe(true);
      expect(() => link.info).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
      expect(bpftoolLink(id)).toBeUndefined();
      // the program saw the whole machine while attached (other suites' packets too): what it
      // counted by close() stays, and nothing after it may add to that
      const atClose = count(C_RECEIVE_TP_BTF);
      await a.sendUdp('198.18.5.2', 9, { count: 20 });
      await sleep(50);
      expect(count(C_RECEIVE_TP_BTF)).toBe(atClose);
    } finally {
      obj.close();
    }
  });

  it('a pinned link stays attached after close(), reopens by path, and goes with its pin and last handle', async () => {
    const dir = `/sys/fs/bpf/bpfkit-test-trace-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    const { obj, count } = await loadCounters();
    try {
      const link = obj.tracingProgram('count_receive').attach();
      const id = link.info.id;
      link.pin(`${dir}/recv`);
      link.close();
      await a.sendUdp('198.18.5.2', 9, { count: 10 });
      expect(await until(() => count(C_RECEIVE_TP_BTF) >= 10)).toBe(true);
      const again = TracingLink.openPinned(`${dir}/recv`);
      expect(again.info.id).toBe(id);
      // raw tracepoint links cannot be force-detached on kernels up to at least 6.18
      let detached = true;
      try {
        again.detach();
      } catch (e) {
        expect(e).toMatchObject({ code: 'ERR_UNSUPPORTED', errno: 95 });
        detached = false;
      }
      if (detached) expect(bpftoolLink(id)?.prog_id ?? 0).toBe(0);
      rmSync(`${dir}/recv`);
      again.close();
      expect(bpftoolLink(id)).toBeUndefined();
      expect(() => TracingLink.openPinned(`${dir}/nothing`)).toThrow(BpfkitError);
    } finally {
      obj.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a link dropped without close() detaches when garbage collected; SIGKILL of its process detaches it too', async () => {
    const c = nodeChild(`
      const obj = await m.BpfObject.load('${OBJ}');
      let id = 0;
      (() => { id = obj.tracingProgram('count_receive').attach().info.id; })();
      say(String(id));
      await wait();
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
      say('collected');
      globalThis.keep = obj.tracingProgram('count_kfree').attach();
      say(keep.info.id + ' ' + keep.info.progId);
      await wait();
    `);
    try {
      const id = Number(await c.next());
      expect(bpftoolLink(id)).toBeDefined();
      c.p.stdin!.write('gc\n');
      expect(await c.next()).toBe('collected');
      expect(await until(() => bpftoolLink(id) === undefined)).toBe(true);
      const [kept, prog] = (await c.next())!.split(' ').map(Number) as [number, number];
      expect(bpftoolLink(kept)).toBeDefined();
      c.p.kill('SIGKILL');
      await c.exited;
      expect(await until(() => bpftoolLink(kept) === undefined && !bpftoolProgExists(prog))).toBe(true);
    } finally {
      c.p.kill('SIGKILL');
    }
  });

  it('refuses bad input before touching the kernel', async () => {
    const { obj } = await loadCounters();
    try {
      const p = obj.tracingProgram('count_kfree');
      expect(() => p.attach({ target: 'bad/target/x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'target' }));
      expect(() => p.attach({ cookie: 1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'cookie' }));
      expect(() => obj.tracingProgram('count_receive').attach({ target: 'consume_skb' })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'target' }),
      );
      expect(() => p.attach({ target: 'no_such_tracepoint_here' })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    } finally {
      obj.close();
    }
    const xdp = await BpfObject.load(testObject('tc_test'));
    try {
      const name = xdp.programs.find((s) => s.type === 'sched_cls')!.name;
      expect(() => xdp.tracingProgram(name)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'program' }));
    } finally {
      xdp.close();
    }
  });
});

describe('tracepoint programs (perf event + tracefs)', () => {
  it('without tracefs: ERR_UNSUPPORTED naming tracefs; with it: counts receives', async () => {
    const { obj, count } = await loadCounters();
    let mounted = false;
    try {
      const p = obj.tracingProgram('count_receive_tracepoint');
      expect(p.kind).toBe('tracepoint');
      if (!tracingSupport().tracefs) {
        expect(() => p.attach()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/tracefs is not mounted/) }));
        execFileSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
        mounted = true;
      }
      expect(tracingSupport().tracefs).not.toBeNull();
      using link = p.attach({ cookie: 7 });
      expect(link.info.type).toBe('perf_event');
      await a.sendUdp('198.18.5.2', 9, { count: 20 });
      expect(await until(() => count(C_RECEIVE_TRACEPOINT) >= 20)).toBe(true);
    } finally {
      obj.close();
      if (mounted && existsSync('/sys/kernel/tracing/events')) execFileSync('umount', ['/sys/kernel/tracing']);
    }
  });
});

describe('kprobe and fentry: feature-probed', () => {
  it('kprobe/kretprobe attach where the kernel has kprobes, else ERR_UNSUPPORTED naming the missing kprobe PMU', async () => {
    // On a kernel with kprobes (CONFIG_KPROBE_EVENTS) both attach and count udp_rcv calls.
    const obj = await BpfObject.load(testObject('tracing_kprobe'));
    try {
      for (const name of ['on_udp_rcv', 'on_udp_rcv_ret']) {
        const p = obj.tracingProgram(name);
        if (tracingSupport().kprobe) {
          p.attach().close();
        } else {
          expect(() => p.attach()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/no kprobes/) }));
        }
      }
    } finally {
      obj.close();
    }
  });

  it('fentry/fexit load and attach where the kernel allows trampolines, else ERR_UNSUPPORTED (not EPERM) at load', async () => {
    // On a kernel with BPF trampolines both load and attach; here (EPERM) the load is refused.
    if (tracingSupport().fentry) {
      const obj = await BpfObject.load(testObject('tracing_fentry'));
      obj.tracingProgram('enter_udp_rcv').attach().close();
      obj.close();
      return;
    }
    const err = await BpfObject.load(testObject('tracing_fentry')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNSUPPORTED', errno: 1, message: expect.stringMatching(/BPF trampolines/) });
    expect((err as Error).message).toContain("'enter_udp_rcv' (fentry/udp_rcv)");
  });
});
