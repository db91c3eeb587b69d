// Column-shaped batch operations (readColumns / writeColumns / deleteColumns) and dump(),
// on real kernel maps of the shapes the API must handle: hash, array, per-CPU, and an
// LPM trie (no batch lookup in the kernel: the key-walk fallback).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, lpmKey, possibleCpus, struct, u32, u64 } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

let obj: BpfObject;
beforeAll(async () => {
  obj = await BpfObject.load(testObject('maps'));
});
afterAll(() => obj?.close());

const byKey = <K, V>(xs: [K, V][]) => [...xs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

describe('BpfMap column API (real kernel maps)', () => {
  it('hash: writeColumns from typed arrays, readColumns back as raw bytes, dump equals iteration', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    const n = 500;
    const keys = Uint32Array.from({ length: n }, (_, i) => i * 3 + 1);
    const vals = BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 11n + 5n);
    try {
      expect(await m.writeColumns(keys, vals, n)).toBe(n);
      expect(m.get(4)).toBe(16n);
      const cols = await m.readColumns();
      expect(cols.count).toBe(n);
      expect(cols.keys.length).toBe(n * 4);
      expect(cols.values.length).toBe(n * 8);
      const seen = new Map<number, bigint>();
      for (let i = 0; i < cols.count; i++) seen.set(cols.keys.readUInt32LE(i * 4), cols.values.readBigUInt64LE(i * 8));
      expect(seen.size).toBe(n);
      for (let i = 0; i < n; i++) expect(seen.get(keys[i]!)).toBe(vals[i]);
      // small chunks: several batch calls give the same entries
      const chunked = await m.readColumns({ chunk: 64 });
      expect(chunked.count).toBe(n);
      // into the caller's Buffers: the columns are views of them
      const K = Buffer.alloc(1024 * 4, 0xee);
      const V = Buffer.alloc(1024 * 8 + 5);
      const again = await m.readColumns({ keys: K, values: V });
      expect(again.count).toBe(n);
      expect(again.keys.buffer).toBe(K.buffer);
      expect(again.values.byteOffset).toBe(V.byteOffset);
      expect(Buffer.compare(again.keys, cols.keys)).toBe(0);
      expect(Buffer.compare(again.values, cols.values)).toBe(0);
      const dumped = await m.dump();
      expect(dumped).toHaveLength(n);
      expect(byKey(dumped)).toEqual(byKey([...m]));
      // existing keys are overwritten
      expect(await m.writeColumns(keys, new BigUint64Array(n), 1)).toBe(1);
      expect(m.get(keys[0]!)).toBe(0n);
      expect(await m.deleteColumns(cols.keys, cols.count)).toBe(n);
      expect(m.size).toBe(0);
      expect((await m.readColumns()).count).toBe(0);
      expect(await m.dump()).toEqual([]);
    } finally {
      await m.clear();
    }
  });

  it('partial failures report how many entries the kernel took in details.count', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    try {
      const n = 1030; // the map holds 1024
      const err = await m
        .writeColumns(
          Uint32Array.from({ length: n }, (_, i) => i),
          new BigUint64Array(n),
          n,
        )
        .catch((e) => e);
      expect(err).toBeInstanceOf(BpfkitError);
      expect(err.code).toBe('ERR_MAP_FULL');
      expect(err.details.count).toBe(1024);
      expect(m.size).toBe(1024);
      // deleting stops at the first absent key: 0..9 go, 5000 is not there
      const del = Uint32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5000, 10);
      const derr = await m.deleteColumns(del, del.length).catch((e) => e);
      expect(derr.code).toBe('ERR_NOT_FOUND');
      expect(derr.details.count).toBe(10);
      expect(m.has(9)).toBe(false);
      expect(m.has(10)).toBe(true);
      expect(await m.clear()).toBe(1014);
    } finally {
      await m.clear();
    }
  });

  it('bad columns, counts, flags and chunks are rejected before the kernel', async () => {
    using m = obj.map('hash_u32', { key: u32, value: u64 });
    m.set(1, 1n);
    try {
      const k = Uint32Array.of(2, 3, 4);
      const v = new BigUint64Array(3).fill(9n);
      const bad = async (p: Promise<unknown>, field: string) => expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field });
      await bad(m.writeColumns(k.subarray(0, 2), v, 3), 'keys');
      await bad(m.writeColumns(k, v.subarray(0, 2), 3), 'values');
      await bad(m.writeColumns(k, Buffer.alloc(23), 3), 'values'); // one byte short
      await bad(m.writeColumns(k, v, -1), 'count');
      await bad(m.writeColumns(k, v, 1.5), 'count');
      await bad(m.writeColumns(new DataView(k.buffer), v, 3), 'keys');
      await bad(m.writeColumns([2, 3, 4] as unknown as Uint32Array, v, 3), 'keys');
      await bad(m.deleteColumns(Buffer.alloc(11), 3), 'keys');
      await bad(m.deleteColumns(k, Number.NaN), 'count');
      await bad(m.readColumns({ chunk: 0 }), 'chunk');
      await bad(m.readColumns({ keys: Buffer.alloc(1023 * 4) }), 'keys'); // room for maxEntries, not for what is there
      await bad(m.readColumns({ values: new Uint8Array(1024 * 8) as Buffer }), 'values');
      await bad(m.dump({ chunk: 2.5 }), 'chunk');
      await bad(m.setBatch([[5, 5n]], 'maybe' as 'any'), 'flag');
      await bad(m.setBatch([[5, 5n]], 'noexist'), 'flag'); // the kernel's batch update has no flags
      // nothing reached the kernel
      expect(byKey(await m.dump())).toEqual([[1, 1n]]);
      // longer columns are fine: only `count` entries are used
      expect(await m.writeColumns(k, v, 2)).toBe(2);
      expect(byKey(await m.dump())).toEqual([
        [1, 1n],
        [2, 9n],
        [3, 9n],
      ]);
      expect(await m.writeColumns(k, v, 0)).toBe(0);
      expect(await m.deleteColumns(k, 0)).toBe(0);
    } finally {
      await m.clear();
    }
  });

  it('array: readColumns returns every slot, writeColumns updates some, dump equals iteration', async () => {
    using o = await BpfObject.load(testObject('maps'));
    using m = o.map('arr', { key: u32, value: u64 });
    expect(await m.writeColumns(Uint32Array.of(3, 15), BigUint64Array.of(33n, 1515n), 2)).toBe(2);
    const cols = await m.readColumns();
    expect(cols.count).toBe(16);
    const dumped = await m.dump();
    expect(byKey(dumped)).toEqual(byKey([...m]));
    expect(new Map(dumped).get(3)).toBe(33n);
    expect(new Map(dumped).get(15)).toBe(1515n);
    expect(new Map(dumped).get(0)).toBe(0n);
    // array slots cannot be deleted: the kernel has no batch delete for arrays, nothing deleted
    await expect(m.deleteColumns(Uint32Array.of(3), 1)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', details: { count: 0 } });
    expect(m.get(3)).toBe(33n);
  });

  it('per-CPU: raw columns carry one 8-byte-aligned slot per possible CPU; dump decodes them', async () => {
    using m = obj.perCpuMap('pcpu', { key: u32, value: counter });
    const cpus = possibleCpus();
    const slot = 16; // bpfkit_counter: two u64, already 8-aligned
    expect(m.value.size).toBe(slot * cpus);
    try {
      const vals = Buffer.alloc(2 * slot * cpus);
      for (let e = 0; e < 2; e++) {
        for (let c = 0; c < cpus; c++) {
          vals.writeBigUInt64LE(BigInt(100 * e + c), (e * cpus + c) * slot);
          vals.writeBigUInt64LE(BigInt(c), (e * cpus + c) * slot + 8);
        }
      }
      await expect(m.writeColumns(Uint32Array.of(7, 8), vals.subarray(0, slot * cpus), 2)).rejects.toMatchObject({ field: 'values' });
      expect(await m.writeColumns(Uint32Array.of(7, 8), vals, 2)).toBe(2);
      expect(m.get(8)!.map((x) => x.packets)).toEqual(Array.from({ length: cpus }, (_, c) => BigInt(100 + c)));
      const cols = await m.readColumns();
      expect(cols.count).toBe(2);
      expect(cols.values.length).toBe(2 * slot * cpus);
      const dumped = await m.dump();
      expect(byKey(dumped)).toEqual(byKey([...m]));
      expect(new Map(dumped).get(7)![cpus - 1]).toEqual({ packets: BigInt(cpus - 1), bytes: BigInt(cpus - 1) });
    } finally {
      await m.clear();
    }
  });

  it('LPM trie (no batch lookup in the kernel): readColumns and dump fall back to a key walk', async () => {
    using m = obj.map('routes', { key: lpmKey(4), value: u32 });
    try {
      m.set('198.18.0.0/15', 1);
      m.set('198.18.4.0/24', 2);
      m.set('198.19.0.0/16', 3);
      const cols = await m.readColumns();
      expect(cols.count).toBe(3);
      expect(cols.keys.length).toBe(3 * m.key.size);
      const dumped = await m.dump(); // second call: the fallback is remembered
      const str = (xs: [unknown, number][]) => xs.map(([k, v]) => `${JSON.stringify(k)}=${v}`).sort();
      expect(str(dumped)).toEqual(str([...m]));
      expect(dumped.map(([, v]) => v).sort()).toEqual([1, 2, 3]);
    } finally {
      for (const k of [...m.keys()]) m.delete(k);
    }
  });
});
