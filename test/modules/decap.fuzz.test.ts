/**
 * Decapsulator fuzz: a few thousand random and mutated tunnel frames (seeded from the
 * scapy fixtures) through BPF_PROG_TEST_RUN, each verdict checked against a reference
 * classifier written here from RFC 7348 / RFC 8926 and the documented check order, in
 * plain TypeScript over byte offsets (it shares no code with bpf/decap.bpf.c). For every
 * frame the output bytes and the counter that moved must agree exactly.
 *
 * Seed: DECAP_FUZZ_SEED (printed on failure), else random per run. DECAP_FUZZ_N sets the
 * number of frames per config (default 1500).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decapsulator, parseIPv4, parseIPv6, type DecapLoadOptions, type DecapPassReason } from '../../lib/index.js';
import { rng } from '../helpers/rng.js';

const fx = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as {
  interfaceMac: string;
  cases: { name: string; in: string; expect: string }[];
};
const SEED = Number(process.env.DECAP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const N = Number(process.env.DECAP_FUZZ_N ?? 1500);

// ---- reference classifier -------------------------------------------------------------------

type Verdict =
  | { kind: 'decap'; protocol: 'vxlan' | 'geneve'; vni: number; ipv6: boolean; out: Buffer }
  | { kind: 'pass'; reason: DecapPassReason }
  | { kind: 'ignore' };

interface RefConfig {
  ports: { vxlan: number[]; geneve: number[] };
  vnis: Set<number> | null;
  local: Set<string> | null; // 16-byte hex, IPv4 mapped
  mac: Buffer | null;
  rewrite: boolean;
  metadata: boolean;
}

const IPV6_EXT = new Set([0, 43, 44, 60]);
const pass = (reason: DecapPassReason): Verdict => ({ kind: 'pass', reason });
const IGNORE: Verdict = { kind: 'ignore' };

function onesComplementOk(h: Buffer): boolean {
  let s = 0;
  for (let i = 0; i < h.length; i += 2) s += h.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

function mapped(v4: Buffer): string {
  return `00000000000000000000ffff${v4.toString('hex')}`;
}

function reference(f: Buffer, c: RefConfig): Verdict {
  if (f.length < 14) return IGNORE;
  let etype = f.readUInt16BE(12);
  let l3 = 14;
  for (let tags = 0; tags < 2 && (etype === 0x8100 || etype === 0x88a8); tags++) {
    if (f.length < l3 + 4) return IGNORE;
    etype = f.readUInt16BE(l3 + 2);
    l3 += 4;
  }
  const protoOf = (port: number) => (c.ports.vxlan.includes(port) ? 'vxlan' : c.ports.geneve.includes(port) ? 'geneve' : null);
  const otherHost = () => c.mac !== null && (f[0]! & 1) === 0 && !f.subarray(0, 6).equals(c.mac);
  let udp: number;
  let ipv6: boolean;
  let ipPayloadFromUdp: number; // bytes the IP header says follow the UDP header's start
  let protocol: 'vxlan' | 'geneve' | null;
  if (etype === 0x0800) {
    ipv6 = false;
    if (f.length < l3 + 20 || f[l3]! >> 4 !== 4) return IGNORE;
    const ihl = f[l3]! & 15;
    if (ihl < 5 || f.length < l3 + ihl * 4 || f[l3 + 9] !== 17) return IGNORE;
    const frag = f.readUInt16BE(l3 + 6);
    if (frag & 0x1fff) return IGNORE; // later fragment: no UDP header in it
    udp = l3 + ihl * 4;
    if (f.length < udp + 8) return IGNORE;
    protocol = protoOf(f.readUInt16BE(udp + 2));
    if (!protocol) return IGNORE;
    if (otherHost()) return pass('otherHost');
    if (c.local && !c.local.has(mapped(f.subarray(l3 + 16, l3 + 20)))) return pass('notLocal');
    if (frag & 0x2000) return pass('fragment');
    if (ihl !== 5) return pass('ipOptions');
    if (!onesComplementOk(f.subarray(l3, l3 + 20))) return pass('ipChecksum');
    const tot = f.readUInt16BE(l3 + 2);
    if (tot < 28) return pass('malformed');
    if (l3 + tot > f.length) return pass('truncated');
    ipPayloadFromUdp = tot - 20;
  } else if (etype === 0x86dd) {
    ipv6 = true;
    if (f.length < l3 + 40 || f[l3]! >> 4 !== 6) return IGNORE;
    let nh = f[l3 + 6]!;
    let p = l3 + 40;
    let exts = 0;
    let fragHdr = false;
    let laterFrag = false;
    while (IPV6_EXT.has(nh)) {
      if (exts === 4) return IGNORE;
      if (nh === 44) {
        if (f.length < p + 8) return IGNORE;
        fragHdr = true;
        if (f.readUInt16BE(p + 2) >> 3) laterFrag = true;
        nh = f[p]!;
        p += 8;
      } else {
        if (f.length < p + 2) return IGNORE;
        const len = (f[p + 1]! + 1) * 8;
        if (f.length < p + len) return IGNORE;
        nh = f[p]!;
        p += len;
      }
      exts++;
    }
    if (nh !== 17 || laterFrag) return IGNORE;
    udp = p;
    if (f.length < udp + 8) return IGNORE;
    protocol = protoOf(f.readUInt16BE(udp + 2));
    if (!protocol) return IGNORE;
    if (otherHost()) return pass('otherHost');
    if (c.local && !c.local.has(f.subarray(l3 + 24, l3 + 40).toString('hex'))) return pass('notLocal');
    if (fragHdr) return pass('fragment');
    if (exts > 0) return pass('ipv6ExtHeaders');
    const plen = f.readUInt16BE(l3 + 4);
    if (plen < 8) return pass('malformed');
    if (l3 + 40 + plen > f.length) return pass('truncated');
    ipPayloadFromUdp = plen;
  } else {
    return IGNORE;
  }
  const ulen = f.readUInt16BE(udp + 4);
  if (ulen < 8 || ulen > ipPayloadFromUdp) return pass('malformed');
  const th = udp + 8;
  const payload = ulen - 8;
  let hlen: number;
  if (payload < 8) return pass('truncated');
  if (protocol === 'vxlan') {
    if (!(f[th]! & 0x08)) return pass('vxlanFlags');
    hlen = 8;
  } else {
    if (f[th]! >> 6 !== 0) return pass('geneveVersion');
    if (f[th + 1]! & 0x80) return pass('geneveOam');
    if (f[th + 1]! & 0x40) return pass('geneveCritical');
    if (f.readUInt16BE(th + 2) !== 0x6558) return pass('geneveProtocol');
    hlen = 8 + (f[th]! & 0x3f) * 4;
    if (payload < hlen) return pass('truncated');
  }
  const vni = f.readUIntBE(th + 4, 3);
  if (payload - hlen < 14) return pass('innerTooShort');
  if (c.vnis && !c.vnis.has(vni)) return pass('vniNotAllowed');
  const inner = Buffer.from(f.subarray(th + hlen, udp + ulen));
  if (c.rewrite && !(inner[0]! & 1)) c.mac!.copy(inner, 0);
  let out = inner;
  if (c.metadata) {
    const m = Buffer.alloc(16);
    m.writeUInt32LE(0x424b4d31, 0);
    m.writeUInt32LE(vni, 4);
    m.writeUInt32LE(1 | (protocol === 'vxlan' ? 2 : 4) | (ipv6 ? 8 : 0), 12);
    out = Buffer.concat([m, inner]);
  }
  return { kind: 'decap', protocol, vni, ipv6, out };
}

// ---- corpus -----------------------------------------------------------------------------------

const seeds = fx.cases.map((c) => Buffer.from(c.in, 'hex'));
const INTERESTING16 = [0, 1, 7, 8, 9, 15, 16, 20, 27, 28, 40, 0x6558, 4789, 6081, 8472, 0x7fff, 0xffff];

function mutate(r: () => number, src: Buffer): Buffer {
  const pick = (n: number) => Math.floor(r() * n);
  let f = Buffer.from(src);
  const rounds = 1 + pick(3);
  for (let i = 0; i < rounds; i++) {
    const head = Math.min(f.length, 14 + 4 + 40 + 16 + 8 + 64); // where the headers live
    switch (pick(8)) {
      case 0: // flip bits
        f[pick(head)]! ^= 1 << pick(8);
        break;
      case 1: // random byte
        f[pick(head)] = pick(256);
        break;
      case 2: // interesting 16-bit value somewhere in the headers
        if (head >= 2) f.writeUInt16BE(INTERESTING16[pick(INTERESTING16.length)]! ^ (pick(4) === 0 ? pick(65536) : 0), pick(head - 1));
        break;
      case 3: // truncate
        f = f.subarray(0, Math.max(14, pick(f.length + 1)));
        break;
      case 4: // trailer
        f = Buffer.concat([f, Buffer.from(Array.from({ length: 1 + pick(40) }, () => pick(256)))]);
        break;
      case 5: // tunnel flag / option-length bytes: the VXLAN/Geneve header is 42 or 62 bytes in (no VLAN)
        for (const at of [42, 43, 62, 63]) if (at < f.length && pick(2)) f[at] = pick(256);
        break;
      case 6: // length fields of IPv4 (16), UDP (38/58) and IPv6 (18) headers, off by a little
        for (const at of [16, 18, 38, 58])
          if (at + 1 < f.length && pick(3) === 0) f.writeUInt16BE(Math.max(0, Math.min(0xffff, f.readUInt16BE(at) + pick(41) - 20)), at);
        break;
      default: {
        // random tail after the first 42..80 bytes
        const keep = Math.min(f.length, 42 + pick(40));
        f = Buffer.concat([f.subarray(0, keep), Buffer.from(Array.from({ length: pick(80) }, () => pick(256)))]);
      }
    }
  }
  return f.length >= 14 ? f : Buffer.concat([f, Buffer.alloc(14 - f.length)]);
}

// ---- the test -----------------------------------------------------------------------------------

const CONFIGS: { name: string; opts: DecapLoadOptions; ref: RefConfig }[] = [
  {
    name: 'default',
    opts: { interfaceMac: fx.interfaceMac, limits: { vniStats: 64 } },
    ref: { ports: { vxlan: [4789], geneve: [6081] }, vnis: null, local: null, mac: macBuf(fx.interfaceMac), rewrite: true, metadata: true },
  },
  {
    name: 'strict+allowlist',
    opts: { interfaceMac: fx.interfaceMac, vnis: [0, 100, 101, 200], localAddresses: ['198.18.1.2', '2001:db8:1::2'], limits: { vniStats: 64 } },
    ref: {
      ports: { vxlan: [4789], geneve: [6081] },
      vnis: new Set([0, 100, 101, 200]),
      local: new Set([mapped(parseIPv4('198.18.1.2')!), parseIPv6('2001:db8:1::2')!.toString('hex')]),
      mac: macBuf(fx.interfaceMac),
      rewrite: true,
      metadata: true,
    },
  },
  {
    name: 'plain+ports',
    opts: { rewriteMac: false, metadata: false, ports: { vxlan: [4789, 8472], geneve: [6081, 7000] }, limits: { vniStats: 64 } },
    ref: { ports: { vxlan: [4789, 8472], geneve: [6081, 7000] }, vnis: null, local: null, mac: null, rewrite: false, metadata: false },
  },
];

function macBuf(m: string): Buffer {
  return Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
}

const decaps = new Map<string, Decapsulator>();
beforeAll(async () => {
  for (const c of CONFIGS) decaps.set(c.name, await Decapsulator.load(c.opts));
});
afterAll(() => {
  for (const d of decaps.values()) d.close();
});

describe(`Decapsulator fuzz (seed ${SEED}, ${N} frames per config)`, () => {
  for (const cfg of CONFIGS) {
    it(`agrees with the reference classifier on every frame [${cfg.name}]`, async () => {
      const d = decaps.get(cfg.name)!;
      const r = rng(SEED ^ (cfg.name.length * 7919));
      const tally = new Map<string, number>();
      for (let i = 0; i < N; i++) {
        const base = seeds[Math.floor(r() * seeds.length)]!;
        const frame = r() < 0.1 ? base : mutate(r, base);
        const want = reference(frame, cfg.ref);
        const before = d.stats();
        const got = await d.testRun(frame);
        const after = d.stats();
        const where = `seed ${SEED} frame ${i} [${cfg.name}] ${frame.toString('hex')}`;
        expect(got.action, where).toBe('pass');
        const key = want.kind === 'pass' ? want.reason : want.kind;
        tally.set(key, (tally.get(key) ?? 0) + 1);
        const movedPassed = Object.entries(after.passed).filter(([k, v]) => v.packets !== before.passed[k as DecapPassReason].packets);
        const decapDelta = after.decapsulated.packets - before.decapsulated.packets;
        if (want.kind === 'decap') {
          expect(got.packet.toString('hex'), where).toBe(want.out.toString('hex'));
          expect(decapDelta, where).toBe(1n);
          const fam = want.ipv6 ? 'ipv6' : 'ipv4';
          expect(after.protocols[want.protocol][fam].packets - before.protocols[want.protocol][fam].packets, where).toBe(1n);
          const vniOf = (s: typeof after) => s.vnis.find((v) => v.protocol === want.protocol && v.vni === want.vni)?.packets ?? 0n;
          // exactly one of: the VNI's own counter, or the overflow counter (table full)
          const own = vniOf(after) - vniOf(before);
          const over = after.vniOverflow.packets - before.vniOverflow.packets;
          expect(own + over, where).toBe(1n);
          expect(movedPassed, where).toEqual([]);
        } else {
          expect(got.packet.toString('hex'), where).toBe(frame.toString('hex'));
          expect(decapDelta, where).toBe(0n);
          expect(
            movedPassed.map(([k]) => k),
            where,
          ).toEqual(want.kind === 'pass' ? [want.reason] : []);
        }
      }
      console.log(`[${cfg.name}] verdicts: ${JSON.stringify(Object.fromEntries(tally))}`);
      // the corpus must really exercise the program, not just be ignored. The strictest
      // config (strict + allowlist) decapsulates ~5-7% of the corpus, so N / 20 failed for
      // some seeds (74 of 1,500 with seed 1733696700): N / 30 still proves the point
      expect(tally.get('decap') ?? 0, JSON.stringify([...tally])).toBeGreaterThan(N / 30);
      expect([...tally.keys()].filter((k) => k !== 'decap' && k !== 'ignore').length, JSON.stringify([...tally])).toBeGreaterThanOrEqual(6);
    }, 180_000);
  }

  it('the per-VNI table is bounded: when full, new VNIs are counted as overflow and still decapsulated', async () => {
    const d = await Decapsulator.load({ interfaceMac: fx.interfaceMac, limits: { vniStats: 4 } });
    try {
      const tmpl = Buffer.from(fx.cases.find((c) => c.name === 'vxlan4')!.in, 'hex');
      for (let vni = 1; vni <= 10; vni++) {
        const f = Buffer.from(tmpl);
        f.writeUIntBE(vni, 42 + 4, 3);
        const r = await d.testRun(f);
        expect(r.packet.length).toBe(16 + 57);
      }
      const s = d.stats();
      expect(s.decapsulated.packets).toBe(10n);
      expect(s.vnis.map((v) => v.vni)).toEqual([1, 2, 3, 4]);
      expect(s.vniOverflow).toEqual({ packets: 6n, bytes: 6n * 57n });
    } finally {
      d.close();
    }
  });
});
