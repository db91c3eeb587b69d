/**
 * BpfMap.mmap(): array maps created with BPF_F_MMAPABLE, mapped into the process and
 * written through the mapping. Witnesses: map.get() (BPF_MAP_LOOKUP_ELEM), bpftool, and
 * a program reading the values under BPF_PROG_TEST_RUN (test/bpf/mmap.bpf.c). A child
 * process shows that a mapping keeps the map alive after every fd is closed and that
 * garbage collection unmaps it.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeChild as child } from '../helpers/node-child.js';
import { BpfObject, BpfkitError, bytes, struct, u32, u64, type XdpProgram } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const mmVal = struct('mm_val', { a: u32, b: u32, c: u32 });
const BLOB_BYTES = 3 * 4096 + 20;

let obj: BpfObject;
let prog: XdpProgram;
beforeAll(async () => {
  obj = await BpfObject.load(testObject('mmap'));
  prog = obj.xdpProgram('xdp_read');
});
afterAll(() => obj?.close());

function bpftool(args: string[]): any {
  return JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' }));
}

/** Value bytes of `key` as bpftool reads them (hex strings -> Buffer). */
function bpftoolValue(id: number, key: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(key);
  const r = bpftool(['map', 'lookup', 'id', String(id), 'key', ...[...k].map(String)]);
  return Buffer.from((r.value as string[]).map((h) => parseInt(h, 16)));
}

/** What xdp_read sees: 12 bytes of mm_arr[index] (which 0) or of mm_blob from word `index` (which 1). */
async function programReads(which: number, index: number): Promise<Buffer> {
  const frame = Buffer.alloc(64);
  frame.writeUInt32LE(which, 0);
  frame.writeUInt32LE(index, 4);
  const r = await prog.testRun(frame);
  expect(r.action).toBe('pass');
  return r.packet.subarray(8, 20);
}

describe('BpfMap.mmap()', () => {
  it('maps every value at the kernel stride (value_size rounded up to 8); writes are seen by lookup, bpftool and programs', async () => {
    using m = obj.map('mm_arr', { key: u32, value: mmVal });
    expect(m.info.valueSize).toBe(12);
    const buf = m.mmap();
    expect(buf.length).toBe(5 * 16);
    expect(m.mmap()).toBe(buf);

    // user space -> kernel: element 3 starts at 3 * 16, not 3 * 12
    buf.writeUInt32LE(0x11223344, 48);
    buf.writeUInt32LE(7, 52);
    buf.writeUInt32LE(0xfffffffe, 56);
    buf.writeUInt32LE(0xdeadbeef, 60); // padding of element 3: not part of the value
    expect(m.get(3)).toEqual({ a: 0x11223344, b: 7, c: 0xfffffffe });
    expect(m.get(2)).toEqual({ a: 0, b: 0, c: 0 });
    expect(m.get(4)).toEqual({ a: 0, b: 0, c: 0 });
    const expected = Buffer.alloc(12);
    expected.writeUInt32LE(0x11223344, 0);
    expected.writeUInt32LE(7, 4);
    expected.writeUInt32LE(0xfffffffe, 8);
    expect(bpftoolValue(m.info.id, 3)).toEqual(expected);
    expect(await programReads(0, 3)).toEqual(expected);

    // kernel -> user space: an update through the syscall shows in the mapping
    m.set(1, { a: 1, b: 2, c: 3 });
    expect([buf.readUInt32LE(16), buf.readUInt32LE(20), buf.readUInt32LE(24)]).toEqual([1, 2, 3]);
    buf.fill(0);
  });

  it('a value larger than a page: the mapping covers it whole (last page partly used)', async () => {
    using m = obj.map('mm_blob', { key: u32, value: bytes(BLOB_BYTES) });
    const buf = m.mmap();
    expect(buf.length).toBe(Math.ceil(BLOB_BYTES / 8) * 8);
    const words = new Uint32Array(buf.buffer, buf.byteOffset, BLOB_BYTES / 4);
    for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761) >>> 0;
    const last = words.length - 3;
    expect(await programReads(1, last)).toEqual(Buffer.from(words.buffer, words.byteOffset + last * 4, 12));
    expect(await programReads(1, 1023)).toEqual(Buffer.from(words.buffer, words.byteOffset + 1023 * 4, 12)); // across a page boundary
    const v = m.get(0)!;
    expect(v.equals(buf.subarray(0, BLOB_BYTES))).toBe(true);
    expect(bpftoolValue(m.info.id, 0).equals(v)).toBe(true);
    buf.fill(0, 0, 4096);
    expect(
      m
        .get(0)!
        .subarray(0, 4096)
        .every((b) => b === 0),
    ).toBe(true);
    expect(m.get(0)!.readUInt32LE(4096)).toBe(words[1024]);
  });

  it('maps that are not BPF_F_MMAPABLE arrays: ERR_UNSUPPORTED naming the map', () => {
    using arr = obj.map('plain_arr', { key: u32, value: u64 });
    using hash = obj.map('plain_hash', { key: u32, value: u64 });
    expect(() => arr.mmap()).toThrow(BpfkitError);
    expect(() => arr.mmap()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/'plain_arr'.*BPF_F_MMAPABLE/) }));
    expect(() => hash.mmap()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/'plain_hash' is a hash map/) }));
    // nothing changed: the maps still work
    arr.set(1, 5n);
    expect(arr.get(1)).toBe(5n);
  });

  it('maps user space may not write: frozen, or read-only for programs (kernel refuses a writable mapping)', () => {
    using frozen = obj.map('mm_frozen', { key: u32, value: u64 });
    frozen.set(0, 42n);
    frozen.freeze();
    expect(() => frozen.mmap()).toThrow(expect.objectContaining({ errno: 1, syscall: 'mmap', message: expect.stringMatching(/'mm_frozen'.*frozen/) }));
    using ro = obj.map('mm_rdonly_prog', { key: u32, value: u64 });
    expect(() => ro.mmap()).toThrow(expect.objectContaining({ errno: 13, syscall: 'mmap', message: expect.stringMatching(/'mm_rdonly_prog'.*read-only/) }));
  });

  it('while a writable mapping exists the map cannot be frozen (EBUSY)', () => {
    using m = obj.map('mm_arr', { key: u32, value: mmVal });
    m.mmap();
    expect(() => m.freeze()).toThrow(expect.objectContaining({ code: 'ERR_BUSY', errno: 16 }));
  });

  it('a closed map: ERR_CLOSED; a Buffer mapped before close() stays valid and shared', async () => {
    const m = obj.map('mm_arr', { key: u32, value: mmVal });
    const buf = m.mmap();
    m.close();
    expect(() => m.mmap()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    buf.writeUInt32LE(99, 2 * 16);
    using again = obj.map('mm_arr', { key: u32, value: mmVal });
    expect(again.get(2)).toEqual({ a: 99, b: 0, c: 0 });
    expect((await programReads(0, 2)).readUInt32LE(0)).toBe(99);
    buf.fill(0);
  });
});

