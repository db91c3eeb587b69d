import { describe, expect, it } from 'vitest';
import { array, bytes, i64, ipv4, struct, u16, u32, u64, u8, type Codec } from '../../lib/core/codecs.js';
import { enc, hex, roundTrip, thrown } from '../helpers/codecs.js';

/**
 * Random structs (members from every codec kind, '_' fields, packed, explicit offsets,
 * nested structs and arrays, user codecs) and random values (valid and not), encoded into
 * buffers of stale bytes at odd offsets and decoded again; also standalone encodes, decodes
 * of random bytes and buffers too small. Returns every outcome (bytes, values or error) as
 * JSON-able data. Self-contained: it also runs, as source text, in a child process.
 */
function fuzzCodecs(C: typeof import('../../lib/core/codecs.js'), seed: number, structs: number): unknown[] {
  let s = seed >>> 0;
  const rnd = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)];
  const ser = (x: any): any => {
    if (typeof x === 'bigint') return `${x}n`;
    if (x instanceof Uint8Array) return `hex:${Buffer.from(x).toString('hex')}`;
    if (Array.isArray(x)) return x.map(ser);
    if (x === undefined) return 'undefined';
    if (typeof x === 'number' && Object.is(x, -0)) return '-0';
    if (typeof x === 'object' && x !== null) return Object.fromEntries(Object.keys(x).map((k) => [k, ser(x[k])]));
    return x;
  };
  const outcome = (fn: () => unknown): unknown => {
    try {
      return { ok: ser(fn()) };
    } catch (e: any) {
      return { error: e?.constructor?.name, code: e?.code, field: e?.field, message: e?.message };
    }
  };
  // A codec from outside bpfkit (compiled structs call it and zero its bytes first); `lazy`
  // writes only its first byte.
  const user = (c: any, lazy = false): any => ({
    name: `user(${c.name})`,
    size: c.size,
    align: c.align,
    layout: c.layout,
    encode: lazy
      ? (v: any, b: Buffer, o: number) => {
          C.u8.encode(v & 0xff, b, o);
        }
      : (v: any, b: Buffer, o: number) => c.encode(v, b, o),
    decode: (b: Buffer, o: number) => c.decode(b, o),
  });
  const inner = C.struct('inner', [
    { name: 'x', codec: C.u16 },
    { name: '_p', codec: C.u8 },
    { name: 'y', codec: C.u32 },
  ]);
  const u32s = [0, 1, 0xdeadbeef, 2 ** 32 - 1, 2 ** 32, -1, 1.5, NaN, -0, '7', null, 7n];
  const kinds: [any, unknown[]][] = [
    [C.u8, [0, 255, 256, -1, 0x7f, 2.5, -0, Infinity, '1', true]],
    [C.u16, [0, 65535, 65536, 0x1234, -1, 1e300]],
    [C.u32, u32s],
    [C.be16, [443, 65535, 65536, -2]],
    [C.be32, [0xc6120001, 2 ** 32 - 1, 2 ** 32, -1]],
    [C.i8, [-128, 127, 128, -129, -1]],
    [C.i16, [-32768, 32767, 32768, -32769, -2]],
    [C.i32, [-(2 ** 31), 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, -3]],
    [C.u64, [0n, 2n ** 64n - 1n, 2n ** 64n, -1n, 0, 2 ** 53 - 1, 2 ** 53, 2 ** 32, 2 ** 32 - 1, 2 ** 32 + 1, -1, -0, 1.5, NaN, '1', 0x0102030405060708n]],
    [C.i64, [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 63n, -1, -(2 ** 53) + 1, -(2 ** 32), -(2 ** 32) - 1, 2 ** 31, -0, 2 ** 53, 1.5]],
    [
      C.u64n,
      [0n, 2n ** 64n - 1n, 2n ** 64n, -1n, 0, 2 ** 53 - 1, 2 ** 53 + 2, 2 ** 64 - 2048, 2 ** 64, 2 ** 32 + 1, -1, -0, 1.5, NaN, '1', 0x0102030405060708n],
    ],
    [C.i64n, [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 63n, -1, -(2 ** 63), 2 ** 63, -(2 ** 53) - 2, -(2 ** 32) - 1, 2 ** 31, -0, 1.5]],
    [C.bool, [true, false, 0, 1, 'true']],
    [C.ipv4, ['198.18.0.1', '0.0.0.0', '255.255.255.255', '198.19.255.7', '256.1.1.1', '1.2.3', '01.2.3.4', '', 0xc6120001]],
    [C.ipv6, ['2001:db8::1', '::', '::ffff:198.18.0.1', 'zz::', 5]],
    [C.mac, ['aa:bb:cc:dd:ee:ff', 'AA-BB-CC-DD-EE-0F', 'aa:bb']],
    [C.bytes(3), [Buffer.from([1, 2, 3]), new Uint8Array([4, 5, 6]), Buffer.alloc(2), [1, 2, 3]]],
    [C.bytes(40, 8), [Buffer.alloc(40, 7), Buffer.alloc(39)]],
    [C.bytes(70), [Buffer.alloc(70, 9), 'x']],
    [C.cstring(8), ['eth0', '', 'abcdefgh', 'a\0b', 5]],
    [C.array(C.u16, 3), [[1, 2, 3], [1, 2], [1, 2, 70000], [1, -0, 3], 'abc']],
    [
      C.array(C.ipv4, 2),
      [
        ['198.18.0.1', '198.18.0.2'],
        ['1.2.3.4', 'x'],
        [1, 2],
      ],
    ],
    [C.array(C.u64, 9), [Array.from({ length: 9 }, (_, i) => BigInt(i) << 40n), Array.from({ length: 9 }, (_, i) => i * 2 ** 33), [...Array(8).fill(1n), -1n]]],
    [
      C.array(C.bool, 2),
      [
        [true, false],
        [true, 1],
      ],
    ],
    [
      C.array(inner, 2),
      [
        [
          { x: 1, y: 2 },
          { x: 3, y: 4, _p: 5 },
        ],
        [{ x: 1, y: 2 }, { x: 1 }],
      ],
    ],
    [C.lpmKey(4), ['198.18.0.0/15', { prefixLen: 24, addr: '198.18.1.0' }, '198.18.0.1/24']],
    [inner, [{ x: 1, y: 2 }, { x: 1, y: 2, _p: 9 }, { x: 1 }, { x: 1, y: 2, z: 3 }, 'inner']],
    [user(C.u32), u32s],
    [user(C.u32, true), [1, 2, 300]],
  ];
  const names = ['a', 'b', 'src', 'dst', 'sport', 'class', 'default', 'new', 'constructor', 'value', 'x1', 'flags'];
  const out: unknown[] = [];
  const bufs = [Buffer.alloc(512), Buffer.alloc(512), Buffer.alloc(512)];
  for (let n = 0; n < structs; n++) {
    const count = 1 + rnd(7);
    const fields: { name: string; codec: any; offset?: number }[] = [];
    const samples: unknown[][] = [];
    let end = 0;
    for (let i = 0; i < count; i++) {
      const [codec, values] = pick(kinds);
      const pad = rnd(6) === 0;
      const name = pad ? `_pad${i}` : `${pick(names)}${fields.some((f) => f.name.startsWith(names[0])) ? i : ''}`;
      if (fields.some((f) => f.name === name)) continue;
      const f: { name: string; codec: any; offset?: number } = { name, codec };
      if (rnd(8) === 0) f.offset = end + rnd(4);
      end = Math.max(f.offset ?? 0, end) + codec.size;
      fields.push(f);
      samples.push(values);
    }
    if (fields.every((f) => f.name.startsWith('_'))) {
      fields.push({ name: 'last', codec: C.u8 });
      samples.push([3, 300]);
    }
    const packed = rnd(5) === 0;
    const built = outcome(() => C.struct(`s${n}`, fields, { packed }).layout);
    out.push(built);
    if (!('ok' in (built as object))) continue;
    const st = C.struct(`s${n}`, fields, { packed });
    for (let k = 0; k < 6; k++) {
      const v: Record<string, unknown> = {};
      fields.forEach((f, i) => {
        if (f.name.startsWith('_') ? rnd(3) === 0 : rnd(12) !== 0) v[f.name] = rnd(3) === 0 ? pick(samples[i]) : samples[i][0];
      });
      if (rnd(10) === 0) v[`extra${rnd(3)}`] = 1;
      const value = rnd(25) === 0 ? pick([null, [], 5, 'str', Object.assign(Object.create({ inherited: 1 }), v)]) : v;
      const buf = pick(bufs);
      buf.fill(rnd(2) ? 0xee : 0);
      const off = rnd(12) === 0 ? buf.length - st.size + 1 : rnd(9);
      out.push(
        outcome(() => {
          st.encode(value as never, buf, off);
          return [buf.subarray(0, st.size + 16), st.decode(buf, off)];
        }),
      );
    }
    const raw = Buffer.alloc(st.size + 8);
    for (let i = 0; i < raw.length; i++) raw[i] = rnd(256);
    out.push(outcome(() => st.decode(raw, rnd(9))));
    out.push(outcome(() => st.decode(raw, 9)));
    // the members on their own
    for (let i = 0; i < fields.length; i++) {
      const c = fields[i].codec;
      const b = Buffer.alloc(c.size + 4, 0xee);
      const off = pick([0, 1, 4, 5, b.length - c.size + 1]);
      out.push(
        outcome(() => {
          c.encode(pick(samples[i]), b, off);
          return [b, c.decode(b, off)];
        }),
      );
      out.push(outcome(() => c.decode(raw, off)));
    }
  }
  return out;
}

