/**
 * Lifetime: kernel objects held by the addon are released whatever the user does —
 * close twice, close while loading, drop a link without closing it (GC), exit the
 * process with handles open. Children run the built library (dist/) so the parent can
 * watch the kernel from outside with iproute2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeChild as child } from '../helpers/node-child.js';
import { BpfObject } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';

let lab: Lab;
let b: LabHost;
beforeAll(async () => {
  lab = await Lab.create({ name: 'core-lifetime' });
  const a = await lab.host('a');
  b = await lab.host('b');
  await lab.link(a, b, { aAddrs: ['198.18.1.1/24'], bAddrs: ['198.18.1.2/24'] });
});
afterAll(async () => {
  await lab?.close();
});

async function xdpProgId(h: LabHost): Promise<number | undefined> {
  const [l] = JSON.parse(await h.ip(['-d', '-j', 'link', 'show', 'eth0'])) as { xdp?: { prog?: { id: number } } }[];
  return l!.xdp?.prog?.id;
}

describe('lifetime of kernel objects', () => {
  it('a link dropped without close() is detached when garbage collected', async () => {
    const c = child(`
      const obj = await m.BpfObject.openBuiltin('counter').load();
      (() => { obj.xdpProgram('xdp_count').attach('eth0', { netns: '${b.netns}' }); })();
      say('attached');
      await new Promise((r) => process.stdin.once('data', r));
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
      say('collected');
      await new Promise((r) => process.stdin.once('data', r));
    `);
    try {
      expect(await c.next()).toBe('attached');
      expect(await xdpProgId(b)).toBeGreaterThan(0);
      c.p.stdin!.write('gc\n');
      expect(await c.next()).toBe('collected');
      expect(await xdpProgId(b)).toBeUndefined();
    } finally {
      c.p.stdin!.end('bye\n');
      await c.exited;
    }
  });

  it('a process that exits (or is killed) with an open link leaves nothing attached', async () => {
    const c = child(`
      const obj = await m.BpfObject.openBuiltin('counter').load();
      globalThis.keep = obj.xdpProgram('xdp_count').attach('eth0', { netns: '${b.netns}' });
      say('attached');
      setInterval(() => {}, 1000);
    `);
    expect(await c.next()).toBe('attached');
    expect(await xdpProgId(b)).toBeGreaterThan(0);
    c.p.kill('SIGKILL');
    await c.exited;
    expect(await xdpProgId(b)).toBeUndefined();
  });

  it('close() twice, and close() while load() runs, are safe', async () => {
    const obj = BpfObject.openBuiltin('counter');
    const loading = obj.load();
    obj.close();
    obj.close();
    await loading.catch(() => undefined);
    expect(() => obj.program('xdp_count')).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    using o2 = await BpfObject.openBuiltin('counter').load();
    const p = o2.xdpProgram('xdp_count');
    const l = p.attach('eth0', { netns: b.netns });
    l.close();
    l.close();
    p.close();
    p.close();
    expect(() => p.info).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(await xdpProgId(b)).toBeUndefined();
  });
});
