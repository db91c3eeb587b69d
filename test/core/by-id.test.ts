/**
 * Kernel objects by id: BpfProgram.fromId, BpfProgram#mapIds, BpfMap.fromId, BpfMap.infoById
 * (what `bpfkit status` uses to read programs it finds on interfaces).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfkitError, BpfMap, BpfObject, BpfProgram, XdpProgram, struct, u32, u64 } from '../../lib/index.js';

const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });
let obj: BpfObject;

beforeAll(async () => {
  obj = await BpfObject.openBuiltin('counter').load();
});
afterAll(() => obj?.close());

describe('objects by kernel id', () => {
  it('BpfProgram.fromId opens the same program (an XdpProgram), with its map ids', () => {
    const p = obj.xdpProgram('xdp_count');
    using again = BpfProgram.fromId(p.info.id);
    expect(again).toBeInstanceOf(XdpProgram);
    expect(again.info).toMatchObject({ id: p.info.id, name: 'xdp_count', type: 'xdp', tag: p.info.tag });
    using m = obj.perCpuMap('counters', { key: u32, value: counter });
    expect(again.mapIds()).toContain(m.info.id);
  });

  it('BpfMap.fromId reads and writes the same map; infoById describes it without codecs', () => {
    using m = obj.perCpuMap('counters', { key: u32, value: counter });
    const info = BpfMap.infoById(m.info.id);
    expect(info).toEqual(m.info);
    expect(info).toMatchObject({ name: 'counters', type: 'percpu_array', keySize: 4, maxEntries: 4 });
    using byId = BpfMap.fromId(m.info.id, { key: u32, value: counter });
    byId.set(2, { packets: 7n, bytes: 700n });
    expect(m.get(2)!.every((c) => c.packets === 7n && c.bytes === 700n)).toBe(true);
  });

  it('codecs are checked as for pinned maps', () => {
    using m = obj.perCpuMap('counters', { key: u32, value: counter });
    expect(() => BpfMap.fromId(m.info.id, { key: u64, value: counter })).toThrow(BpfkitError);
  });

  it('bad ids are ERR_INVALID_ARGUMENT naming id; an unknown id is ERR_NOT_FOUND', () => {
    for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN, '7' as unknown as number]) {
      expect(() => BpfProgram.fromId(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'id' }));
      expect(() => BpfMap.infoById(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'id' }));
    }
    // ids count up from 1 and are never reused soon: the largest u32 is not in use
    expect(() => BpfProgram.fromId(0xffffffff)).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND', errno: 2 }));
    expect(() => BpfMap.fromId(0xffffffff, { key: u32, value: u32 })).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });
});
