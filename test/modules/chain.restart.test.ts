/**
 * A pinned ServiceChainer changes hands without a marking gap. On the four-host path
 * (client C -> router R -> service S -> R -> upstream U; see chain.path.test.ts) a child
 * Node process running the built library (dist/) attaches the chainer with `pin`; while C
 * floods UDP, a second child adopts it (attach with the same pin), the first exits, and
 * after the flood the second detaches. Every datagram must go through S exactly once and
 * then to U: nftables counters at S's and U's ingress count them by TTL (C sends 64; via
 * S a datagram reaches U with 61, unsteered with 63). One unmarked packet during the
 * hand-over would show up as a 63 at U, one lost as a shortfall.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ServiceChainer, XdpPipeline, type ChainAttachOptions } from '../../lib/index.js';
import type { Lab, LabHost, LabLink } from '../../lib/lab/index.js';
import { ensureDist, ROOT } from '../helpers/dist.js';
import { xdpProgId as xdpProgIdOf } from '../helpers/iproute.js';
import { chainLab, chainOptions, countedByTtl, DST as DSTS, SRC as SRCS, type ChainLab } from './chain.topology.js';

const PIN = `/sys/fs/bpf/bpfkit-test-chain-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
const PORT = 7200;
const DST = DSTS.v4;
const SRC = SRCS.v4[0];
const FLOOD = 30_000;

let lab: Lab;
let c: LabHost;
let r: LabHost;
let s: LabHost;
let u: LabHost;
let cr: LabLink;
let sr: LabLink;
let t: ChainLab;
const children: ChildProcess[] = [];

/** U's / S's witness, IPv4 by TTL: { t61: n, ... } (61: via S; 63: one hop). */
async function counted(h: LabHost): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries((await countedByTtl(h)).v4).map(([ttl, n]) => [`t${ttl}`, n]));
}

const xdpProgId = (dev: string) => xdpProgIdOf(r.netns, dev);

const CHILD = `
import { ServiceChainer } from ${JSON.stringify(join(ROOT, 'dist', 'index.js'))};
import { createInterface } from 'node:readline';
const cfg = JSON.parse(process.env.CHAIN_CHILD);
const chain = await ServiceChainer.attach(cfg.ifaces, cfg.opts);
const st = chain.stats();
console.log(JSON.stringify({ ready: true, adopted: chain.adopted, progId: chain.program.info.id, fw: String(st.services[0].packets) }));
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'close') { await chain.close(); console.log(JSON.stringify({ closed: true })); process.exit(0); }
  if (line === 'detach') { await chain.detach(); console.log(JSON.stringify({ detached: true })); process.exit(0); }
}
`;

/** A child that attaches (or adopts) the chainer; commands on stdin, JSON lines on stdout. */
function child(opts: ChainAttachOptions) {
  const p = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, CHAIN_CHILD: JSON.stringify({ ifaces: [cr.b.ifname, sr.b.ifname], opts }) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(p);
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
  const next = async (): Promise<Record<string, unknown>> => {
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    try {
      const { value } = await lines.next();
      if (value === undefined) throw new Error('child ended without an answer');
      return JSON.parse(value as string) as Record<string, unknown>;
    } finally {
      clearTimeout(t);
    }
  };
  return { p, next, exited, say: (cmd: string) => p.stdin!.write(`${cmd}\n`) };
}

beforeAll(async () => {
  ensureDist();
  t = await chainLab('chain-restart', { port: PORT, v6: false });
  ({ lab, c, r, s, u, cr, sr } = t);
}, 240_000);
afterAll(async () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  // a failed run may leave the chainer pinned: detach it before the namespaces go
  if (existsSync(PIN)) await (await ServiceChainer.adopt(PIN, { netns: r.netns }).catch(() => undefined))?.detach();
  await lab?.close();
  rmSync(PIN, { recursive: true, force: true });
});

const opts = (): ChainAttachOptions =>
  chainOptions(t, {
    rules: [
      { id: 'back-from-fw', iface: sr.b.ifname, action: 'upstream', priority: 10 },
      { id: 'clients', iface: cr.b.ifname, action: 'fw' },
    ],
    pin: PIN,
  });

const ipState = async () => ({ rules: await r.ip(['rule', 'show']), routes: await r.ip(['route', 'show', 'table', 'all']) });

