import { describe, expect, expectTypeOf, it } from 'vitest';
import { BpfkitError } from '../../lib/core/errors.js';
import {
  array, be16, be32, bool, bytes, checkCodec, cstring, formatIPv4, formatIPv6, i16, i32, i64, i8,
  ipv4, ipv6, lpmKey, mac, parseCidr, parseIPv4, parseIPv6, struct, u16, u32, u64, u8,
  type BtfTypeInfo, type Codec, type Infer, type InferInput,
} from '../../lib/core/codecs.js';

/** Run fn, expect a BpfkitError, return it. */
function thrown(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError, nothing was thrown');
}

/** Encode at a non-zero offset in a buffer pre-filled with 0xee; return the encoded bytes. */
function enc<T, I>(c: Codec<T, I>, v: I): Buffer {
  const buf = Buffer.alloc(c.size + 6, 0xee);
  c.encode(v, buf, 3);
  expect(buf.subarray(0, 3)).toEqual(Buffer.from([0xee, 0xee, 0xee]));
  expect(buf.subarray(3 + c.size)).toEqual(Buffer.from([0xee, 0xee, 0xee]));
  return Buffer.from(buf.subarray(3, 3 + c.size));
}

/** Encode then decode at offset 3, returning the decoded value. */
function roundTrip<T, I>(c: Codec<T, I>, v: I): T {
  const buf = Buffer.alloc(c.size + 6, 0xee);
  c.encode(v, buf, 3);
  return c.decode(buf, 3);
}

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('integer codecs', () => {
  const cases: [Codec<number>, number, number, number, string][] = [
    // codec, size, min, max, bytes of max
    [u8, 1, 0, 255, 'ff'],
    [u16, 2, 0, 65535, 'ffff'],
    [u32, 4, 0, 4294967295, 'ffffffff'],
    [i8, 1, -128, 127, '7f'],
    [i16, 2, -32768, 32767, 'ff7f'],
    [i32, 4, -2147483648, 2147483647, 'ffffff7f'],
    [be16, 2, 0, 65535, 'ffff'],
    [be32, 4, 0, 4294967295, 'ffffffff'],
  ];
  it.each(cases)('%s: size, align, bounds and round trips', (c, size, min, max, maxHex) => {
    expect([c.size, c.align]).toEqual([size, size]);
    expect(c.layout).toEqual({ kind: 'int', size, signed: min < 0 });
    for (const v of [0, 1, min, max, max - 1]) expect(roundTrip(c, v)).toBe(v);
    expect(enc(c, max)).toEqual(hex(maxHex));
    for (const bad of [max + 1, min - 1, 1.5, NaN, Infinity]) {
      const e = thrown(() => c.encode(bad, Buffer.alloc(8), 0));
      expect(e.code).toBe('ERR_INVALID_ARGUMENT');
      expect(e.field).toBe(c.name);
      expect(e.message).toBe(`${c.name}: expected an integer in ${min}..${max}, got ${bad}`);
    }
  });

  it('uses host (little-endian) order for u16/u32/i32 and network order for be16/be32', () => {
    expect(enc(u16, 0x1234)).toEqual(hex('3412'));
    expect(enc(u32, 0x12345678)).toEqual(hex('78563412'));
    expect(enc(i32, -2)).toEqual(hex('feffffff'));
    expect(enc(i16, -32768)).toEqual(hex('0080'));
    expect(enc(be16, 443)).toEqual(hex('01bb'));
    expect(enc(be32, 0xc6120001)).toEqual(hex('c6120001'));
    expect(be16.decode(hex('1f90'), 0)).toBe(8080);
  });

  it('rejects non-numbers with the value shown', () => {
    expect(thrown(() => u32.encode('5' as never, Buffer.alloc(4), 0)).message).toBe('u32: expected an integer in 0..4294967295, got "5"');
    expect(thrown(() => u8.encode(undefined as never, Buffer.alloc(4), 0)).message).toBe('u8: expected an integer in 0..255, got undefined');
    expect(thrown(() => u16.encode(1n as never, Buffer.alloc(4), 0)).message).toBe('u16: expected an integer in 0..65535, got 1n');
  });

  it('u64/i64: bigint round trips, numbers accepted on encode, decode always bigint', () => {
    expect([u64.size, u64.align, i64.size, i64.align]).toEqual([8, 8, 8, 8]);
    expect(roundTrip(u64, 0n)).toBe(0n);
    expect(roundTrip(u64, 2n ** 64n - 1n)).toBe(18446744073709551615n);
    expect(roundTrip(i64, -(2n ** 63n))).toBe(-9223372036854775808n);
    expect(roundTrip(i64, 2n ** 63n - 1n)).toBe(9223372036854775807n);
    expect(roundTrip(u64, 42)).toBe(42n);
    expect(roundTrip(i64, -42)).toBe(-42n);
    expect(roundTrip(u64, Number.MAX_SAFE_INTEGER)).toBe(9007199254740991n);
    expect(enc(u64, 0x0102030405060708n)).toEqual(hex('0807060504030201'));
    expect(enc(i64, -1)).toEqual(hex('ffffffffffffffff'));
  });

  it('u64/i64: rejects out of range, unsafe numbers and non-integers', () => {
    const b = Buffer.alloc(8);
    expect(thrown(() => u64.encode(2n ** 64n, b, 0)).message).toBe('u64: expected an integer in 0..18446744073709551615, got 18446744073709551616');
    expect(thrown(() => u64.encode(-1n, b, 0)).message).toBe('u64: expected an integer in 0..18446744073709551615, got -1');
    expect(thrown(() => u64.encode(-1, b, 0)).message).toBe('u64: expected an integer in 0..18446744073709551615, got -1');
    expect(thrown(() => i64.encode(2n ** 63n, b, 0)).message).toBe('i64: expected an integer in -9223372036854775808..9223372036854775807, got 9223372036854775808');
    expect(thrown(() => u64.encode(2 ** 53, b, 0)).message).toBe('u64: 9007199254740992 is not a safe integer; pass a bigint');
    expect(thrown(() => u64.encode(1.5, b, 0)).message).toBe('u64: expected a bigint or a safe integer, got 1.5');
    expect(thrown(() => u64.encode(NaN, b, 0)).message).toBe('u64: expected a bigint or a safe integer, got NaN');
    expect(thrown(() => i64.encode('1' as never, b, 0)).code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('bool is one byte, any non-zero byte decodes as true', () => {
    expect(enc(bool, true)).toEqual(hex('01'));
    expect(enc(bool, false)).toEqual(hex('00'));
    expect(bool.decode(hex('02'), 0)).toBe(true);
    expect(bool.decode(hex('00'), 0)).toBe(false);
    expect(bool.layout).toEqual({ kind: 'int', size: 1, signed: false });
    expect(thrown(() => bool.encode(1 as never, Buffer.alloc(1), 0)).message).toBe('bool: expected true or false, got 1');
  });

  it('a buffer too small is a RangeError, not an input error', () => {
    expect(() => u32.encode(1, Buffer.alloc(3), 0)).toThrow(RangeError);
    expect(() => u32.decode(Buffer.alloc(6), 3)).toThrow(RangeError);
    expect(() => bytes(4).decode(Buffer.alloc(6), 3)).toThrow('need 4 bytes at offset 3 but the buffer is 6 bytes');
  });

  it('works on Buffers that are views into a shared pool', () => {
    const pool = Buffer.alloc(32, 0xaa);
    const a = pool.subarray(8, 12);
    u32.encode(0x01020304, a, 0);
    expect(pool.subarray(6, 14)).toEqual(hex('aaaa04030201aaaa'));
    expect(() => u32.encode(1, a, 1)).toThrow(RangeError); // stays inside the view
    expect(u32.decode(a, 0)).toBe(0x01020304);
  });
});

describe('bytes, cstring, mac', () => {
  it('bytes(n) copies exactly n bytes and decodes to a fresh Buffer', () => {
    const c = bytes(6);
    expect([c.name, c.size, c.align]).toEqual(['bytes[6]', 6, 1]);
    expect(c.layout).toEqual({ kind: 'bytes', size: 6 });
    expect(enc(c, new Uint8Array([1, 2, 3, 4, 5, 6]))).toEqual(hex('010203040506'));
    const src = hex('00112233445566');
    const out = c.decode(src, 1);
    expect(out).toEqual(hex('112233445566'));
    src[1] = 0x99;
    expect(out[0]).toBe(0x11); // not a view of the source
    expect(bytes(16, 4).align).toBe(4);
  });

  it('bytes(n) rejects the wrong length or type', () => {
    expect(thrown(() => bytes(6).encode(Buffer.alloc(5), Buffer.alloc(6), 0)).message).toBe('bytes[6]: expected a Buffer or Uint8Array of 6 bytes, got a Buffer of 5 bytes');
    expect(thrown(() => bytes(2).encode([1, 2] as never, Buffer.alloc(6), 0)).message).toBe('bytes[2]: expected a Buffer or Uint8Array of 2 bytes, got an array of 2');
    expect(thrown(() => bytes(0)).message).toBe('bytes: size must be an integer >= 1, got 0');
    expect(thrown(() => bytes(4, 3 as never)).message).toBe('bytes: align must be 1, 2, 4 or 8, got 3');
  });

  it('cstring(n) NUL-pads, requires room for the terminator and stops at NUL', () => {
    const c = cstring(8);
    expect([c.name, c.size, c.align]).toEqual(['cstring[8]', 8, 1]);
    expect(enc(c, 'eth0')).toEqual(hex('6574683000000000'));
    expect(roundTrip(c, 'eth0')).toBe('eth0');
    expect(roundTrip(c, '')).toBe('');
    expect(roundTrip(c, 'abcdefg')).toBe('abcdefg');
    expect(roundTrip(c, 'zé')).toBe('zé');
    expect(c.decode(Buffer.from('abcdefgh'), 0)).toBe('abcdefgh'); // unterminated: all n bytes
    expect(thrown(() => c.encode('abcdefgh', Buffer.alloc(8), 0)).message).toBe('cstring[8]: "abcdefgh" is 8 bytes but at most 7 fit (plus the NUL terminator)');
    expect(thrown(() => c.encode('a\0b', Buffer.alloc(8), 0)).message).toBe('cstring[8]: "a\\u0000b" contains a NUL character');
    expect(thrown(() => c.encode(5 as never, Buffer.alloc(8), 0)).message).toBe('cstring[8]: expected a string, got 5');
  });

  it('cstring zeroes stale bytes after the string', () => {
    const buf = Buffer.alloc(8, 0x41);
    cstring(8).encode('hi', buf, 0);
    expect(buf).toEqual(hex('6869000000000000'));
  });

  it('mac round trips to lower case with colons', () => {
    expect(enc(mac, 'aa:bb:cc:dd:ee:0f')).toEqual(hex('aabbccddee0f'));
    expect(roundTrip(mac, 'AA:BB:CC:DD:EE:FF')).toBe('aa:bb:cc:dd:ee:ff');
    expect(roundTrip(mac, '02-00-00-00-00-01')).toBe('02:00:00:00:00:01');
    expect(mac.decode(hex('000102030405'), 0)).toBe('00:01:02:03:04:05');
    for (const bad of ['aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa:bb:cc:dd:ee:fg', 'a:bb:cc:dd:ee:ff', 'aa:bb-cc:dd:ee:ff', 'aabbccddeeff']) {
      expect(thrown(() => mac.encode(bad, Buffer.alloc(6), 0)).message).toBe(`mac: expected a MAC address like aa:bb:cc:dd:ee:ff, got "${bad}"`);
    }
  });
});

describe('IPv4', () => {
  it('parses and formats dotted quads in network order', () => {
    expect(parseIPv4('198.18.0.1')).toEqual(hex('c6120001'));
    expect(parseIPv4('0.0.0.0')).toEqual(hex('00000000'));
    expect(parseIPv4('255.255.255.255')).toEqual(hex('ffffffff'));
    expect(formatIPv4(hex('ffc6120001'), 1)).toBe('198.18.0.1');
    expect(formatIPv4(hex('0a000001'))).toBe('10.0.0.1');
  });

  it.each(['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.04', '00.1.2.3', '1..2.3', '1.2.3.', '.1.2.3', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.-4', '0x1.2.3.4', '', '1.2.3.1000'])(
    'rejects %j',
    (s) => expect(parseIPv4(s)).toBeNull(),
  );

  it('ipv4 codec', () => {
    expect([ipv4.name, ipv4.size, ipv4.align]).toEqual(['ipv4', 4, 4]);
    expect(ipv4.layout).toEqual({ kind: 'bytes', size: 4 });
    expect(enc(ipv4, '198.18.0.1')).toEqual(hex('c6120001'));
    expect(roundTrip(ipv4, '10.255.0.7')).toBe('10.255.0.7');
    const e = thrown(() => ipv4.encode('256.1.1.1', Buffer.alloc(4), 0));
    expect([e.code, e.field, e.message]).toEqual(['ERR_INVALID_ARGUMENT', 'ipv4', 'ipv4: expected an IPv4 address like 198.18.0.1, got "256.1.1.1"']);
    expect(thrown(() => ipv4.encode(0xc6120001 as never, Buffer.alloc(4), 0)).message).toBe('ipv4: expected an IPv4 address like 198.18.0.1, got 3323068417');
  });
});

describe('IPv6', () => {
  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first is compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8::', '2001:db8::'],
    ['2001:DB8::A:B', '2001:db8::a:b'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['0:0:0:1:0:0:0:0', '0:0:0:1::'],
    ['fe80::1:0:0:0', 'fe80::1:0:0:0'],
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['0:0:0:0:0:ffff:c612:1', '::ffff:198.18.0.1'], // IPv4-mapped: mixed notation (RFC 5952 s5)
    ['::FFFF:10.0.0.1', '::ffff:10.0.0.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ])('%s -> %s', (input, canonical) => {
    const b = parseIPv6(input);
    expect(b).not.toBeNull();
    expect(formatIPv6(b!)).toBe(canonical);
    expect(roundTrip(ipv6, input)).toBe(canonical);
    expect(parseIPv6(canonical)).toEqual(b);
  });

  it('parses to the exact bytes', () => {
    expect(parseIPv6('2001:db8::1')).toEqual(hex('20010db8000000000000000000000001'));
    expect(parseIPv6('::ffff:198.18.0.1')).toEqual(hex('00000000000000000000ffffc6120001'));
    expect(formatIPv6(hex('aa20010db8000000000000000000000002'), 1)).toBe('2001:db8::2');
  });

  it.each([
    ':::', '1::2::3', 'g::1', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8',
    ':1::', '1::2:', ':1:2:3:4:5:6:7:8', '12345::', '1.2.3.4', '::1.2.3', '::256.0.0.1', '::01.2.3.4',
    '1.2.3.4::', '::1.2.3.4:1', '1:2:3:4:5:6:7:1.2.3.4', 'fe80::1%eth0', '', ' ::1', '::1 ', '[::1]',
  ])('rejects %j', (s) => expect(parseIPv6(s)).toBeNull());

  it('ipv6 codec', () => {
    expect([ipv6.name, ipv6.size, ipv6.align]).toEqual(['ipv6', 16, 4]);
    expect(ipv6.layout).toEqual({ kind: 'bytes', size: 16 });
    expect(enc(ipv6, '2001:db8::1')).toEqual(hex('20010db8000000000000000000000001'));
    expect(thrown(() => ipv6.encode('1::2::3', Buffer.alloc(16), 0)).message).toBe('ipv6: expected an IPv6 address like 2001:db8::1, got "1::2::3"');
    expect(thrown(() => ipv6.encode('198.18.0.1', Buffer.alloc(16), 0)).field).toBe('ipv6');
  });

  it('the parsers return null for non-strings', () => {
    expect(parseIPv4(3 as never)).toBeNull();
    expect(parseIPv6(null as never)).toBeNull();
  });
});

describe('parseCidr', () => {
  it('parses v4 and v6 prefixes', () => {
    expect(parseCidr('198.18.0.0/16')).toEqual({ family: 4, addr: hex('c6120000'), prefixLen: 16 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ family: 4, addr: hex('00000000'), prefixLen: 0 });
    expect(parseCidr('2001:db8::/32')).toEqual({ family: 6, addr: hex('20010db8000000000000000000000000'), prefixLen: 32 });
    expect(parseCidr('::/0')).toEqual({ family: 6, addr: Buffer.alloc(16), prefixLen: 0 });
    expect(parseCidr('10.1.2.3/32').prefixLen).toBe(32);
    expect(parseCidr('198.18.0.128/25').addr).toEqual(hex('c6120080'));
    expect(parseCidr('2001:db8::1/128').prefixLen).toBe(128);
  });

  it('a missing prefix means a host route', () => {
    expect(parseCidr('10.0.0.1')).toEqual({ family: 4, addr: hex('0a000001'), prefixLen: 32 });
    expect(parseCidr('::1')).toEqual({ family: 6, addr: parseIPv6('::1'), prefixLen: 128 });
  });

  it('rejects host bits beyond the prefix, naming the network', () => {
    const e = thrown(() => parseCidr('198.18.0.1/24'));
    expect([e.code, e.field]).toEqual(['ERR_INVALID_ARGUMENT', 'CIDR']);
    expect(e.message).toBe('CIDR: 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)');
    expect(thrown(() => parseCidr('198.18.0.129/25')).message).toContain('(did you mean 198.18.0.128/25?)');
    expect(thrown(() => parseCidr('2001:DB8::1/32')).message).toBe('CIDR: 2001:db8::1/32 has host bits set (did you mean 2001:db8::/32?)');
    expect(thrown(() => parseCidr('1.0.0.0/0')).message).toContain('(did you mean 0.0.0.0/0?)');
    expect(thrown(() => parseCidr('10.1.0.0/15', 'rule r7 dst')).message).toBe('rule r7 dst: 10.1.0.0/15 has host bits set (did you mean 10.0.0.0/15?)');
  });

  it.each([
    ['10.0.0.0/33', 'CIDR: "10.0.0.0/33" has an invalid prefix length (expected /0 to /32)'],
    ['::/129', 'CIDR: "::/129" has an invalid prefix length (expected /0 to /128)'],
    ['10.0.0.0/', 'CIDR: "10.0.0.0/" has an invalid prefix length (expected /0 to /32)'],
    ['10.0.0.0/08', 'CIDR: "10.0.0.0/08" has an invalid prefix length (expected /0 to /32)'],
    ['10.0.0.0/-1', 'CIDR: "10.0.0.0/-1" has an invalid prefix length (expected /0 to /32)'],
    ['10.0.0.0/8/8', 'CIDR: "10.0.0.0/8/8" has an invalid prefix length (expected /0 to /32)'],
    ['10.0.0.0/ 8', 'CIDR: "10.0.0.0/ 8" has an invalid prefix length (expected /0 to /32)'],
    ['10.0.0/8', 'CIDR: "10.0.0/8" does not start with a valid IPv4 address'],
    ['garbage', 'CIDR: "garbage" does not start with a valid IPv4 address'],
    ['1::2::3/64', 'CIDR: "1::2::3/64" does not start with a valid IPv6 address'],
    ['', 'CIDR: "" does not start with a valid IPv4 address'],
  ])('rejects %j', (s, message) => {
    const e = thrown(() => parseCidr(s));
    expect([e.code, e.message]).toEqual(['ERR_INVALID_ARGUMENT', message]);
  });

  it('rejects non-strings', () => {
    expect(thrown(() => parseCidr(167772160 as never)).message).toBe('CIDR: expected a CIDR string like 198.18.0.0/16, got 167772160');
  });
});

describe('lpmKey', () => {
  it('v4: u32 prefixlen (host order) then the address (network order), 8 bytes', () => {
    const c = lpmKey(4);
    expect([c.name, c.size, c.align]).toEqual(['lpmKey(4)', 8, 4]);
    expect(c.layout).toEqual({ kind: 'bytes', size: 8 });
    expect(enc(c, { prefixLen: 16, addr: '198.18.0.0' })).toEqual(hex('10000000 c6120000'));
    expect(enc(c, '198.18.0.0/16')).toEqual(hex('10000000 c6120000'));
    expect(enc(c, '10.0.0.1')).toEqual(hex('20000000 0a000001'));
    expect(enc(c, '0.0.0.0/0')).toEqual(hex('00000000 00000000'));
    expect(c.decode(hex('18000000 0a0b0c00'), 0)).toEqual({ prefixLen: 24, addr: '10.11.12.0' });
    expect(roundTrip(c, '192.0.2.0/24')).toEqual({ prefixLen: 24, addr: '192.0.2.0' });
  });

  it('v6: 20 bytes', () => {
    const c = lpmKey(6);
    expect([c.name, c.size, c.align]).toEqual(['lpmKey(6)', 20, 4]);
    expect(enc(c, '2001:db8::/32')).toEqual(hex('20000000 20010db8000000000000000000000000'));
    expect(enc(c, { prefixLen: 128, addr: '::1' })).toEqual(hex('80000000 00000000000000000000000000000001'));
    expect(roundTrip(c, { prefixLen: 64, addr: '2001:DB8:0:1::' })).toEqual({ prefixLen: 64, addr: '2001:db8:0:1::' });
  });

  it('rejects host bits, bad prefixes, wrong family and typos', () => {
    const c4 = lpmKey(4);
    const b = Buffer.alloc(20);
    expect(thrown(() => c4.encode({ prefixLen: 24, addr: '198.18.0.1' }, b, 0)).message).toBe('lpmKey(4): 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)');
    expect(thrown(() => c4.encode('198.18.0.1/24', b, 0)).message).toBe('lpmKey(4): 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)');
    const e = thrown(() => c4.encode({ prefixLen: 33, addr: '10.0.0.0' }, b, 0));
    expect([e.field, e.message]).toEqual(['lpmKey(4).prefixLen', 'lpmKey(4).prefixLen: expected an integer in 0..32, got 33']);
    expect(thrown(() => c4.encode({ prefixLen: -1, addr: '10.0.0.0' }, b, 0)).field).toBe('lpmKey(4).prefixLen');
    expect(thrown(() => c4.encode({ prefixLen: 8, addr: '10.0.0' }, b, 0)).message).toBe('lpmKey(4).addr: expected an IPv4 address, got "10.0.0"');
    expect(thrown(() => c4.encode('2001:db8::/32', b, 0)).message).toBe('lpmKey(4): "2001:db8::/32" is not an IPv4 prefix');
    expect(thrown(() => lpmKey(6).encode({ prefixLen: 8, addr: '10.0.0.0' }, b, 0)).message).toBe('lpmKey(6).addr: expected an IPv6 address, got "10.0.0.0"');
    expect(thrown(() => lpmKey(6).encode({ prefixLen: 129, addr: '::' }, b, 0)).message).toBe('lpmKey(6).prefixLen: expected an integer in 0..128, got 129');
    expect(thrown(() => c4.encode({ prefixlen: 8, addr: '10.0.0.0' } as never, b, 0)).message).toBe('lpmKey(4): unknown field "prefixlen" (expected prefixLen and addr)');
    expect(thrown(() => c4.encode(null as never, b, 0)).message).toBe('lpmKey(4): expected { prefixLen, addr } or a CIDR string, got null');
    expect(thrown(() => lpmKey(5 as never)).message).toBe('lpmKey: family must be 4 or 6, got 5');
  });
});

describe('array', () => {
  it('fixed-length arrays', () => {
    const c = array(be16, 3);
    expect([c.name, c.size, c.align]).toEqual(['be16[3]', 6, 2]);
    expect(c.layout).toEqual({ kind: 'array', size: 6, length: 3, elem: { kind: 'int', size: 2, signed: false } });
    expect(enc(c, [80, 443, 8080])).toEqual(hex('0050 01bb 1f90'));
    expect(roundTrip(c, [1, 2, 3])).toEqual([1, 2, 3]);
    expect(roundTrip(array(ipv4, 2), ['10.0.0.1', '10.0.0.2'])).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('names the bad element', () => {
    const c = array(u8, 3);
    expect(thrown(() => c.encode([1, 2], Buffer.alloc(3), 0)).message).toBe('u8[3]: expected an array of 3, got an array of 2');
    const e = thrown(() => c.encode([1, 2, 300], Buffer.alloc(3), 0));
    expect([e.field, e.message]).toEqual(['u8[3][2]', 'u8[3][2] (u8): expected an integer in 0..255, got 300']);
    expect(thrown(() => array(u8, 0)).message).toBe('array: size must be an integer >= 1, got 0');
  });
});

describe('struct', () => {
  it('lays out {a: u8, b: u32, c: u16} like C: offsets 0, 4, 8, size 12, align 4', () => {
    const c = struct('s', { a: u8, b: u32, c: u16 });
    expect([c.name, c.size, c.align]).toEqual(['struct s', 12, 4]);
    expect(c.layout).toEqual({
      kind: 'struct', size: 12, name: 's',
      members: [
        { name: 'a', offset: 0, layout: u8.layout },
        { name: 'b', offset: 4, layout: u32.layout },
        { name: 'c', offset: 8, layout: u16.layout },
      ],
    });
    const buf = Buffer.alloc(12, 0xff); // stale bytes: padding must come out zeroed
    c.encode({ a: 1, b: 2, c: 3 }, buf, 0);
    expect(buf).toEqual(hex('01000000 02000000 0300 0000'));
    expect(c.decode(buf, 0)).toEqual({ a: 1, b: 2, c: 3 });
  });

  it('a u64 member makes the struct 8-aligned', () => {
    const c = struct('t', { a: u8, b: u64, c: u16 });
    expect([c.size, c.align]).toEqual([24, 8]);
    expect(c.layout.kind === 'struct' && c.layout.members.map((m) => m.offset)).toEqual([0, 8, 16]);
    expect(enc(c, { a: 1, b: 2n, c: 3 })).toEqual(hex('0100000000000000 0200000000000000 0300 000000000000'));
    const d = struct('d', { x: u32, y: u8 });
    expect([d.size, d.align]).toEqual([8, 4]); // trailing padding
    expect(struct('e', { x: u8, y: u8, z: u8 }).size).toBe(3);
  });

  it('flow key with network-order fields, array form and explicit padding', () => {
    const flowKey = struct('flow_key', [
      { name: 'src', codec: ipv4 },
      { name: 'dst', codec: ipv4 },
      { name: 'sport', codec: be16 },
      { name: 'dport', codec: be16 },
      { name: 'proto', codec: u8 },
      { name: '_pad', codec: bytes(3) },
    ]);
    expect([flowKey.size, flowKey.align]).toEqual([16, 4]);
    const k = { src: '198.18.0.1', dst: '198.18.0.2', sport: 12345, dport: 443, proto: 6 };
    expect(enc(flowKey, k)).toEqual(hex('c6120001 c6120002 3039 01bb 06 000000'));
    expect(roundTrip(flowKey, k)).toEqual(k); // '_pad' is optional on encode and not decoded
    expect(enc(flowKey, { ...k, _pad: hex('010203') })).toEqual(hex('c6120001 c6120002 3039 01bb 06 010203'));
  });

  it('nests structs and arrays', () => {
    const inner = struct('inner', { x: u16, y: u8 });
    const outer = struct('outer', { tag: u8, in: inner, list: array(inner, 2), n: u64 });
    expect([inner.size, inner.align, outer.size, outer.align]).toEqual([4, 2, 24, 8]);
    expect(outer.layout.kind === 'struct' && outer.layout.members.map((m) => m.offset)).toEqual([0, 2, 6, 16]);
    const v = { tag: 7, in: { x: 0x102, y: 3 }, list: [{ x: 4, y: 5 }, { x: 6, y: 7 }], n: 9n };
    expect(enc(outer, v)).toEqual(hex('07 00 0201 03 00 0400 05 00 0600 07 00 0000 0900000000000000'));
    expect(roundTrip(outer, v)).toEqual(v);
  });

  it('explicit offsets and packed structs', () => {
    const odd = struct('odd', [{ name: 'a', codec: u8 }, { name: 'b', codec: u32, offset: 1 }, { name: 'c', codec: u8 }]);
    expect(odd.layout.kind === 'struct' && odd.layout.members.map((m) => m.offset)).toEqual([0, 1, 5]);
    expect(odd.size).toBe(8); // natural alignment 4 still rounds the size
    expect(enc(odd, { a: 1, b: 0x05040302, c: 6 })).toEqual(hex('01 02030405 06 0000'));
    const packed = struct('p', { a: u8, b: u32, c: u16 }, { packed: true });
    expect([packed.size, packed.align]).toEqual([7, 1]);
    expect(enc(packed, { a: 1, b: 2, c: 3 })).toEqual(hex('01 02000000 0300'));
    const gap = struct('g', [{ name: 'a', codec: u8, offset: 4 }, { name: 'b', codec: u8 }]);
    expect(enc(gap, { a: 1, b: 2 })).toEqual(hex('00000000 01 02'));
  });

  it('rejects overlapping offsets, duplicates and bad names when built', () => {
    expect(thrown(() => struct('o', [{ name: 'a', codec: u32 }, { name: 'b', codec: u16, offset: 2 }])).message)
      .toBe('struct o.b: bytes 2..3 overlap field a (bytes 0..3)');
    expect(thrown(() => struct('o', [{ name: 'a', codec: u8 }, { name: 'a', codec: u8 }])).message).toBe('struct o.a: duplicate field');
    expect(thrown(() => struct('o', [{ name: 'a', codec: u8, offset: -1 }])).message).toBe('struct o.a: offset must be an integer >= 0, got -1');
    expect(thrown(() => struct('o', { 'a-b': u8 })).message).toBe('struct o: field names must be C identifiers, got "a-b"');
    expect(thrown(() => struct('o', { a: 5 as never })).message).toBe('struct o.a: expected a codec, got 5');
    expect(thrown(() => struct('flow key', { a: u8 })).message).toBe('struct: name must be a C identifier, got "flow key"');
    expect(thrown(() => struct('o', {})).message).toBe('struct o: needs at least one field');
    expect(struct('struct named', { a: u8 }).name).toBe('struct named');
  });

  it('names the missing, unknown or bad field', () => {
    const k = struct('flow_key', { saddr: ipv4, sport: be16, ports: array(u16, 2) });
    const b = Buffer.alloc(k.size);
    let e = thrown(() => k.encode({ saddr: '10.0.0.1', ports: [1, 2] } as never, b, 0));
    expect([e.code, e.field, e.message]).toEqual(['ERR_INVALID_ARGUMENT', 'struct flow_key.sport', 'struct flow_key.sport: missing']);
    e = thrown(() => k.encode({ saddr: '10.0.0.1', sprt: 1, sport: 1, ports: [1, 2] } as never, b, 0));
    expect([e.field, e.message]).toEqual(['struct flow_key.sprt', 'struct flow_key.sprt: unknown field (fields are: saddr, sport, ports)']);
    e = thrown(() => k.encode({ saddr: '10.0.0.1', sport: 65536, ports: [1, 2] }, b, 0));
    expect([e.field, e.message]).toEqual(['struct flow_key.sport', 'struct flow_key.sport (be16): expected an integer in 0..65535, got 65536']);
    e = thrown(() => k.encode({ saddr: '10.0.0.1', sport: 1, ports: [1, -2] }, b, 0));
    expect([e.field, e.message]).toEqual(['struct flow_key.ports[1]', 'struct flow_key.ports[1] (u16): expected an integer in 0..65535, got -2']);
    e = thrown(() => k.encode({ saddr: '10.0.0.1', sport: 1, ports: [1] }, b, 0));
    expect(e.message).toBe('struct flow_key.ports (u16[2]): expected an array of 2, got an array of 1');
    expect(thrown(() => k.encode(null as never, b, 0)).message).toBe('struct flow_key: expected an object, got null');
    expect(thrown(() => k.encode([] as never, b, 0)).message).toBe('struct flow_key: expected an object, got an array of 0');
  });

  it('paths through nested structs', () => {
    const inner = struct('inner', { x: u8 });
    const outer = struct('outer', { a: inner, list: array(inner, 2) });
    const b = Buffer.alloc(outer.size);
    let e = thrown(() => outer.encode({ a: { x: 256 }, list: [{ x: 1 }, { x: 1 }] }, b, 0));
    expect([e.field, e.message]).toEqual(['struct outer.a.x', 'struct outer.a.x (u8): expected an integer in 0..255, got 256']);
    e = thrown(() => outer.encode({ a: { x: 1 }, list: [{ x: 1 }, {}] } as never, b, 0));
    expect([e.field, e.message]).toEqual(['struct outer.list[1].x', 'struct outer.list[1].x: missing']);
    e = thrown(() => outer.encode({ a: { x: 1, y: 2 }, list: [{ x: 1 }, { x: 1 }] } as never, b, 0));
    expect(e.message).toBe('struct outer.a.y: unknown field (fields are: x)');
  });

  it('infers TypeScript types from the fields', () => {
    const k = struct('k', { a: u32, b: u64 });
    expectTypeOf<Infer<typeof k>>().toEqualTypeOf<{ a: number; b: bigint }>();
    expectTypeOf<InferInput<typeof k>>().toEqualTypeOf<{ a: number; b: bigint | number }>();
    expectTypeOf(k).toMatchTypeOf<Codec<{ a: number; b: bigint }>>();
    const f = struct('f', [{ name: 'src', codec: ipv4 }, { name: '_pad', codec: bytes(2) }, { name: 'ports', codec: array(be16, 2) }]);
    expectTypeOf<Infer<typeof f>>().toEqualTypeOf<{ src: string; ports: number[] }>();
    expectTypeOf<InferInput<typeof f>>().toEqualTypeOf<{ src: string; ports: number[]; _pad?: Uint8Array }>();
    expectTypeOf<Infer<ReturnType<typeof lpmKey>>>().toEqualTypeOf<{ prefixLen: number; addr: string }>();
    expect(k.decode(Buffer.alloc(16), 0)).toEqual({ a: 0, b: 0n });
  });
});

describe('checkCodec', () => {
  const int = (name: string, size: number, signed = false): BtfTypeInfo => ({ kind: 'int', name, size, signed });
  const U8 = int('unsigned char', 1);
  const U16 = int('unsigned short', 2);
  const U32 = int('unsigned int', 4);
  const S32 = int('int', 4, true);
  const U64 = int('unsigned long long', 8);
  const arr = (elem: BtfTypeInfo, length: number): BtfTypeInfo => ({ kind: 'array', name: '', size: elem.size * length, elem, length });
  const st = (name: string, size: number, members: [string, number, BtfTypeInfo][], kind: 'struct' | 'union' = 'struct'): BtfTypeInfo => ({
    kind, name, size, members: members.map(([n, offset, type]) => ({ name: n, offset, type })),
  });

  const flowKeyBtf = st('flow_key', 16, [['src', 0, U32], ['dst', 4, U32], ['sport', 8, U16], ['dport', 10, U16], ['proto', 12, U8]]);
  const flowKey = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16, proto: u8 });

  function mismatch(fn: () => void): string {
    const e = thrown(fn);
    expect(e.code).toBe('ERR_CODEC_MISMATCH');
    return e.message;
  }

  it('does nothing without BTF', () => {
    expect(() => checkCodec(u32, null, "map 'm' key")).not.toThrow();
  });

  it('checks the size first, with the documented message and details', () => {
    const stats = st('stats', 16, [['packets', 0, U64], ['bytes', 8, U64]]);
    const e = thrown(() => checkCodec(u32, stats, "map 'counters' value"));
    expect(e.code).toBe('ERR_CODEC_MISMATCH');
    expect(e.message).toBe("map 'counters' value: codec u32 is 4 bytes but the map's BTF type 'struct stats' is 16 bytes");
    expect(e.details).toEqual({ codec: u32, btf: stats });
    expect(mismatch(() => checkCodec(u8, U32, "map 'x' key"))).toBe("map 'x' key: codec u8 is 1 byte but the map's BTF type 'unsigned int' is 4 bytes");
  });

  it('ints: size matters, signedness does not; enums count as ints', () => {
    expect(() => checkCodec(u32, S32, 'k')).not.toThrow();
    expect(() => checkCodec(i32, U32, 'k')).not.toThrow();
    expect(() => checkCodec(u64, U64, 'k')).not.toThrow();
    expect(() => checkCodec(bool, int('_Bool', 1), 'k')).not.toThrow();
    expect(() => checkCodec(u32, { kind: 'enum', name: 'verdict', size: 4 }, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(u32, { kind: 'float', name: 'float', size: 4 }, 'k'))).toBe("k: codec u32 (int) does not match BTF type 'float' (float)");
    expect(mismatch(() => checkCodec(u64, st('s', 8, [['a', 0, U32], ['b', 4, U32]]), 'k'))).toBe("k: codec u64 (int) does not match BTF type 'struct s' (struct)");
  });

  it('bytes-like codecs match anything of the same size', () => {
    expect(() => checkCodec(ipv4, U32, 'k')).not.toThrow();
    expect(() => checkCodec(ipv6, arr(U8, 16), 'k')).not.toThrow();
    expect(() => checkCodec(ipv6, st('in6_addr', 16, [['in6_u', 0, st('', 16, [['u6_addr8', 0, arr(U8, 16)]], 'union')]]), 'k')).not.toThrow();
    expect(() => checkCodec(mac, arr(U8, 6), 'k')).not.toThrow();
    expect(() => checkCodec(lpmKey(4), st('lpm_v4', 8, [['prefixlen', 0, U32], ['data', 4, arr(U8, 4)]]), 'k')).not.toThrow();
    expect(() => checkCodec(bytes(16), flowKeyBtf, 'k')).not.toThrow();
  });

  it('arrays compare length and element', () => {
    expect(() => checkCodec(array(u32, 4), arr(U32, 4), 'k')).not.toThrow();
    expect(() => checkCodec(cstring(16), arr(int('char', 1, true), 16), 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(array(u16, 4), arr(U32, 2), 'k'))).toBe("k: codec u16[4] has 4 elements but BTF type 'unsigned int[2]' has 2");
    expect(mismatch(() => checkCodec(array(u32, 2), U64, 'k'))).toBe("k: codec u32[2] (array) does not match BTF type 'unsigned long long' (int)");
    const pair = st('pair', 8, [['a', 0, U32], ['b', 4, U32]]);
    expect(() => checkCodec(array(struct('pair', { a: u32, b: u32 }), 2), arr(pair, 2), 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(array(struct('pair', { a: u32, c: u32 }), 2), arr(pair, 2), 'k'))).toBe("k: member [*].c is not in BTF type 'struct pair' (its bytes overlap b)");
  });

  it('structs: matching flow key passes', () => {
    expect(() => checkCodec(flowKey, flowKeyBtf, "map 'flows' key")).not.toThrow();
  });

  it('structs: reports the first differing member', () => {
    const swapped = struct('flow_key', { src: ipv4, dst: ipv4, dport: be16, sport: be16, proto: u8 });
    expect(mismatch(() => checkCodec(swapped, flowKeyBtf, "map 'flows' key"))).toBe("map 'flows' key: member dport is at offset 8 in the codec but at offset 10 in BTF type 'struct flow_key'");
    const renamed = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16, protocol: u8 });
    expect(mismatch(() => checkCodec(renamed, flowKeyBtf, 'k'))).toBe("k: member protocol is not in BTF type 'struct flow_key' (its bytes overlap proto)");
    const short = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16 });
    expect(short.size).toBe(12);
    const shortBtf = st('flow_key', 12, [['src', 0, U32], ['dst', 4, U32], ['sport', 8, U16], ['dport', 10, U16]]);
    expect(() => checkCodec(short, shortBtf, 'k')).not.toThrow();
    const missingSport = struct('flow_key', [{ name: 'src', codec: ipv4 }, { name: 'dst', codec: ipv4 }, { name: 'dport', codec: be16, offset: 10 }]);
    expect(mismatch(() => checkCodec(missingSport, shortBtf, 'k'))).toBe("k: BTF member sport (offset 8, 2 bytes) of BTF type 'struct flow_key' is not covered by the codec");
    const wide = struct('flow_key', [{ name: 'src', codec: ipv4 }, { name: 'dst', codec: ipv4 }, { name: 'sport', codec: u32 }]);
    expect(mismatch(() => checkCodec(wide, shortBtf, 'k'))).toBe("k: member sport: codec u32 is 4 bytes but BTF type 'unsigned short' is 2 bytes");
  });

  it('structs: recurses into nested members', () => {
    const innerBtf = st('inner', 4, [['x', 0, U16], ['y', 2, U8]]);
    const outerBtf = st('outer', 6, [['tag', 0, U8], ['in', 2, innerBtf]]);
    expect(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16, y: u8 }) }), outerBtf, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16, z: u8 }) }), outerBtf, 'k'))).toBe("k: member in.z is not in BTF type 'struct inner' (its bytes overlap y)");
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16 }), _p: bytes(2) }), outerBtf, 'k'))).toBe("k: member in: codec struct inner is 2 bytes but BTF type 'struct inner' is 4 bytes");
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, _gap: u8, in: u32 }, { packed: true }), outerBtf, 'k'))).toBe("k: member in: codec u32 (int) does not match BTF type 'struct inner' (struct)");
  });

  it('structs: BTF padding members need no codec member; codec padding may cover compiler padding', () => {
    const btf = st('rec', 8, [['id', 0, U32], ['_reserved', 4, U16], ['pad1', 6, U8], ['reserved2', 7, U8]]);
    expect(() => checkCodec(struct('rec', { id: u32, _tail: bytes(4) }), btf, 'k')).not.toThrow();
    expect(() => checkCodec(struct('rec', [{ name: 'id', codec: u32 }, { name: 'x', codec: u8, offset: 7 }]), btf, 'k')).toThrow("k: member x is not in BTF type 'struct rec'");
    expect(mismatch(() => checkCodec(struct('rec', { _id: u32, _tail: bytes(4) }), btf, 'k'))).toBe("k: member _id is not in BTF type 'struct rec' (its bytes overlap id)");
    // struct { __u8 proto; /* 3 bytes of compiler padding */ __u32 addr; } described with explicit padding
    const implicit = st('p', 8, [['proto', 0, U8], ['addr', 4, U32]]);
    expect(() => checkCodec(struct('p', { proto: u8, _pad: bytes(3), addr: u32 }), implicit, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('p', [{ name: 'proto', codec: u8 }, { name: '_pad', codec: bytes(7) }]), implicit, 'k'))).toBe("k: member _pad is not in BTF type 'struct p' (its bytes overlap addr)");
  });

  it('structs: anonymous unions are flattened; a covering member stands for its alternatives', () => {
    const addrUnion = st('', 16, [['v4', 0, U32], ['v6', 0, arr(U8, 16)]], 'union');
    const btf = st('rule', 20, [['', 0, addrUnion], ['action', 16, U32]]);
    expect(() => checkCodec(struct('rule', { v6: ipv6, action: u32 }), btf, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('rule', [{ name: 'v4', codec: ipv4 }, { name: 'action', codec: u32, offset: 16 }]), btf, 'k'))).toBe("k: BTF member v6 (offset 0, 16 bytes) of BTF type 'struct rule' is not covered by the codec");
    // a named union: the codec need only use one of its members
    const named = st('sock', 4, [['u', 0, st('ip', 4, [['a', 0, U32], ['b', 0, arr(U8, 4)]], 'union')]]);
    expect(() => checkCodec(struct('sock', { u: struct('ip', { b: bytes(4) }) }), named, 'k')).not.toThrow();
  });

  it('structs: bitfields cannot be matched by name but can be covered', () => {
    const btf: BtfTypeInfo = {
      kind: 'struct', name: 'hdr', size: 4,
      members: [
        { name: 'version', offset: 0, bitSize: 4, bitOffset: 0, type: U8 },
        { name: 'ihl', offset: 0, bitSize: 4, bitOffset: 4, type: U8 },
        { name: 'tos', offset: 1, type: U8 },
        { name: 'len', offset: 2, type: U16 },
      ],
    };
    expect(() => checkCodec(struct('hdr', { vihl: u8, tos: u8, len: be16 }), btf, 'k')).not.toThrow();
    expect(() => checkCodec(struct('hdr', { _vihl: u8, tos: u8, len: be16 }), btf, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('hdr', { vihl: u16, len: be16 }), btf, 'k'))).toBe("k: member vihl is not in BTF type 'struct hdr' (its bytes overlap tos)");
    expect(mismatch(() => checkCodec(struct('hdr', { version: u8, tos: u8, len: be16 }), btf, 'k'))).toBe("k: member version is a 4-bit bitfield in BTF type 'struct hdr'; cover its bytes with a differently named member instead");
    expect(mismatch(() => checkCodec(struct('hdr', [{ name: 'tos', codec: u8, offset: 1 }, { name: 'len', codec: be16 }]), btf, 'k'))).toBe("k: BTF member version (offset 0, 1 byte) of BTF type 'struct hdr' is not covered by the codec");
  });

  it('tolerates members the native side did not describe (deep nesting)', () => {
    const shallow: BtfTypeInfo = { kind: 'struct', name: 'deep', size: 8, members: [] };
    expect(() => checkCodec(struct('deep', { a: u32, b: u32 }), shallow, 'k')).not.toThrow();
    const nullType = st('n', 8, [['a', 0, U32], ['b', 4, U32]]);
    nullType.members![1].type = null;
    expect(() => checkCodec(struct('n', { a: u32, b: u32 }), nullType, 'k')).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// Compiled codecs: struct(), array() and the integer codecs are compiled into specialised
// functions; the generic code they replace still runs where code generation from strings is
// disabled. These tests hold the two to the same bytes, values and errors.

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
  const pick = <T,>(xs: readonly T[]): T => xs[rnd(xs.length)];
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
    name: `user(${c.name})`, size: c.size, align: c.align, layout: c.layout,
    encode: lazy ? (v: any, b: Buffer, o: number) => { C.u8.encode(v & 0xff, b, o); } : (v: any, b: Buffer, o: number) => c.encode(v, b, o),
    decode: (b: Buffer, o: number) => c.decode(b, o),
  });
  const inner = C.struct('inner', [{ name: 'x', codec: C.u16 }, { name: '_p', codec: C.u8 }, { name: 'y', codec: C.u32 }]);
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
    [C.bool, [true, false, 0, 1, 'true']],
    [C.ipv4, ['198.18.0.1', '0.0.0.0', '255.255.255.255', '198.19.255.7', '256.1.1.1', '1.2.3', '01.2.3.4', '', 0xc6120001]],
    [C.ipv6, ['2001:db8::1', '::', '::ffff:198.18.0.1', 'zz::', 5]],
    [C.mac, ['aa:bb:cc:dd:ee:ff', 'AA-BB-CC-DD-EE-0F', 'aa:bb']],
    [C.bytes(3), [Buffer.from([1, 2, 3]), new Uint8Array([4, 5, 6]), Buffer.alloc(2), [1, 2, 3]]],
    [C.bytes(40, 8), [Buffer.alloc(40, 7), Buffer.alloc(39)]],
    [C.bytes(70), [Buffer.alloc(70, 9), 'x']],
    [C.cstring(8), ['eth0', '', 'abcdefgh', 'a\0b', 5]],
    [C.array(C.u16, 3), [[1, 2, 3], [1, 2], [1, 2, 70000], [1, -0, 3], 'abc']],
    [C.array(C.ipv4, 2), [['198.18.0.1', '198.18.0.2'], ['1.2.3.4', 'x'], [1, 2]]],
    [C.array(C.u64, 9), [Array.from({ length: 9 }, (_, i) => BigInt(i) << 40n), Array.from({ length: 9 }, (_, i) => i * 2 ** 33), [...Array(8).fill(1n), -1n]]],
    [C.array(C.bool, 2), [[true, false], [true, 1]]],
    [C.array(inner, 2), [[{ x: 1, y: 2 }, { x: 3, y: 4, _p: 5 }], [{ x: 1, y: 2 }, { x: 1 }]]],
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
    if (fields.every((f) => f.name.startsWith('_'))) fields.push({ name: 'last', codec: C.u8 }), samples.push([3, 300]);
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
      out.push(outcome(() => {
        st.encode(value as never, buf, off);
        return [buf.subarray(0, st.size + 16), st.decode(buf, off)];
      }));
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
      out.push(outcome(() => { c.encode(pick(samples[i]), b, off); return [b, c.decode(b, off)]; }));
      out.push(outcome(() => c.decode(raw, off)));
    }
  }
  return out;
}