describe('compiled codecs', () => {
  it('zero the bytes a user codec leaves alone, and padding, in a buffer of stale bytes', () => {
    const firstByte: Codec<number> = {
      name: 'first',
      size: 4,
      align: 4,
      layout: u32.layout,
      encode: (v, b, o) => {
        b[o] = v;
      },
      decode: (b, o) => b[o],
    };
    const c = struct('z', [
      { name: 'a', codec: u8 },
      { name: 'f', codec: firstByte },
      { name: '_r', codec: bytes(2) },
      { name: 'b', codec: u16 },
    ]);
    expect(c.size).toBe(12);
    const buf = Buffer.alloc(14, 0xff);
    c.encode({ a: 1, f: 2, b: 3 }, buf, 1);
    expect(buf).toEqual(hex('ff 01000000 02000000 0000 0300 ff'));
    c.encode({ a: 1, f: 2, b: 3, _r: hex('abcd') }, buf, 1);
    expect(buf).toEqual(hex('ff 01000000 02000000 abcd 0300 ff'));
  });

  it('u64/i64 write numbers exactly as the same bigints, and nothing when the buffer is too small', () => {
    for (const [c, v] of [
      [u64, 2 ** 53 - 1],
      [u64, 2 ** 32],
      [u64, 2 ** 32 - 1],
      [u64, 0x123456789a],
      [i64, -1],
      [i64, -(2 ** 53) + 1],
      [i64, -(2 ** 32)],
      [i64, -(2 ** 32) - 1],
      [i64, 2 ** 31],
    ] as const) {
      expect(enc(c, v)).toEqual(enc(c, BigInt(v)));
    }
    const buf = Buffer.alloc(7, 0xee);
    expect(() => u64.encode(1, buf, 0)).toThrow(RangeError);
    expect(() => i64.encode(-1, buf, 0)).toThrow(RangeError);
    expect(buf).toEqual(Buffer.alloc(7, 0xee));
  });

  it('structs of many fields, and fields named like JS keywords or Object.prototype members', () => {
    const wide = struct('wide', Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, u8])));
    const v = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, i]));
    expect(roundTrip(wide, v)).toEqual(v);
    expect(thrown(() => wide.encode({ ...v, f30: 1 } as never, Buffer.alloc(30), 0)).message).toMatch(
      /^struct wide\.f30: unknown field \(fields are: f0, f1, .*, f29\)$/,
    );
    const odd = struct('class', { default: u8, new: u16, constructor: u32, valueOf: u8 });
    const w = { default: 1, new: 2, constructor: 3, valueOf: 4 };
    expect(roundTrip(odd, w)).toEqual(w);
    expect(Object.keys(odd.decode(Buffer.alloc(12), 0))).toEqual(['default', 'new', 'constructor', 'valueOf']);
    // absent, these resolve to Object.prototype's members, which are not valid values
    expect(thrown(() => odd.encode({ default: 1, new: 2 } as never, Buffer.alloc(12), 0)).message).toBe(
      'struct class.constructor (u32): expected an integer in 0..4294967295, got a function',
    );
  });

  it('ignore inherited enumerable properties when looking for unknown fields', () => {
    const k = struct('k', { a: u8 });
    const v = Object.assign(Object.create({ b: 1 }), { a: 5 });
    expect(enc(k, v)).toEqual(hex('05'));
  });

  it('arrays that do not fit fail at the first element out of bounds, as before', () => {
    expect(() => array(ipv4, 2).decode(Buffer.alloc(6), 0)).toThrow(new RangeError('need 4 bytes at offset 4 but the buffer is 6 bytes'));
    const buf = Buffer.alloc(6, 0xee);
    expect(() => array(ipv4, 2).encode(['198.18.0.1', '198.18.0.2'], buf, 0)).toThrow(new RangeError('need 4 bytes at offset 4 but the buffer is 6 bytes'));
    expect(buf).toEqual(hex('c6120001 eeee'));
    expect(() => array(u16, 4).decode(Buffer.alloc(7), 0)).toThrow(RangeError);
  });

  it('compile on first use; a reference to encode/decode taken before still works, out of bounds too', () => {
    const c = struct('lazy', { a: u32, b: ipv4 });
    const pair = array(u16, 2);
    const encode = c.encode;
    const decode = pair.decode;
    expect([encode.name, decode.name]).toEqual(['encode', 'decode']);
    const buf = Buffer.alloc(8, 0xee);
    encode({ a: 7, b: '198.18.0.1' }, buf, 0);
    expect(buf).toEqual(hex('07000000 c6120001'));
    expect(c.encode.name).toBe('encode_lazy');
    expect(encode({ a: 8, b: '198.18.0.2' }, buf, 0)).toBeUndefined();
    expect(c.decode(buf, 0)).toEqual({ a: 8, b: '198.18.0.2' });
    // the compiled array's fallback is the generic code, not the stub that compiled it
    expect(decode(Buffer.alloc(4, 1), 0)).toEqual([0x101, 0x101]);
    expect(pair.decode.name).toBe('decode_array');
    expect(() => decode(Buffer.alloc(3), 0)).toThrow(/outside the bounds/); // the generic code's error, not a stack overflow
  });

  it('decoded bytes are copies, short or long, also from a struct', () => {
    const c = struct('b', { s: bytes(3), l: bytes(100) });
    const buf = Buffer.alloc(103, 1);
    const d = c.decode(buf, 0);
    buf.fill(2);
    expect([d.s, d.l]).toEqual([Buffer.alloc(3, 1), Buffer.alloc(100, 1)]);
    expect(bytes(3).decode(buf, 0)).toEqual(Buffer.alloc(3, 2));
  });

  it('match the generic code (code generation disabled) on random layouts, values and errors', async () => {
    // The generic code: the same source, transpiled, in a node that refuses new Function.
    const ts = (await import('typescript')).default;
    const { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const C = await import('../../lib/core/codecs.js');
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-codecs-'));
    try {
      // lib/core/codecs.ts, the files of lib/core/codecs/, lib/core/errors.ts and validate.ts, same layout
      mkdirSync(join(dir, 'codecs'));
      const parts = readdirSync(new URL('../../lib/core/codecs/', import.meta.url))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => `codecs/${f.slice(0, -3)}`);
      expect(parts.length).toBeGreaterThan(1);
      for (const f of ['codecs', 'errors', 'validate', ...parts]) {
        const src = readFileSync(new URL(`../../lib/core/${f}.ts`, import.meta.url), 'utf8');
        const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
        writeFileSync(join(dir, `${f}.js`), js);
      }
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      const script = `import * as C from ${JSON.stringify(join(dir, 'codecs.js'))};
        const fuzzCodecs = ${fuzzCodecs.toString()};
        const probe = C.struct('probe', { a: C.u8 });
        const pair = C.array(C.u8, 2);
        // codecs compile on first use: use each once, then look at what is in place
        C.u32.encode(1, Buffer.alloc(4), 0); probe.encode({ a: 1 }, Buffer.alloc(1), 0); pair.decode(Buffer.alloc(2), 0);
        console.log(JSON.stringify({ names: [C.u32.encode.name, probe.encode.name, pair.decode.name], results: fuzzCodecs(C, ${0x5eed}, 300) }));`;
      const child = JSON.parse(
        execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script], {
          encoding: 'utf8',
          maxBuffer: 1 << 28,
          timeout: 60_000,
        }),
      );

      // the child really ran the generic code; this process the compiled code
      expect(child.names).toEqual(['encode', 'encode', 'decode']);
      const probe = C.struct('probe', { a: u8 });
      const pair = C.array(u8, 2);
      C.u32.encode(1, Buffer.alloc(4), 0);
      probe.encode({ a: 1 }, Buffer.alloc(1), 0);
      pair.decode(Buffer.alloc(2), 0);
      expect([C.u32.encode.name, probe.encode.name, pair.decode.name]).toEqual(['encode_u32', 'encode_probe', 'decode_array']);
      const results = fuzzCodecs(C, 0x5eed, 300);
      expect(results.length).toBe(child.results.length);
      // enough of each kind of outcome that the comparison means something
      const kinds = (rs: any[]) => ({
        ok: rs.filter((r) => 'ok' in r).length,
        invalid: rs.filter((r) => r.code === 'ERR_INVALID_ARGUMENT').length,
        range: rs.filter((r) => r.error === 'RangeError').length,
      });
      const k = kinds(results as any[]);
      expect(k.ok).toBeGreaterThan(1000);
      expect(k.invalid).toBeGreaterThan(500);
      expect(k.range).toBeGreaterThan(100);
      for (let i = 0; i < results.length; i++) {
        if (JSON.stringify(results[i]) !== JSON.stringify(child.results[i])) expect([i, results[i]]).toEqual([i, child.results[i]]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
