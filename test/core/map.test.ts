import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, BpfMap, bytes, ipv4, lpmKey, possibleCpus, struct, u16, u32, u64, u8 } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';
import { rmSync } from 'node:fs';

const flowKey = struct('flow_key', [
  { name: 'saddr', codec: ipv4 },
  { name: 'daddr', codec: ipv4 },
  { name: 'sport', codec: u16 },
  { name: 'dport', codec: u16 },
  { name: 'proto', codec: u8 },
  { name: '_pad', codec: bytes(3) },
]);
const flowStats = struct('flow_stats', { packets: u64, bytes: u64, last_seen: u32, flags: u32 });
const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

let obj: BpfObject;
beforeAll(async () => {
  obj = await BpfObject.load(testObject('maps'), { maps: { big_hash: { maxEntries: 100_000 } } });
});
afterAll(() => obj?.close());

describe('BpfMap (real kernel maps)', () => {
  it('get/set/delete/has with update flags', () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    expect(m.info).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024, name: 'hash_u32' });
    expect(m.get(1)).toBeUndefined();
    m.set(1, 10n);
    expect(m.get(1)).toBe(10n);
    expect(m.has(1)).toBe(true);
    expect(() => m.set(1, 11n, 'noexist')).toThrow(expect.objectContaining({ code: 'ERR_EXISTS', errno: 17 }));
    expect(() => m.set(2, 5n, 'exist')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
    m.set(1, 12n, 'exist');
    expect(m.get(1)).toBe(12n);
    expect(m.delete(1)).toBe(true);
    expect(m.delete(1)).toBe(false);
    expect(m.has(1)).toBe(false);
  });

  it('iterates keys and entries, size counts', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    for (let i = 0; i < 100; i++) m.set(i, BigInt(i * 3));
    expect(m.size).toBe(100);
    const seen = new Map([...m]);
    expect(seen.size).toBe(100);
    for (let i = 0; i < 100; i++) expect(seen.get(i)).toBe(BigInt(i * 3));
    expect([...m.keys()].sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
    expect(await m.clear()).toBe(100);
    expect(m.size).toBe(0);
  });

  it('struct keys and values round-trip through the kernel and match BTF', () => {
    using m = obj.map('flows', { key: flowKey, value: flowStats });
    const k = { saddr: '198.18.0.1', daddr: '198.18.0.2', sport: 1234, dport: 80, proto: 6 };
    m.set(k, { packets: 3n, bytes: 180n, last_seen: 7, flags: 1 });
    expect(m.get(k)).toEqual({ packets: 3n, bytes: 180n, last_seen: 7, flags: 1 });
    const [[key]] = [...m];
    expect(key).toMatchObject(k);
    m.delete(k);
  });

  it('LPM trie longest-prefix match', () => {
    using m = obj.map('routes', { key: lpmKey(4), value: u32 });
    m.set('198.18.0.0/15', 1);
    m.set('198.18.4.0/24', 2);
    expect(m.get({ prefixLen: 32, addr: '198.18.4.9' })).toBe(2);
    expect(m.get({ prefixLen: 32, addr: '198.19.1.1' })).toBe(1);
    expect(m.get({ prefixLen: 32, addr: '198.20.1.1' })).toBeUndefined();
    expect([...m.keys()].length).toBe(2);
  });

  it('array maps: fixed size, out-of-range keys rejected by the kernel', () => {
    using m = obj.map('arr', { key: u32, value: u64 });
    expect(m.size).toBe(16);
    m.set(15, 99n);
    expect(m.get(15)).toBe(99n);
    expect(() => m.set(16, 1n)).toThrow(BpfkitError);
  });

  it('per-CPU maps return one value per possible CPU; a single value is written to all', () => {
    using m = obj.perCpuMap('pcpu', { key: u32, value: counter });
    const n = possibleCpus();
    m.set(1, { packets: 2n, bytes: 3n });
    const v = m.get(1)!;
    expect(v).toHaveLength(n);
    expect(v.every((c) => c.packets === 2n && c.bytes === 3n)).toBe(true);
    const per = Array.from({ length: n }, (_, i) => ({ packets: BigInt(i), bytes: 0n }));
    m.set(1, per);
    expect(m.get(1)!.map((c) => c.packets)).toEqual(per.map((c) => c.packets));
    expect(() => obj.map('pcpu', { key: u32, value: counter })).toThrow(/perCpuMap/);
  });

  it('batch set, get and delete 100k entries', async () => {
    using m = obj.map('big_hash', { key: u32, value: u64 });
    const entries: [number, bigint][] = Array.from({ length: 100_000 }, (_, i) => [i, BigInt(i) * 7n]);
    expect(await m.setBatch(entries)).toBe(100_000);
    const all = await m.dump();
    expect(all).toHaveLength(100_000);
    const byKey = new Map(all);
    expect(byKey.get(99_999)).toBe(99_999n * 7n);
    expect(byKey.get(0)).toBe(0n);
    expect(await m.deleteBatch(entries.map(([k]) => k))).toBe(100_000);
    expect(m.size).toBe(0);
  });

  it('batch update past the end reports the partial count', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    const entries: [number, bigint][] = Array.from({ length: 1030 }, (_, i) => [i, 1n]);
    const err = await m.setBatch(entries).catch((e) => e);
    expect(err).toBeInstanceOf(BpfkitError);
    expect(err.code).toBe('ERR_MAP_FULL');
    expect(err.details.count).toBe(1024);
    expect(m.size).toBe(1024);
    await m.clear();
  });

  it('invalid input is rejected before the kernel: no partial batch', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    const err = await m
      .setBatch([
        [1, 1n],
        [2, -1n],
      ])
      .catch((e) => e);
    expect(err.code).toBe('ERR_INVALID_ARGUMENT');
    expect(m.size).toBe(0);
  });

  it('wrong codec size or layout fails at open with ERR_CODEC_MISMATCH', () => {
    expect(() => obj.map('hash_u32', { key: u32, value: u32 })).toThrow(
      expect.objectContaining({ code: 'ERR_CODEC_MISMATCH', message: expect.stringMatching(/value.*4 bytes.*8 bytes/) }),
    );
    // same size (24 bytes), different layout: BTF catches what a size check cannot
    const swapped = struct('flow_stats', { bytes: u64, packets: u64, flags: u32, last_seen: u32 });
    expect(() => obj.map('flows', { key: flowKey, value: swapped })).toThrow(
      expect.objectContaining({ code: 'ERR_CODEC_MISMATCH', message: expect.stringMatching(/member bytes is at offset 0 .* offset 8/) }),
    );
    const wrong = struct('flow_stats', { packets: u64, bytes: u32, x: u32, last_seen: u32, flags: u32 });
    expect(() => obj.map('flows', { key: flowKey, value: wrong })).toThrow(expect.objectContaining({ code: 'ERR_CODEC_MISMATCH' }));
    expect(() => obj.map('ringbuf_missing', { key: u32, value: u32 })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });

  it('freeze makes the map read-only for user space', async () => {
    using o2 = await BpfObject.load(testObject('maps'));
    using m = o2.map('arr', { key: u32, value: u64 });
    m.set(0, 1n);
    m.freeze();
    expect(() => m.set(0, 2n)).toThrow(BpfkitError);
    expect(m.get(0)).toBe(1n);
  });

  it('pin, close, re-open from the pin', () => {
    const path = `/sys/fs/bpf/bpfkit-test-map-${process.pid}`;
    try {
      {
        using m = obj.map('hash_u32', { key: u32, value: u64 });
        m.set(42, 4242n);
        m.pin(path);
      }
      using again = BpfMap.openPinned(path, { key: u32, value: u64 });
      expect(again.get(42)).toBe(4242n);
      expect(again.info.name).toBe('hash_u32');
      expect(() => BpfMap.openPinned(path, { key: u64, value: u64 })).toThrow(expect.objectContaining({ code: 'ERR_CODEC_MISMATCH' }));
      again.delete(42);
    } finally {
      rmSync(path, { force: true });
    }
    expect(() => BpfMap.openPinned(path, { key: u32, value: u64 })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });

  it('closed maps throw ERR_CLOSED', () => {
    const m = obj.map('hash_u32', { key: u32, value: u64 });
    m.close();
    m.close();
    expect(() => m.get(1)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });

  it('the single-entry fast path is cut off the fd at close, even when kept', () => {
    const m = obj.map('hash_u32', { key: u32, value: u64 });
    // the handle's own slot, as BpfMap uses it: key bytes at 0, value bytes at 8
    const slot = m.handle.scratch(4, 8);
    expect(m.handle.scratch(4, 8)).toBe(slot);
    slot.bytes.writeUInt32LE(77, 0);
    slot.bytes.writeBigUInt64LE(5n, 8);
    slot.update(0);
    expect(m.get(77)).toBe(5n);
    expect(slot.lookup()).toBe(true);
    expect(() => slot.update(1)).toThrow(expect.objectContaining({ code: 'ERR_EXISTS', syscall: 'bpf(BPF_MAP_UPDATE_ELEM)' }));
    expect(slot.delete()).toBe(true);
    expect(slot.delete()).toBe(false);
    expect(slot.lookup()).toBe(false);
    m.close();
    expect(() => slot.lookup()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(() => slot.update(0)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