describe('compiled codecs', () => {
  it('zero the bytes a user codec leaves alone, and padding, in a buffer of stale bytes', () => {
    const firstByte: Codec<number> = {
      name: 'first', size: 4, align: 4, layout: u32.layout,
      encode: (v, b, o) => { b[o] = v; },
      decode: (b, o) => b[o],
    };
    const c = struct('z', [{ name: 'a', codec: u8 }, { name: 'f', codec: firstByte }, { name: '_r', codec: bytes(2) }, { name: 'b', codec: u16 }]);
    expect(c.size).toBe(12);
    const buf = Buffer.alloc(14, 0xff);
    c.encode({ a: 1, f: 2, b: 3 }, buf, 1);
    expect(buf).toEqual(hex('ff 01000000 02000000 0000 0300 ff'));
    c.encode({ a: 1, f: 2, b: 3, _r: hex('abcd') }, buf, 1);
    expect(buf).toEqual(hex('ff 01000000 02000000 abcd 0300 ff'));
  });

  it('u64/i64 write numbers exactly as the same bigints, and nothing when the buffer is too small', () => {
    for (const [c, v] of [[u64, 2 ** 53 - 1], [u64, 2 ** 32], [u64, 2 ** 32 - 1], [u64, 0x123456789a], [i64, -1], [i64, -(2 ** 53) + 1], [i64, -(2 ** 32)], [i64, -(2 ** 32) - 1], [i64, 2 ** 31]] as const) {
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
    expect(thrown(() => wide.encode({ ...v, f30: 1 } as never, Buffer.alloc(30), 0)).message).toMatch(/^struct wide\.f30: unknown field \(fields are: f0, f1, .*, f29\)$/);
    const odd = struct('class', { default: u8, new: u16, constructor: u32, valueOf: u8 });
    const w = { default: 1, new: 2, constructor: 3, valueOf: 4 };
    expect(roundTrip(odd, w)).toEqual(w);
    expect(Object.keys(odd.decode(Buffer.alloc(12), 0))).toEqual(['default', 'new', 'constructor', 'valueOf']);
    // absent, these resolve to Object.prototype's members, which are not valid values
    expect(thrown(() => odd.encode({ default: 1, new: 2 } as never, Buffer.alloc(12), 0)).message).toBe('struct class.constructor (u32): expected an integer in 0..4294967295, got a function');
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
    const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const C = await import('../../lib/core/codecs.js');
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-codecs-'));
    try {
      for (const f of ['codecs', 'errors']) {
        const src = readFileSync(new URL(`../../lib/core/${f}.ts`, import.meta.url), 'utf8');
        const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
        writeFileSync(join(dir, `${f}.js`), js);
      }
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      const script = `import * as C from ${JSON.stringify(join(dir, 'codecs.js'))};
        const fuzzCodecs = ${fuzzCodecs.toString()};
        const probe = C.struct('probe', { a: C.u8 });
        console.log(JSON.stringify({ names: [C.u32.encode.name, probe.encode.name, C.array(C.u8, 2).decode.name], results: fuzzCodecs(C, ${0x5eed}, 300) }));`;
      const child = JSON.parse(execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 60_000 }));

      // the child really ran the generic code; this process the compiled code
      expect(child.names).toEqual(['encode', 'encode', 'decode']);
      expect([C.u32.encode.name, C.struct('probe', { a: u8 }).encode.name, C.array(u8, 2).decode.name]).toEqual(['encode_u32', 'encode_probe', 'decode_array']);
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