function mapExists(id: number): boolean {
  try {
    execFileSync('bpftool', ['map', 'show', 'id', String(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('BpfMap.mmap() lifetime', () => {
  it('the mapping keeps the map alive after every fd is closed; garbage collection unmaps it and the map is freed', async () => {
    const c = child(`
      const fs = await import('node:fs');
      const mappings = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('bpf-map')).length;
      const obj = await m.BpfObject.load('${testObject('mmap')}');
      const map = obj.map('mm_blob', { key: m.u32, value: m.bytes(${BLOB_BYTES}) });
      let buf = map.mmap();
      buf.write('still here', 4096);
      say(JSON.stringify({ id: map.info.id, mappings: mappings() }));
      obj.close();
      map.close();
      await wait();
      buf.write('after close', 8192);
      say('written');
      await wait();
      buf = undefined;
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
      say(JSON.stringify({ mappings: mappings() }));
      await wait();
    `);
    try {
      const first = JSON.parse((await c.next())!) as { id: number; mappings: number };
      expect(first.mappings).toBe(1);
      c.p.stdin!.write('go\n');
      // no fd, pin or program holds the map now: only the mapping
      expect(await c.next()).toBe('written');
      expect(mapExists(first.id)).toBe(true);
      const v = bpftoolValue(first.id, 0);
      expect(v.toString('utf8', 4096, 4106)).toBe('still here');
      expect(v.toString('utf8', 8192, 8203)).toBe('after close');
      c.p.stdin!.write('gc\n');
      expect(JSON.parse((await c.next())!)).toEqual({ mappings: 0 });
      // the kernel frees the map asynchronously (after an RCU grace period)
      for (let i = 0; i < 100 && mapExists(first.id); i++) await new Promise((r) => setTimeout(r, 50));
      expect(mapExists(first.id)).toBe(false);
    } finally {
      c.p.stdin!.end('bye\n');
      await c.exited;
    }
  });
});
