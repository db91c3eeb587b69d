/**
 * Codecs: JS values <-> the raw bytes of BPF map keys/values and ring-buffer records.
 *
 * Conventions
 * - Integers (u16/u32/u64/..., lpmKey's prefixlen) are in host byte order; be16/be32 and the
 *   address codecs (ipv4, ipv6, mac) are in network order, as they appear in packets.
 * - encode() validates its input and throws BpfkitError ERR_INVALID_ARGUMENT whose `field`
 *   is the path to the bad value ('u32', 'struct flow_key.sport', 'struct k.ports[2]').
 *   It writes exactly `size` bytes at `offset` (padding zeroed). On error the target bytes
 *   are unspecified. A buffer too small for `offset + size` is a programming error and
 *   throws a plain RangeError (from encode and decode).
 * - decode() never keeps a reference to `buf`: Buffers it returns are copies.
 * - Struct fields whose name starts with '_' are padding/reserved: optional on encode
 *   (zero-filled when absent) and left out of decoded objects.
 *
 * The code lives in lib/core/codecs/, one concern a file: types.ts (Codec, Layout),
 * scalars.ts (integers, bool, bytes, cstring), addresses.ts (mac, ipv4, ipv6, lpmKey),
 * ip-text.ts (address text and CIDRs), struct.ts (array, struct), generate.ts (compiled
 * encode/decode), btf-check.ts (checkCodec), shared.ts (helpers). This file is their
 * public face; import from it, not from the files.
 */
export type { Layout, Codec, Infer, InferInput } from './codecs/types.js';
export { u8, u16, u32, u64, u64n, i8, i16, i32, i64, i64n, be16, be32, bool, bytes, cstring } from './codecs/scalars.js';
export { mac, ipv4, ipv6, lpmKey, type LpmKey } from './codecs/addresses.js';
export { parseIPv4, parseIPv6, formatIPv4, formatIPv6, parseCidr, type Cidr } from './codecs/ip-text.js';
export { array, struct, type FieldSpec, type StructOptions } from './codecs/struct.js';
export { checkCodec, type BtfTypeInfo } from './codecs/btf-check.js';