describe('ServiceChainer pinned adoption', () => {
  it('a second process adopts under a live flood, the first exits: every datagram through the service exactly once, then upstream', async () => {
    const before = await ipState();
    await c.ping(DST, { count: 1, src: SRC, timeoutMs: 3000 }); // neighbours resolved (ICMP: not counted)
    const a = child(opts());
    const ra = await a.next();
    expect(ra).toMatchObject({ ready: true, adopted: false });
    // pinned state is root's alone: the directory 0700, every pin 0600
    expect(statSync(PIN).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(PIN)) expect(statSync(join(PIN, f)).mode & 0o777, f).toBe(0o600);
    const progId = xdpProgId(cr.b.ifname);
    expect(progId).toBe(ra.progId);

    let floodDone = false;
    const flood = c.sendUdp(DST, PORT, { count: FLOOD, src: SRC, sport: 42000 }).finally(() => (floodDone = true));
    flood.catch(() => undefined); // awaited below
    for (let i = 0; i < 200 && ((await counted(u)).t61 ?? 0) < 500; i++) await new Promise((res) => setTimeout(res, 10));

    const b = child(opts()); // the same pin: adopts
    const rb = await b.next();
    expect(rb).toMatchObject({ ready: true, adopted: true, progId });
    expect(BigInt(rb.fw as string)).toBeGreaterThan(0n); // the counters came with it
    a.say('close');
    expect(await a.next()).toEqual({ closed: true });
    expect(await a.exited).toBe(0);
    const midFlood = !floodDone;
    // the first process is gone: its pinned program still runs, unchanged
    expect(xdpProgId(cr.b.ifname)).toBe(progId);
    expect(xdpProgId(sr.b.ifname)).toBeGreaterThan(0);

    const { sent, failed } = await flood;
    expect(failed).toBe(0);
    for (let i = 0; i < 100 && ((await counted(u)).t61 ?? 0) < sent; i++) await new Promise((res) => setTimeout(res, 50));
    await new Promise((res) => setTimeout(res, 100));
    // exact accounting: every datagram passed S once (TTL 63 there) and reached U via S (61)
    expect(await counted(s)).toEqual({ t63: sent });
    expect(await counted(u)).toEqual({ t61: sent });
    expect(midFlood, 'the hand-over happened while the flood ran').toBe(true);

    b.say('detach');
    expect(await b.next()).toEqual({ detached: true });
    expect(await b.exited).toBe(0);
    expect(existsSync(PIN)).toBe(false);
    expect(xdpProgId(cr.b.ifname)).toBeUndefined();
    expect(xdpProgId(sr.b.ifname)).toBeUndefined();
    expect(await ipState()).toEqual(before);
  }, 120_000);

  it('in one process: close() leaves a pinned chainer running; adopt() takes it back with its rules and counters; what cannot change is refused', async () => {
    const before = await ipState();
    const first = await ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts());
    expect(first.status).toMatchObject({ pin: PIN, routes: 2 });
    await c.sendUdp(DST, PORT, { count: 10, src: SRC });
    await first.close();
    expect(existsSync(PIN)).toBe(true);
    expect(xdpProgId(cr.b.ifname)).toBeGreaterThan(0); // still attached
    expect(await ipState()).not.toEqual(before); // the routes stay with it

    const { pin: _p, netns: _n, ...rest } = opts();
    await expect(ServiceChainer.attach([cr.b.ifname, sr.b.ifname], { ...opts(), upstream: { ...rest.upstream, table: 121 } })).rejects.toMatchObject({
      field: 'upstream',
    });
    await expect(ServiceChainer.attach([cr.b.ifname], opts())).rejects.toMatchObject({ field: 'interface' });
    await expect(ServiceChainer.adopt('relative/dir')).rejects.toMatchObject({ field: 'pin' });
    await expect(ServiceChainer.adopt(`${PIN}-none`)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND', field: 'pin' });

    const again = await ServiceChainer.adopt(PIN, { netns: r.netns });
    try {
      expect(again.adopted).toBe(true);
      expect(again.rules).toEqual(rest.rules);
      expect(again.services).toEqual(rest.services);
      const st = again.stats();
      expect(st.services[0]!.packets).toBeGreaterThanOrEqual(10n);
      expect(st.rules.find((x) => x.id === 'back-from-fw')!.packets).toBeGreaterThanOrEqual(10n);
      // the adopter owns it: an update, then a fresh adoption sees the new set
      await again.update({ rules: [{ id: 'all-up', iface: cr.b.ifname, action: 'upstream' }] });
      await c.sendUdp(DST, PORT, { count: 5, src: SRC });
      expect(again.stats().upstream.packets).toBeGreaterThanOrEqual(5n);
      await again.close();
      const third = await ServiceChainer.adopt(PIN, { netns: r.netns });
      expect(third.rules).toEqual([{ id: 'all-up', iface: cr.b.ifname, action: 'upstream' }]);
      await third.detach();
    } finally {
      await again.detach().catch(() => undefined);
    }
    expect(existsSync(PIN)).toBe(false);
    expect(await ipState()).toEqual(before);
  });

  it('a pinned attach that fails (the second interface is taken) leaves nothing: no pins, no routes, no programs', async () => {
    const before = await ipState();
    const other = await XdpPipeline.attach(sr.b.ifname, { netns: r.netns });
    try {
      await expect(ServiceChainer.attach([cr.b.ifname, sr.b.ifname], opts())).rejects.toBeDefined();
      expect(existsSync(PIN)).toBe(false);
      expect(xdpProgId(cr.b.ifname)).toBeUndefined();
      expect(await ipState()).toEqual(before);
    } finally {
      other.close();
    }
  });
});
