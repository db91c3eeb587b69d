/**
 * One namespace argument for every call: a name, a path or an open fd reach the same
 * namespace for XDP (attach, testRun's ingress lookup) and routing alike; bad ones are
 * ERR_INVALID_ARGUMENT naming 'netns' before anything is attached. The interface in the
 * lab namespace has a name that exists nowhere else, so a call that looked in the wrong
 * namespace fails.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, IpRule, type NetnsRef } from '../../lib/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { udpFrame } from '../helpers/packets.js';

const IFACE = 'bknsfd0';

let lab: Lab;
let a: LabHost;
let b: LabHost;
beforeAll(async () => {
  lab = await Lab.create({ name: 'core-netns' });
  a = await lab.host('a');
  b = await lab.host('b');
  await lab.link(a, b, { aName: 'eth0', bName: IFACE, aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
});
afterAll(async () => {
  await lab?.close();
});

async function link(h: LabHost): Promise<{ ifindex: number; xdp?: { prog?: { id: number } } }> {
  const [l] = JSON.parse(await h.ip(['-d', '-j', 'link', 'show', IFACE])) as { ifindex: number; xdp?: { prog?: { id: number } } }[];
  return l!;
}

function thrown(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError, nothing was thrown');
}

describe('netns given as an open fd', () => {
  it('XDP attaches in the fd namespace, the link outlives the fd, testRun finds the interface there', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using prog = obj.xdpProgram('xdp_count');
    const before = await link(b);
    expect(before.xdp).toBeUndefined();
    const fd = openSync(b.netnsPath, 'r');
    let closed = false;
    try {
      using l = prog.attach(IFACE, { mode: 'native', netns: fd });
      expect(l.ifindex).toBe(before.ifindex);
      expect(l.netns).toBe(`/proc/self/fd/${fd}`);
      expect((await link(b)).xdp?.prog?.id).toBe(prog.info.id);

      const r = await prog.testRun(udpFrame({ src: '198.18.0.1', dst: '198.18.0.2', sport: 1, dport: 2 }), { ingress: IFACE, netns: fd });
      expect(r.action).toBe('pass');

      // same namespace through a path: the attachment is already there
      expect(thrown(() => prog.attach(IFACE, { mode: 'native', netns: b.netnsPath })).code).toBe('ERR_BUSY');

      closeSync(fd);
      closed = true;
      expect((await link(b)).xdp?.prog?.id).toBe(prog.info.id); // attached to the interface, not to the fd
    } finally {
      if (!closed) closeSync(fd);
    }
    expect((await link(b)).xdp).toBeUndefined(); // `using` detached it
  });

  it('a bad fd or name is ERR_INVALID_ARGUMENT naming netns, before anything is attached', async () => {
    using obj = await BpfObject.load(join(packageRoot(), 'build/bpf/counter.bpf.o'));
    using prog = obj.xdpProgram('xdp_count');
    const closedFd = openSync(b.netnsPath, 'r');
    closeSync(closedFd);
    const notNs = openSync(join(packageRoot(), 'package.json'), 'r');
    try {
      const bad: NetnsRef[] = [-1, 2.5, closedFd, notNs, '../etc', 'a/b', '..'];
      for (const netns of bad) {
        const e = thrown(() => prog.attach(IFACE, { mode: 'native', netns }));
        expect([e.code, e.field], String(netns)).toEqual(['ERR_INVALID_ARGUMENT', 'netns']);
        await expect(prog.testRun(Buffer.alloc(64), { ingress: IFACE, netns })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'netns' });
        await expect(IpRule.list({ netns })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'netns' });
      }
      expect((await link(b)).xdp).toBeUndefined();
      // a well-formed name that does not exist is the addon's ERR_NOT_FOUND
      expect(thrown(() => prog.attach(IFACE, { netns: 'bk-no-such-namespace' })).code).toBe('ERR_NOT_FOUND');
    } finally {
      closeSync(notNs);
    }
  });
});
