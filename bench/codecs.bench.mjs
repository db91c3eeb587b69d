// Codecs: ns per encode/decode of bpfkit codecs vs a hand-written DataView/Buffer floor,
// same run, same buffers, same values.
//
// Each case encodes N values into (or decodes N records from) one buffer, record i at
// offset i * size, and stores every decoded value in an array (as RingBuffer and dump()
// do), so allocations are real on both sides. The floor is what a careful person writes by
// hand for that one layout: one DataView made once per buffer, member offsets as
// constants, the fastest plain JS we know for each member (char-code loop for addresses,
// byte loop into a pooled Buffer for 40 bytes), no input validation at all. Each timing loop
// is compiled separately so the codec and the floor never share a call site. Rounds
// alternate codec and floor; the table shows median ns and 'vs floor' = the median over
// rounds of codec ns / floor ns of the same round (1 = as fast as hand-written).
import { bytes, ipv4, be16, struct, u32, u64, u8 } from '../dist/index.js';
import { median } from './lib.mjs';

const N = 1024;

const flowKey = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16, proto: u8 });
const rec64 = struct('rec64', { seq: u64, ktime: u64, len: u32, ifindex: u32, fill: bytes(40) });
// The ring-buffer benchmark's '2-field codec': '_' fields are skipped on decode.
const rec64two = struct('rec64', [
  { name: 'seq', codec: u64 },
  { name: '_ktime', codec: bytes(8) },
  { name: 'len', codec: u32 },
  { name: '_rest', codec: bytes(44) },
]);

// A fixed pseudo-random sequence, so every run sees the same values.
let seed = 0x2545f491;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const rndInt = (n) => Math.floor(rnd() * n);
const addr = () => `198.${18 + rndInt(2)}.${rndInt(256)}.${rndInt(256)}`;
const big64 = () => (BigInt(rndInt(2 ** 32)) << 32n) | BigInt(rndInt(2 ** 32));

// Hand-written floors. `dv` is the DataView of the buffer they run on (made once).
const parseAddr = (s, b, o) => {
  let part = 0;
  let val = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      b[o + part++] = val;
      val = 0;
    } else {
      val = val * 10 + c - 0x30;
    }
  }
  b[o + part] = val;
};
const fmtAddr = (b, o) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const copy40 = (b, o) => {
  const out = Buffer.allocUnsafe(40);
  for (let i = 0; i < 40; i++) out[i] = b[o + i];
  return out;
};

const CASES = [
  {
    id: 'u32',
    codec: u32,
    value: () => rndInt(2 ** 32),
    floor: (dv) => ({ encode: (v, b, o) => dv.setUint32(o, v, true), decode: (b, o) => dv.getUint32(o, true) }),
  },
  {
    id: 'u64',
    codec: u64,
    value: big64,
    floor: (dv) => ({ encode: (v, b, o) => dv.setBigUint64(o, v, true), decode: (b, o) => dv.getBigUint64(o, true) }),
  },
  {
    id: 'ipv4',
    codec: ipv4,
    value: addr,
    floor: () => ({ encode: parseAddr, decode: fmtAddr }),
  },
  {
    id: 'flow_key (5 fields, 16 B)',
    codec: flowKey,
    value: () => ({ src: addr(), dst: addr(), sport: rndInt(65536), dport: rndInt(65536), proto: 6 + 11 * rndInt(2) }),
    floor: (dv) => ({
      encode: (v, b, o) => {
        parseAddr(v.src, b, o);
        parseAddr(v.dst, b, o + 4);
        dv.setUint16(o + 8, v.sport, false);
        dv.setUint16(o + 10, v.dport, false);
        b[o + 12] = v.proto;
        b[o + 13] = 0;
        b[o + 14] = 0;
        b[o + 15] = 0;
      },
      decode: (b, o) => ({
        src: fmtAddr(b, o),
        dst: fmtAddr(b, o + 4),
        sport: dv.getUint16(o + 8, false),
        dport: dv.getUint16(o + 10, false),
        proto: b[o + 12],
      }),
    }),
  },
  {
    id: 'rec64 (5 fields, 64 B)',
    codec: rec64,
    value: () => ({ seq: big64(), ktime: big64(), len: 64, ifindex: rndInt(100), fill: Buffer.alloc(40, rndInt(256)) }),
    floor: (dv) => ({
      encode: (v, b, o) => {
        dv.setBigUint64(o, v.seq, true);
        dv.setBigUint64(o + 8, v.ktime, true);
        dv.setUint32(o + 16, v.len, true);
        dv.setUint32(o + 20, v.ifindex, true);
        b.set(v.fill, o + 24);
      },
      decode: (b, o) => ({
        seq: dv.getBigUint64(o, true),
        ktime: dv.getBigUint64(o + 8, true),
        len: dv.getUint32(o + 16, true),
        ifindex: dv.getUint32(o + 20, true),
        fill: copy40(b, o + 24),
      }),
    }),
  },
  {
    id: 'rec64 2 fields (seq, len)',
    codec: rec64two,
    decodeOnly: true,
    value: () => ({ seq: big64(), len: 64 }),
    floor: (dv) => ({ decode: (b, o) => ({ seq: dv.getBigUint64(o, true), len: dv.getUint32(o + 16, true) }) }),
  },
];

