import { describe, expect, it } from 'vitest';
import {
  array,
  be16,
  bool,
  bytes,
  checkCodec,
  cstring,
  i32,
  ipv4,
  ipv6,
  lpmKey,
  mac,
  struct,
  u16,
  u32,
  u64,
  u8,
  type BtfTypeInfo,
} from '../../lib/core/codecs.js';
import { thrown } from '../helpers/codecs.js';

describe('checkCodec', () => {
  const int = (name: string, size: number, signed = false): BtfTypeInfo => ({ kind: 'int', name, size, signed });
  const U8 = int('unsigned char', 1);
  const U16 = int('unsigned short', 2);
  const U32 = int('unsigned int', 4);
  const S32 = int('int', 4, true);
  const U64 = int('unsigned long long', 8);
  const arr = (elem: BtfTypeInfo, length: number): BtfTypeInfo => ({ kind: 'array', name: '', size: elem.size * length, elem, length });
  const st = (name: string, size: number, members: [string, number, BtfTypeInfo][], kind: 'struct' | 'union' = 'struct'): BtfTypeInfo => ({
    kind,
    name,
    size,
    members: members.map(([n, offset, type]) => ({ name: n, offset, type })),
  });

  const flowKeyBtf = st('flow_key', 16, [
    ['src', 0, U32],
    ['dst', 4, U32],
    ['sport', 8, U16],
    ['dport', 10, U16],
    ['proto', 12, U8],
  ]);
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
    const stats = st('stats', 16, [
      ['packets', 0, U64],
      ['bytes', 8, U64],
    ]);
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
    expect(
      mismatch(() =>
        checkCodec(
          u64,
          st('s', 8, [
            ['a', 0, U32],
            ['b', 4, U32],
          ]),
          'k',
        ),
      ),
    ).toBe("k: codec u64 (int) does not match BTF type 'struct s' (struct)");
  });

  it('bytes-like codecs match anything of the same size', () => {
    expect(() => checkCodec(ipv4, U32, 'k')).not.toThrow();
    expect(() => checkCodec(ipv6, arr(U8, 16), 'k')).not.toThrow();
    expect(() => checkCodec(ipv6, st('in6_addr', 16, [['in6_u', 0, st('', 16, [['u6_addr8', 0, arr(U8, 16)]], 'union')]]), 'k')).not.toThrow();
    expect(() => checkCodec(mac, arr(U8, 6), 'k')).not.toThrow();
    expect(() =>
      checkCodec(
        lpmKey(4),
        st('lpm_v4', 8, [
          ['prefixlen', 0, U32],
          ['data', 4, arr(U8, 4)],
        ]),
        'k',
      ),
    ).not.toThrow();
    expect(() => checkCodec(bytes(16), flowKeyBtf, 'k')).not.toThrow();
  });

  it('arrays compare length and element', () => {
    expect(() => checkCodec(array(u32, 4), arr(U32, 4), 'k')).not.toThrow();
    expect(() => checkCodec(cstring(16), arr(int('char', 1, true), 16), 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(array(u16, 4), arr(U32, 2), 'k'))).toBe("k: codec u16[4] has 4 elements but BTF type 'unsigned int[2]' has 2");
    expect(mismatch(() => checkCodec(array(u32, 2), U64, 'k'))).toBe("k: codec u32[2] (array) does not match BTF type 'unsigned long long' (int)");
    const pair = st('pair', 8, [
      ['a', 0, U32],
      ['b', 4, U32],
    ]);
    expect(() => checkCodec(array(struct('pair', { a: u32, b: u32 }), 2), arr(pair, 2), 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(array(struct('pair', { a: u32, c: u32 }), 2), arr(pair, 2), 'k'))).toBe(
      "k: member [*].c is not in BTF type 'struct pair' (its bytes overlap b)",
    );
  });

  it('structs: matching flow key passes', () => {
    expect(() => checkCodec(flowKey, flowKeyBtf, "map 'flows' key")).not.toThrow();
  });

  it('structs: reports the first differing member', () => {
    const swapped = struct('flow_key', { src: ipv4, dst: ipv4, dport: be16, sport: be16, proto: u8 });
    expect(mismatch(() => checkCodec(swapped, flowKeyBtf, "map 'flows' key"))).toBe(
      "map 'flows' key: member dport is at offset 8 in the codec but at offset 10 in BTF type 'struct flow_key'",
    );
    const renamed = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16, protocol: u8 });
    expect(mismatch(() => checkCodec(renamed, flowKeyBtf, 'k'))).toBe("k: member protocol is not in BTF type 'struct flow_key' (its bytes overlap proto)");
    const short = struct('flow_key', { src: ipv4, dst: ipv4, sport: be16, dport: be16 });
    expect(short.size).toBe(12);
    const shortBtf = st('flow_key', 12, [
      ['src', 0, U32],
      ['dst', 4, U32],
      ['sport', 8, U16],
      ['dport', 10, U16],
    ]);
    expect(() => checkCodec(short, shortBtf, 'k')).not.toThrow();
    const missingSport = struct('flow_key', [
      { name: 'src', codec: ipv4 },
      { name: 'dst', codec: ipv4 },
      { name: 'dport', codec: be16, offset: 10 },
    ]);
    expect(mismatch(() => checkCodec(missingSport, shortBtf, 'k'))).toBe(
      "k: BTF member sport (offset 8, 2 bytes) of BTF type 'struct flow_key' is not covered by the codec",
    );
    const wide = struct('flow_key', [
      { name: 'src', codec: ipv4 },
      { name: 'dst', codec: ipv4 },
      { name: 'sport', codec: u32 },
    ]);
    expect(mismatch(() => checkCodec(wide, shortBtf, 'k'))).toBe("k: member sport: codec u32 is 4 bytes but BTF type 'unsigned short' is 2 bytes");
  });

  it('structs: recurses into nested members', () => {
    const innerBtf = st('inner', 4, [
      ['x', 0, U16],
      ['y', 2, U8],
    ]);
    const outerBtf = st('outer', 6, [
      ['tag', 0, U8],
      ['in', 2, innerBtf],
    ]);
    expect(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16, y: u8 }) }), outerBtf, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16, z: u8 }) }), outerBtf, 'k'))).toBe(
      "k: member in.z is not in BTF type 'struct inner' (its bytes overlap y)",
    );
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, in: struct('inner', { x: u16 }), _p: bytes(2) }), outerBtf, 'k'))).toBe(
      "k: member in: codec struct inner is 2 bytes but BTF type 'struct inner' is 4 bytes",
    );
    expect(mismatch(() => checkCodec(struct('outer', { tag: u8, _gap: u8, in: u32 }, { packed: true }), outerBtf, 'k'))).toBe(
      "k: member in: codec u32 (int) does not match BTF type 'struct inner' (struct)",
    );
  });

  it('structs: BTF padding members need no codec member; codec padding may cover compiler padding', () => {
    const btf = st('rec', 8, [
      ['id', 0, U32],
      ['_reserved', 4, U16],
      ['pad1', 6, U8],
      ['reserved2', 7, U8],
    ]);
    expect(() => checkCodec(struct('rec', { id: u32, _tail: bytes(4) }), btf, 'k')).not.toThrow();
    expect(() =>
      checkCodec(
        struct('rec', [
          { name: 'id', codec: u32 },
          { name: 'x', codec: u8, offset: 7 },
        ]),
        btf,
        'k',
      ),
    ).toThrow("k: member x is not in BTF type 'struct rec'");
    expect(mismatch(() => checkCodec(struct('rec', { _id: u32, _tail: bytes(4) }), btf, 'k'))).toBe(
      "k: member _id is not in BTF type 'struct rec' (its bytes overlap id)",
    );
    // struct { __u8 proto; /* 3 bytes of compiler padding */ __u32 addr; } described with explicit padding
    const implicit = st('p', 8, [
      ['proto', 0, U8],
      ['addr', 4, U32],
    ]);
    expect(() => checkCodec(struct('p', { proto: u8, _pad: bytes(3), addr: u32 }), implicit, 'k')).not.toThrow();
    expect(
      mismatch(() =>
        checkCodec(
          struct('p', [
            { name: 'proto', codec: u8 },
            { name: '_pad', codec: bytes(7) },
          ]),
          implicit,
          'k',
        ),
      ),
    ).toBe("k: member _pad is not in BTF type 'struct p' (its bytes overlap addr)");
  });

  it('structs: anonymous unions are flattened; a covering member stands for its alternatives', () => {
    const addrUnion = st(
      '',
      16,
      [
        ['v4', 0, U32],
        ['v6', 0, arr(U8, 16)],
      ],
      'union',
    );
    const btf = st('rule', 20, [
      ['', 0, addrUnion],
      ['action', 16, U32],
    ]);
    expect(() => checkCodec(struct('rule', { v6: ipv6, action: u32 }), btf, 'k')).not.toThrow();
    expect(
      mismatch(() =>
        checkCodec(
          struct('rule', [
            { name: 'v4', codec: ipv4 },
            { name: 'action', codec: u32, offset: 16 },
          ]),
          btf,
          'k',
        ),
      ),
    ).toBe("k: BTF member v6 (offset 0, 16 bytes) of BTF type 'struct rule' is not covered by the codec");
    // a named union: the codec need only use one of its members
    const named = st('sock', 4, [
      [
        'u',
        0,
        st(
          'ip',
          4,
          [
            ['a', 0, U32],
            ['b', 0, arr(U8, 4)],
          ],
          'union',
        ),
      ],
    ]);
    expect(() => checkCodec(struct('sock', { u: struct('ip', { b: bytes(4) }) }), named, 'k')).not.toThrow();
  });

  it('structs: bitfields cannot be matched by name but can be covered', () => {
    const btf: BtfTypeInfo = {
      kind: 'struct',
      name: 'hdr',
      size: 4,
      members: [
        { name: 'version', offset: 0, bitSize: 4, bitOffset: 0, type: U8 },
        { name: 'ihl', offset: 0, bitSize: 4, bitOffset: 4, type: U8 },
        { name: 'tos', offset: 1, type: U8 },
        { name: 'len', offset: 2, type: U16 },
      ],
    };
    expect(() => checkCodec(struct('hdr', { vihl: u8, tos: u8, len: be16 }), btf, 'k')).not.toThrow();
    expect(() => checkCodec(struct('hdr', { _vihl: u8, tos: u8, len: be16 }), btf, 'k')).not.toThrow();
    expect(mismatch(() => checkCodec(struct('hdr', { vihl: u16, len: be16 }), btf, 'k'))).toBe(
      "k: member vihl is not in BTF type 'struct hdr' (its bytes overlap tos)",
    );
    expect(mismatch(() => checkCodec(struct('hdr', { version: u8, tos: u8, len: be16 }), btf, 'k'))).toBe(
      "k: member version is a 4-bit bitfield in BTF type 'struct hdr'; cover its bytes with a differently named member instead",
    );
    expect(
      mismatch(() =>
        checkCodec(
          struct('hdr', [
            { name: 'tos', codec: u8, offset: 1 },
            { name: 'len', codec: be16 },
          ]),
          btf,
          'k',
        ),
      ),
    ).toBe("k: BTF member version (offset 0, 1 byte) of BTF type 'struct hdr' is not covered by the codec");
  });

  it('tolerates members the native side did not describe (deep nesting)', () => {
    const shallow: BtfTypeInfo = { kind: 'struct', name: 'deep', size: 8, members: [] };
    expect(() => checkCodec(struct('deep', { a: u32, b: u32 }), shallow, 'k')).not.toThrow();
    const nullType = st('n', 8, [
      ['a', 0, U32],
      ['b', 4, U32],
    ]);
    nullType.members![1].type = null;
    expect(() => checkCodec(struct('n', { a: u32, b: u32 }), nullType, 'k')).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// Compiled codecs: struct(), array() and the integer codecs are compiled into specialised
// functions; the generic code they replace still runs where code generation from strings is
// disabled. These tests hold the two to the same bytes, values and errors.
