/**
 * The Decapsulator's per-packet fast path (bpf/decap.bpf.c): per-(protocol, VNI) counter
 * slots behind a per-CPU VNI cache tagged with the configuration version, and metadata
 * taken off before bpf_xdp_adjust_head and written back. BPF_PROG_TEST_RUN on frames
 * derived from the scapy fixtures.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Decapsulator, possibleCpus } from '../../lib/index.js';
import { CNT_DECAP, CNT_SLOTS, DEFAULT_LIMITS } from '../../lib/modules/decap/config.js';
import { onCpu } from '../helpers/cpu.js';

const fx = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as {
  interfaceMac: string;
  cases: { name: string; in: string; expect: string }[];
};
const tmpl = Buffer.from(fx.cases.find((c) => c.name === 'vxlan4')!.in, 'hex');
const OUTER = 14 + 20 + 8 + 8; // Ethernet, IPv4, UDP, VXLAN
const INNER_LEN = tmpl.length - OUTER;

/** The fixture's outer VXLAN/IPv4 headers around `payload`, with `vni`, lengths and IPv4 checksum fixed. */
function wrap(vni: number, payload: Buffer): Buffer {
  const f = Buffer.concat([tmpl.subarray(0, OUTER), payload]);
  f.writeUInt16BE(20 + 8 + 8 + payload.length, 14 + 2); // IPv4 total length
  f.writeUInt16BE(0, 14 + 10);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += f.readUInt16BE(14 + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 14 + 10);
  f.writeUInt16BE(8 + 8 + payload.length, 34 + 4); // UDP length
  f.writeUInt16BE(0, 34 + 6); // no UDP checksum
  f.writeUIntBE(vni, 42 + 4, 3);
  return f;
}
const frame = (vni: number) => wrap(vni, tmpl.subarray(OUTER));

describe('Decapsulator fast path', () => {
  it('an allowlist change is seen by the next packet, also when a configuration copy is reused', async () => {
    const d = await Decapsulator.load({ interfaceMac: fx.interfaceMac, vnis: [100] });
    try {
      const verdicts = async () => {
        const before = d.stats();
        await d.testRun(frame(100));
        const after = d.stats();
        return after.decapsulated.packets > before.decapsulated.packets
          ? 'decap'
          : after.passed.vniNotAllowed.packets > before.passed.vniNotAllowed.packets
            ? 'denied'
            : 'other';
      };
      expect(await verdicts()).toBe('decap'); // copy 0, cached as allowed
      await d.update({ vnis: [200] }); // copy 1
      expect(await verdicts()).toBe('denied');
      await d.update({ vnis: [100, 300] }); // copy 0 again
      expect(await verdicts()).toBe('decap');
      await d.update({ vnis: [300] }); // copy 1 again: a cache tagged by copy would still say allowed
      expect(await verdicts()).toBe('denied');
      await d.update({ vnis: [200] }); // copy 0, whose previous version allowed 100
      expect(await verdicts()).toBe('denied');
      await d.update({ vnis: null });
      expect(await verdicts()).toBe('decap');
      const s = d.stats();
      expect(s.vnis).toEqual([{ protocol: 'vxlan', vni: 100, packets: 3n, bytes: 3n * BigInt(INNER_LEN) }]);
      expect(s.passed.vniNotAllowed.packets).toBe(3n);
    } finally {
      d.close();
    }
  });

  it('counts every VNI exactly when more VNIs than cache entries interleave', async () => {
    const d = await Decapsulator.load({ interfaceMac: fx.interfaceMac });
    try {
      const vnis = Array.from({ length: 700 }, (_, i) => (i * 40_503 + 7) & 0xffffff);
      for (let round = 0; round < 3; round++) {
        for (const v of vnis) expect((await d.testRun(frame(v))).action).toBe('pass');
        if (round === 1) await d.update({ rewriteMac: false }); // a new version: every cache entry is stale
      }
      const s = d.stats();
      expect(s.decapsulated.packets).toBe(3n * 700n);
      expect(s.vniOverflow.packets).toBe(0n);
      expect(s.vnis.length).toBe(700);
      for (const v of s.vnis) expect([v.protocol, v.packets, v.bytes]).toEqual(['vxlan', 3n, 3n * BigInt(INNER_LEN)]);
      expect(s.vnis.map((v) => v.vni)).toEqual([...vnis].sort((a, b) => a - b));
    } finally {
      d.close();
    }
  });

  it('metadata already on the packet is rewritten in place of the old, not stacked', async () => {
    const d = await Decapsulator.load({ interfaceMac: fx.interfaceMac });
    try {
      // two layers, run twice on the same buffer: the second run finds the first run's metadata
      const r = await d.testRun(wrap(7, frame(9)), { repeat: 2 });
      expect(r.action).toBe('pass');
      expect(r.packet.length).toBe(16 + INNER_LEN);
      const m = r.packet.subarray(0, 16);
      expect(m.readUInt32LE(0)).toBe(0x424b4d31);
      expect(m.readUInt32LE(4)).toBe(9);
      expect(m.readUInt32LE(8)).toBe(0);
      expect(m.readUInt32LE(12)).toBe(1 | 2); // VNI | VXLAN, outer IPv4
      expect(d.stats().vnis.map((v) => [v.vni, v.packets])).toEqual([
        [7, 1n],
        [9, 1n],
      ]);
    } finally {
      d.close();
    }
  });

  it('counts in the region of the CPU that ran the packet: each CPU its own share, stats() the sum (witness: bpftool)', async () => {
    const d = await Decapsulator.load({ interfaceMac: fx.interfaceMac });
    try {
      const online = Math.min(cpus().length, possibleCpus());
      const sent = Array.from({ length: possibleCpus() }, (_, c) => (c < online ? 3 + 2 * c : 0));
      for (const [cpu, n] of sent.entries()) {
        if (!n) continue;
        await onCpu(cpu, async () => {
          for (let i = 0; i < n; i++) expect((await d.testRun(frame(100))).action).toBe('pass');
        });
      }
      const total = BigInt(sent.reduce((a, b) => a + b, 0));
      const s = d.stats();
      expect(s.protocols.vxlan.ipv4).toEqual({ packets: total, bytes: total * BigInt(INNER_LEN) });
      expect(s.vnis).toEqual([{ protocol: 'vxlan', vni: 100, packets: total, bytes: total * BigInt(INNER_LEN) }]);
      // the kernel's own view of both arrays: CPU c's element i at c x (elements per CPU) + i
      const sh = (args: string[]) => JSON.parse(execFileSync('bpftool', [...args, '-j'], { encoding: 'utf8', maxBuffer: 1 << 28 }));
      const maps = (sh(['prog', 'show', 'id', String(d.program.info.id)]).map_ids as number[]).map((id) => sh(['map', 'show', 'id', String(id)]));
      const packetsOf = (name: string, perCpu: number, i: number) => {
        const m = maps.find((x) => x.name === name);
        expect(m, name).toMatchObject({ type: 'array', max_entries: perCpu * possibleCpus() });
        const dump = sh(['map', 'dump', 'id', String(m.id)]) as { formatted: { key: number; value: { packets: number } } }[];
        return sent.map((_, c) => dump.find((e) => e.formatted.key === c * perCpu + i)!.formatted.value.packets);
      };
      expect(packetsOf('counters', CNT_SLOTS, CNT_DECAP)).toEqual(sent); // VXLAN over IPv4
      expect(packetsOf('vni_counters', DEFAULT_LIMITS.vniStats, 0)).toEqual(sent); // the first pair's slot
    } finally {
      d.close();
    }
  });
});
