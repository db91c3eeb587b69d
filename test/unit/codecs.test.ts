import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  array,
  be16,
  be32,
  bool,
  bytes,
  cstring,
  formatIPv4,
  formatIPv6,
  i16,
  i32,
  i64,
  i8,
  ipv4,
  ipv6,
  lpmKey,
  mac,
  parseCidr,
  parseIPv4,
  parseIPv6,
  struct,
  u16,
  u32,
  u64,
  u8,
  type Codec,
  type Infer,
  type InferInput,
} from '../../lib/core/codecs.js';
import { enc, hex, roundTrip, thrown } from '../helpers/codecs.js';

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
    expect(thrown(() => i64.encode(2n ** 63n, b, 0)).message).toBe(
      'i64: expected an integer in -9223372036854775808..9223372036854775807, got 9223372036854775808',
    );
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
    expect(thrown(() => bytes(6).encode(Buffer.alloc(5), Buffer.alloc(6), 0)).message).toBe(
      'bytes[6]: expected a Buffer or Uint8Array of 6 bytes, got a Buffer of 5 bytes',
    );
    expect(thrown(() => bytes(2).encode([1, 2] as never, Buffer.alloc(6), 0)).message).toBe(
      'bytes[2]: expected a Buffer or Uint8Array of 2 bytes, got an array of 2',
    );
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
    expect(thrown(() => c.encode('abcdefgh', Buffer.alloc(8), 0)).message).toBe(
      'cstring[8]: "abcdefgh" is 8 bytes but at most 7 fit (plus the NUL terminator)',
    );
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

  it.each([
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.04',
    '00.1.2.3',
    '1..2.3',
    '1.2.3.',
    '.1.2.3',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.-4',
    '0x1.2.3.4',
    '',
    '1.2.3.1000',
  ])('rejects %j', (s) => expect(parseIPv4(s)).toBeNull());

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
    ':::',
    '1::2::3',
    'g::1',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    ':1::',
    '1::2:',
    ':1:2:3:4:5:6:7:8',
    '12345::',
    '1.2.3.4',
    '::1.2.3',
    '::256.0.0.1',
    '::01.2.3.4',
    '1.2.3.4::',
    '::1.2.3.4:1',
    '1:2:3:4:5:6:7:1.2.3.4',
    'fe80::1%eth0',
    '',
    ' ::1',
    '::1 ',
    '[::1]',
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
    expect(thrown(() => c4.encode({ prefixLen: 24, addr: '198.18.0.1' }, b, 0)).message).toBe(
      'lpmKey(4): 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)',
    );
    expect(thrown(() => c4.encode('198.18.0.1/24', b, 0)).message).toBe('lpmKey(4): 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)');
    const e = thrown(() => c4.encode({ prefixLen: 33, addr: '10.0.0.0' }, b, 0));
    expect([e.field, e.message]).toEqual(['lpmKey(4).prefixLen', 'lpmKey(4).prefixLen: expected an integer in 0..32, got 33']);
    expect(thrown(() => c4.encode({ prefixLen: -1, addr: '10.0.0.0' }, b, 0)).field).toBe('lpmKey(4).prefixLen');
    expect(thrown(() => c4.encode({ prefixLen: 8, addr: '10.0.0' }, b, 0)).message).toBe('lpmKey(4).addr: expected an IPv4 address, got "10.0.0"');
    expect(thrown(() => c4.encode('2001:db8::/32', b, 0)).message).toBe('lpmKey(4): "2001:db8::/32" is not an IPv4 prefix');
    expect(thrown(() => lpmKey(6).encode({ prefixLen: 8, addr: '10.0.0.0' }, b, 0)).message).toBe('lpmKey(6).addr: expected an IPv6 address, got "10.0.0.0"');
    expect(thrown(() => lpmKey(6).encode({ prefixLen: 129, addr: '::' }, b, 0)).message).toBe('lpmKey(6).prefixLen: expected an integer in 0..128, got 129');
    expect(thrown(() => c4.encode({ prefixlen: 8, addr: '10.0.0.0' } as never, b, 0)).message).toBe(
      'lpmKey(4): unknown field "prefixlen" (expected prefixLen and addr)',
    );
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
      kind: 'struct',
      size: 12,
      name: 's',
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
    const v = {
      tag: 7,
      in: { x: 0x102, y: 3 },
      list: [
        { x: 4, y: 5 },
        { x: 6, y: 7 },
      ],
      n: 9n,
    };
    expect(enc(outer, v)).toEqual(hex('07 00 0201 03 00 0400 05 00 0600 07 00 0000 0900000000000000'));
    expect(roundTrip(outer, v)).toEqual(v);
  });

  it('explicit offsets and packed structs', () => {
    const odd = struct('odd', [
      { name: 'a', codec: u8 },
      { name: 'b', codec: u32, offset: 1 },
      { name: 'c', codec: u8 },
    ]);
    expect(odd.layout.kind === 'struct' && odd.layout.members.map((m) => m.offset)).toEqual([0, 1, 5]);
    expect(odd.size).toBe(8); // natural alignment 4 still rounds the size
    expect(enc(odd, { a: 1, b: 0x05040302, c: 6 })).toEqual(hex('01 02030405 06 0000'));
    const packed = struct('p', { a: u8, b: u32, c: u16 }, { packed: true });
    expect([packed.size, packed.align]).toEqual([7, 1]);
    expect(enc(packed, { a: 1, b: 2, c: 3 })).toEqual(hex('01 02000000 0300'));
    const gap = struct('g', [
      { name: 'a', codec: u8, offset: 4 },
      { name: 'b', codec: u8 },
    ]);
    expect(enc(gap, { a: 1, b: 2 })).toEqual(hex('00000000 01 02'));
  });

  it('rejects overlapping offsets, duplicates and bad names when built', () => {
    expect(
      thrown(() =>
        struct('o', [
          { name: 'a', codec: u32 },
          { name: 'b', codec: u16, offset: 2 },
        ]),
      ).message,
    ).toBe('struct o.b: bytes 2..3 overlap field a (bytes 0..3)');
    expect(
      thrown(() =>
        struct('o', [
          { name: 'a', codec: u8 },
          { name: 'a', codec: u8 },
        ]),
      ).message,
    ).toBe('struct o.a: duplicate field');
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
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- only its type is checked
    const f = struct('f', [
      { name: 'src', codec: ipv4 },
      { name: '_pad', codec: bytes(2) },
      { name: 'ports', codec: array(be16, 2) },
    ]);
    expectTypeOf<Infer<typeof f>>().toEqualTypeOf<{ src: string; ports: number[] }>();
    expectTypeOf<InferInput<typeof f>>().toEqualTypeOf<{ src: string; ports: number[]; _pad?: Uint8Array }>();
    expectTypeOf<Infer<ReturnType<typeof lpmKey>>>().toEqualTypeOf<{ prefixLen: number; addr: string }>();
    expect(k.decode(Buffer.alloc(16), 0)).toEqual({ a: 0, b: 0n });
  });
});
