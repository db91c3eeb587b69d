/**
 * AclFirewall rule-set writes through the blob maps' mappings: the blob maps are
 * BPF_F_MMAPABLE (both alike, as map-in-map requires), a swap writes the new set's bytes
 * and zeroes what that blob's previous set used beyond them (no stale bytes remain), the
 * program judges by what was written, and a process adopting a pinned firewall, which
 * cannot know how far either blob was written, zeroes a blob's whole tail on its first
 * write. Blob maps that cannot be mapped (pinned by an older version, without the flag)
 * are written whole with BPF_MAP_UPDATE, with the same guarantees. The witness reads the blobs with BPF_MAP_LOOKUP_ELEM through separate pinned
 * handles (not through the firewall's mappings).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AclFirewall, BpfkitError, BpfMap, bytes, u32, type AclRule } from '../../lib/index.js';
import { Lab, type LabLink, type LabHost } from '../../lib/lab/index.js';
import { H_SRC_LEN, H_SRC_OFF, H_USED, H_VERSION } from '../../lib/modules/acl/layout.js';
import { decodeSource } from '../../lib/modules/acl/source.js';
import { xdpProgId } from '../helpers/iproute.js';
import { frame, v4 } from './acl.helpers.js';

const PIN = `/sys/fs/bpf/bpfkit-test-acl-blob-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
const BLOB_BYTES = 2 << 20; // the acl_s variant (maxRules <= 2048)
const BPF_F_MMAPABLE = 1 << 10;

let lab: Lab;
let host: LabHost;
let link: LabLink;
beforeAll(async () => {
  lab = await Lab.create({ name: 'acl-blob' });
  host = await lab.host('fw');
  const peer = await lab.host('peer');
  link = await lab.link(peer, host, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
  await peer.ip(['link', 'set', 'dev', link.a.ifname, 'down']);
});
afterAll(async () => {
  await lab?.close();
  rmSync(PIN, { recursive: true, force: true });
});

/** Many specific rules: a blob of a few hundred KiB. */
function bigSet(n: number, tag: string): AclRule[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}-${i}`,
    action: 'deny' as const,
    src: `198.19.${i >> 8}.${i & 255}/32`,
    proto: 'tcp' as const,
    dstPort: 1000 + (i % 5000),
  }));
}
const small = (port: number): AclRule[] => [{ id: `small-${port}`, action: 'deny', src: '198.18.0.0/24', proto: 'tcp', dstPort: port }];
const tcp = (dport: number) => frame({ src: v4('198.18.0.9'), dst: v4('198.18.0.2'), proto: 6, sport: 40000, dport });

function blobs(): [BpfMap<number, Buffer, number, Uint8Array>, BpfMap<number, Buffer, number, Uint8Array>] {
  const codec = { key: u32, value: bytes(BLOB_BYTES) };
  return [BpfMap.openPinned(join(PIN, 'blob_a'), codec), BpfMap.openPinned(join(PIN, 'blob_b'), codec)];
}

/** Checks a blob read with a lookup: its header's used words, its source, zeros after. */
function checkBlob(v: Buffer, rules: readonly AclRule[] | undefined): number {
  const w = (i: number) => v.readUInt32LE(4 * i);
  const end = w(H_USED) * 4;
  expect(end).toBeGreaterThan(0);
  expect(end).toBeLessThanOrEqual(BLOB_BYTES);
  const off = w(H_SRC_OFF) * 4;
  const src = decodeSource(v, off, w(H_SRC_LEN));
  if (rules) expect(src.rules.map((r: AclRule) => r.id)).toEqual(rules.map((r) => r.id));
  // nothing after the set's own bytes: no stale bytes of an earlier, larger set
  const firstNonZero = v.subarray(end).findIndex((b) => b !== 0);
  expect(firstNonZero).toBe(-1);
  return end;
}

describe('AclFirewall blob writes through the mappings', () => {
  it('blob maps are BPF_F_MMAPABLE; smaller sets leave no stale bytes in either blob; adoption zeroes what it cannot know', async () => {
    const big = bigSet(1800, 'big');
    const fw = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, maxRules: 2048, rules: big });
    let fw2: AclFirewall | undefined;
    const [a, b] = blobs();
    try {
      expect(fw.variant).toBe('acl_s');
      expect(a.info.flags & BPF_F_MMAPABLE).toBe(BPF_F_MMAPABLE);
      expect(b.info.flags).toBe(a.info.flags);
      const bigBytes = fw.compileInfo!.bytes;
      expect(bigBytes).toBeGreaterThan(100_000);
      // first set went to blob b (a was in force... empty); it is read back whole
      expect(checkBlob(b.get(0)!, big)).toBeGreaterThanOrEqual(bigBytes);
      expect((await fw.testRun(tcp(1000))).action).toBe('pass'); // big set: src 198.19.x only

      // a small set into blob a, then into blob b (which held the big set)
      await fw.setRules(small(22));
      checkBlob(a.get(0)!, small(22));
      expect((await fw.testRun(tcp(22))).action).toBe('drop');
      await fw.setRules(small(23));
      const endB = checkBlob(b.get(0)!, small(23));
      expect(endB).toBeLessThan(bigBytes / 10);
      expect((await fw.testRun(tcp(23))).action).toBe('drop');
      expect((await fw.testRun(tcp(22))).action).toBe('pass');

      // big again into a, then adopt from the pins in this process
      const big2 = bigSet(1700, 'big2');
      await fw.setRules(big2);
      checkBlob(a.get(0)!, big2);
      fw.close();
      fw2 = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN });
      expect(fw2.adopted).toBe(true);
      expect(fw2.rules().map((r) => r.id)).toEqual(big2.map((r) => r.id)); // read back through the mapping
      await fw2.setRules(small(24)); // into b
      await fw2.setRules(small(25)); // into a, which held big2: zeroed beyond the new end
      checkBlob(a.get(0)!, small(25));
      checkBlob(b.get(0)!, small(24));
      expect((await fw2.testRun(tcp(25))).action).toBe('drop');
      expect((await fw2.testRun(tcp(24))).action).toBe('pass');
      expect(fw2.generation).toBe(6);
    } finally {
      a.close();
      b.close();
      if (fw2) fw2.detach();
      else fw.detach();
    }
  });

  it('blob maps that cannot be mapped: the whole value is written with BPF_MAP_UPDATE, same guarantees', async () => {
    // what an older pinned firewall's blob maps (no BPF_F_MMAPABLE) answer; the kernel path is
    // real (the rule counters are mapped: a firewall that old has per-CPU ones, read by syscalls)
    const mmap = BpfMap.prototype.mmap;
    const spy = vi.spyOn(BpfMap.prototype, 'mmap').mockImplementation(function (this: BpfMap<unknown, unknown>) {
      if (!this.name.startsWith('acl_blob')) return mmap.call(this);
      throw new BpfkitError('ERR_UNSUPPORTED', `map '${this.name}' was not created with BPF_F_MMAPABLE`);
    });
    let fw: AclFirewall | undefined;
    const big = bigSet(1500, 'old');
    try {
      fw = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, maxRules: 2048, rules: big });
      const [a, b] = blobs();
      try {
        checkBlob(b.get(0)!, big);
        await fw.setRules(small(30)); // a
        await fw.setRules(small(31)); // b, which held the big set
        checkBlob(a.get(0)!, small(30));
        checkBlob(b.get(0)!, small(31));
        expect((await fw.testRun(tcp(31))).action).toBe('drop');
        expect((await fw.testRun(tcp(30))).action).toBe('pass');
        expect(spy).toHaveBeenCalled();
      } finally {
        a.close();
        b.close();
      }
    } finally {
      spy.mockRestore();
      fw?.detach();
    }
  });

  it('a pin whose rule set in force has another format version is refused, and nothing changes', async () => {
    const xdpProg = () => xdpProgId(host.netns, link.b.ifname);
    /** Adds `delta` to the version word of both blobs (the one in force is among them). */
    const bump = (delta: number) => {
      const [a, b] = blobs();
      try {
        for (const m of [a, b]) {
          const v = m.get(0)!;
          v.writeUInt32LE(v.readUInt32LE(4 * H_VERSION) + delta, 4 * H_VERSION);
          m.set(0, v);
        }
      } finally {
        a.close();
        b.close();
      }
    };
    const fw1 = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, maxRules: 64, rules: small(40) });
    fw1.close(); // still attached, pinned
    const prog = xdpProg();
    expect(prog).toBeGreaterThan(0);
    bump(1);
    await expect(AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, rules: small(41) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      field: 'pin',
      message: expect.stringMatching(/unknown format/),
    });
    // the same program still attached, the pins still there
    expect(xdpProg()).toBe(prog);
    expect(existsSync(join(PIN, 'blob_a'))).toBe(true);
    // with its own version back, the firewall adopts as before (and is removed)
    bump(-1);
    const fw2 = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN });
    expect(fw2.adopted).toBe(true);
    expect(fw2.rules().map((r) => r.id)).toEqual(['small-40']);
    fw2.detach();
    expect(existsSync(PIN)).toBe(false);
  });

  it('a pin whose rule-set source has another version is refused, and nothing changes (what a process older than the source sees)', async () => {
    const xdpProg = () => xdpProgId(host.netns, link.b.ifname);
    /** Rewrites the source's version (its JSON's "v":N, same length) in both blobs. */
    const setVersion = (from: number, to: number) => {
      const [a, b] = blobs();
      try {
        for (const m of [a, b]) {
          const v = m.get(0)!;
          const off = v.readUInt32LE(4 * H_SRC_OFF) * 4;
          const was = `{"v":${from},`;
          if (v.toString('utf8', off, off + was.length) !== was) continue; // (a blob never written)
          v.write(`{"v":${to},`, off, 'utf8');
          m.set(0, v);
        }
      } finally {
        a.close();
        b.close();
      }
    };
    const fw1 = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, maxRules: 64, rules: small(42) });
    fw1.close();
    const prog = xdpProg();
    setVersion(2, 9);
    await expect(AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN, rules: small(43) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      field: 'pin',
      message: expect.stringMatching(/source version 9 is not supported/),
    });
    expect(xdpProg()).toBe(prog);
    setVersion(9, 2);
    const fw2 = await AclFirewall.attach(link.b.ifname, { netns: host.netns, pin: PIN });
    expect(fw2.adopted).toBe(true);
    expect(fw2.rules()).toEqual(small(42));
    fw2.detach();
    expect(existsSync(PIN)).toBe(false);
  });
});