// One compiled loop per (case, side, op): separate feedback, no shared call sites.
const makeLoop = (op) =>
  op === 'encode'
    ? new Function(
        'fn',
        'vals',
        'buf',
        'size',
        'n',
        'iters',
        `
        for (let it = 0; it < iters; it++) for (let i = 0; i < n; i++) fn(vals[i], buf, i * size);
        return buf[0];`,
      )
    : new Function(
        'fn',
        'out',
        'buf',
        'size',
        'n',
        'iters',
        `
        for (let it = 0; it < iters; it++) for (let i = 0; i < n; i++) out[i] = fn(buf, i * size);
        return out.length;`,
      );

function timer(op, fn, arg, buf, size) {
  const loop = makeLoop(op);
  return (iters) => {
    const t = process.hrtime.bigint();
    loop(fn, arg, buf, size, N, iters);
    return Number(process.hrtime.bigint() - t) / (iters * N);
  };
}

export default {
  name: 'codecs',
  description: 'ns per encode/decode: bpfkit codecs vs a hand-written DataView floor (same run)',
  async run({ quick, log }) {
    const rounds = quick ? 3 : 9;
    const targetMs = quick ? 15 : 60;
    const rows = [];
    const summary = {};
    for (const c of CASES) {
      const size = c.codec.size;
      const vals = Array.from({ length: N }, c.value);
      const fullVals = c.decodeOnly ? null : vals;
      // the decode input: encoded by the codec under test (a bug would show as a mismatch below)
      const src = Buffer.alloc(N * size);
      const enc = c.decodeOnly ? rec64 : c.codec;
      for (let i = 0; i < N; i++) enc.encode(c.decodeOnly ? { ...vals[i], ktime: 0n, ifindex: 0, fill: Buffer.alloc(40) } : vals[i], src, i * size);
      const dst = Buffer.alloc(N * size);
      const floorDst = Buffer.alloc(N * size);
      const floorEnc = c.floor(new DataView(floorDst.buffer, floorDst.byteOffset, floorDst.byteLength));
      const floorDec = c.floor(new DataView(src.buffer, src.byteOffset, src.byteLength));
      const out = new Array(N).fill(null);

      const ops = c.decodeOnly ? ['decode'] : ['encode', 'decode'];
      for (const op of ops) {
        const sides =
          op === 'encode'
            ? { codec: timer(op, c.codec.encode, fullVals, dst, size), floor: timer(op, floorEnc.encode, fullVals, floorDst, size) }
            : { codec: timer(op, c.codec.decode, out, src, size), floor: timer(op, floorDec.decode, out, src, size) };
        // warm up and size the loops so one timing lasts about targetMs
        const iters = {};
        for (const [side, t] of Object.entries(sides)) {
          for (let i = 0; i < 5; i++) t(20);
          iters[side] = Math.max(1, Math.round((targetMs * 1e6) / (t(20) * N)));
        }
        const ns = { codec: [], floor: [] };
        const ratios = [];
        for (let r = 0; r < rounds; r++) {
          for (const side of ['codec', 'floor']) ns[side].push(sides[side](iters[side]));
          ratios.push(ns.codec.at(-1) / ns.floor.at(-1));
        }
        const a = median(ns.codec);
        const f = median(ns.floor);
        const ratio = median(ratios);
        rows.push({ codec: c.id, op, 'bpfkit ns': a, 'floor ns': f, 'vs floor': ratio });
        const key = `${c.id.split(' ')[0]}${c.decodeOnly ? '_2field' : ''}_${op}`;
        summary[`${key}_ns`] = Number(a.toFixed(1));
        summary[`${key}_vs_floor`] = Number(ratio.toFixed(2));
        log(`${c.id} ${op}: ${a.toFixed(1)} ns (floor ${f.toFixed(1)} ns)`);
      }
      // Both sides must agree on the bytes and the values, or the comparison means nothing.
      if (!c.decodeOnly && !dst.equals(floorDst)) throw new Error(`${c.id}: codec and floor encode different bytes`);
      if (!c.decodeOnly && !dst.equals(src)) throw new Error(`${c.id}: encode is not deterministic`);
      const i = N - 1;
      const a = JSON.stringify(c.codec.decode(src, i * size), (k, v) => (typeof v === 'bigint' ? `${v}n` : v));
      const b = JSON.stringify(floorDec.decode(src, i * size), (k, v) => (typeof v === 'bigint' ? `${v}n` : v));
      if (a !== b) throw new Error(`${c.id}: codec and floor decode differently: ${a} vs ${b}`);
    }
    return { rows, summary };
  },
};
