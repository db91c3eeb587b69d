/**
 * PacketTracer's TraceEvents read their fields lazily (lib/modules/tracer/view.ts). Here
 * real records of the running kernel (drops, IPv4 and IPv6 FIB lookups, neighbour updates,
 * XDP exceptions, transmits; v4 and v6) are read raw from the tracer's ring, and each one
 * made into a lazy event must equal its eager decoding (decodeEvent) field by field, give
 * the same JSON (same keys, same order), keep the same values in a timeline's copy, and
 * take assignments as a plain object does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, bytes, type TraceEvent } from '../../lib/index.js';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { dropReasonNamer } from '../../lib/core/programs/tracing.js';
import { FILTER_SIZE } from '../../lib/modules/tracer/filter.js';
import { DecodeCache, EVENT_SIZE, decodeEvent } from '../../lib/modules/tracer/layout.js';
import { lazyEvents, WITH_DT } from '../../lib/modules/tracer/view.js';
import type { TimelineEvent } from '../../lib/modules/tracer/timeline.js';
import { testObject } from '../helpers/objects.js';
import { tracerLab, type TracerLab } from './tracer.lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const B = '198.18.13.2';
/** Every field of TraceEvent (the interface's keys). */
const KEYS: (keyof TraceEvent)[] = [
  'point',
  'time',
  'skb',
  'cpu',
  'netns',
  'ifindex',
  'ifname',
  'mark',
  'len',
  'family',
  'proto',
  'src',
  'dst',
  'sport',
  'dport',
  'dropReason',
  'dropReasonCode',
  'rc',
  'fib',
  'xdp',
  'inner',
  'neigh',
];
const json = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

let lab: Lab;
let a: LabHost;
let b: LabHost;
let ar: LabLink;
let rb: LabLink;
const inodes = new Set<number>();
beforeAll(async () => {
  let ino: TracerLab['ino'];
  ({ lab, a, b, ar, rb, ino } = await tracerLab('mod-tracer-ev', 12));
  for (const i of Object.values(ino)) inodes.add(i);
});
afterAll(async () => {
  await lab?.close();
});

/** The tracer's programs on every point with no filter; the records of the lab's namespaces, raw, while `send` runs. */
async function rawRecords(send: () => Promise<void>): Promise<Buffer[]> {
  const obj = await BpfObject.openBuiltin('tracer', { globals: { filter: Buffer.alloc(FILTER_SIZE) } }).load();
  const links: { close(): void }[] = [];
  const out: Buffer[] = [];
  try {
    for (const p of obj.programs) {
      const prog = obj.tracingProgram(p.name);
      try {
        links.push(prog.attach());
      } finally {
        prog.close();
      }
    }
    const ring = obj.ringBuffer('events', bytes(EVENT_SIZE));
    ring.on('data', (rec) => {
      if (inodes.has(rec.readUInt32LE(16))) out.push(Buffer.from(rec)); // struct tracer_event.netns
    });
    try {
      await send();
      for (let i = 0; i < 20; i++) await sleep(20);
    } finally {
      ring.close();
    }
  } finally {
    for (const l of links) l.close();
    obj.close();
  }
  return out;
}

describe('lazily read events', () => {
  it('equal their eager decoding field by field, in JSON, in a timeline copy, over a mix of real events', async () => {
    const xdp = await BpfObject.load(testObject('tracer_xdp'));
    let records: Buffer[];
    try {
      records = await rawRecords(async () => {
        await a.ip(['neigh', 'flush', 'dev', ar.a.ifname]);
        await a.ping('198.18.12.2', { count: 1 }); // neighbour updates
        await a.sendUdp(B, 5571, { count: 3 }); // forwarded v4: receive, FIB, queue, transmit; dropped in b (no socket)
        await a.sendUdp('2001:db8:13::2', 5572, { count: 3 }); // the same in IPv6
        using link = xdp.xdpProgram('xdp_abort').attach(rb.b.ifname, { netns: b.netns });
        void link;
        await a.sendUdp(B, 5573, { count: 2 }); // XDP exceptions in b
      });
    } finally {
      xdp.close();
    }
    const namer = dropReasonNamer();
    const make = lazyEvents(namer);
    const cache = new DecodeCache();
    const seen = new Set<string>();
    for (const rec of records) {
      const buf = Buffer.alloc(EVENT_SIZE); // own memory: 4-byte aligned words
      rec.copy(buf);
      const words = new Uint32Array(buf.buffer, buf.byteOffset, EVENT_SIZE / 4);
      const eager = decodeEvent(buf, 0, cache, namer);
      const lazy = make(words, buf, 0);
      buf.fill(0xa5); // a lazy event holds what it needs: the batch buffer is reused after delivery
      for (const k of KEYS) expect({ point: eager.point, k, v: lazy[k] }).toEqual({ point: eager.point, k, v: eager[k] });
      expect(json(lazy)).toBe(json(eager));
      expect(Object.keys(JSON.parse(json(lazy)))).toEqual(Object.keys(eager));
      expect((lazy as unknown as { toJSON(): TraceEvent }).toJSON()).toEqual(eager);
      const t = (lazy as unknown as { [WITH_DT](dt: number): TimelineEvent })[WITH_DT](7);
      expect(json(t)).toBe(json({ ...eager, dtNs: 7 }));
      for (const k of KEYS) expect(t[k]).toEqual(eager[k]);
      seen.add(`${eager.point}/${eager.family ?? '-'}`);
    }
    for (const kind of [
      'receive/4',
      'receive/6',
      'fib_lookup/4',
      'fib_lookup/6',
      'transmit/4',
      'transmit/6',
      'drop/4',
      'drop/6',
      'neigh_update/4',
      'xdp_exception/-',
    ])
      expect([...seen]).toContain(kind);
  });

  it('take assignments as a plain object does: the value is kept, own, and in JSON', async () => {
    const records = await rawRecords(() => a.sendUdp(B, 5574, { count: 1 }).then(() => undefined));
    const rec = records.find((x) => x.readUInt16LE(48) === 4); // a drop
    expect(rec).toBeDefined();
    const buf = Buffer.alloc(EVENT_SIZE);
    rec!.copy(buf);
    const e = lazyEvents(dropReasonNamer())(new Uint32Array(buf.buffer, buf.byteOffset, EVENT_SIZE / 4), buf, 0) as TraceEvent & { note?: string };
    const before = JSON.parse(json(e)) as Record<string, unknown>;
    e.ifname = 'renamed';
    e.note = 'kept';
    expect(e.ifname).toBe('renamed');
    expect(Object.keys(e)).toEqual(['ifname', 'note']);
    expect(JSON.parse(json(e))).toEqual({ ...before, ifname: 'renamed', note: 'kept' });
    expect(Object.keys(JSON.parse(json(e)))).toEqual([...Object.keys(before), 'note']);
  });
});
