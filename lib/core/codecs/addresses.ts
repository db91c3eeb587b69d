/** Address codecs: Ethernet (mac), IPv4, IPv6 and LPM-trie keys. */
import { invalidArgument } from '../errors.js';
import { builtin } from './generate.js';
import { checkHostBits, formatIPv4, formatIPv6, ipv4Into, ipv6Into, parseCidr, parseIPv4, parseIPv6 } from './ip-text.js';
import { checkInt, HOST_LE, room, show, view } from './shared.js';
import type { Codec } from './types.js';

const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

/** Ethernet address 'aa:bb:cc:dd:ee:ff' (encode also accepts upper case and '-' separators). */
export const mac: Codec<string> = builtin<Codec<string>>({
  name: 'mac',
  size: 6,
  align: 1,
  layout: { kind: 'bytes', size: 6 },
  encode(v, buf, off) {
    if (typeof v !== 'string' || !MAC_RE.test(v)) invalidArgument('mac', `expected a MAC address like aa:bb:cc:dd:ee:ff, got ${show(v)}`);
    room(buf, off, 6);
    for (let i = 0; i < 6; i++) buf[off + i] = parseInt(v.slice(i * 3, i * 3 + 2), 16);
  },
  decode(buf, off) {
    room(buf, off, 6);
    const parts: string[] = [];
    for (let i = 0; i < 6; i++) parts.push(buf[off + i].toString(16).padStart(2, '0'));
    return parts.join(':');
  },
});

function addressCodec(family: 4 | 6): Codec<string> {
  const name = family === 4 ? 'ipv4' : 'ipv6';
  const size = family === 4 ? 4 : 16;
  const parseInto = family === 4 ? ipv4Into : ipv6Into;
  const format = family === 4 ? formatIPv4 : formatIPv6;
  const example = family === 4 ? '198.18.0.1' : '2001:db8::1';
  return {
    name,
    size,
    align: 4,
    layout: { kind: 'bytes', size },
    encode(v, buf, off) {
      room(buf, off, size);
      if (typeof v !== 'string' || !parseInto(v, buf, off)) invalidArgument(name, `expected an IPv${family} address like ${example}, got ${show(v)}`);
    },
    decode: (buf, off) => format(buf, off),
  };
}

/** IPv4 address as a dotted string; 4 bytes in network order, aligned like `__be32`. */
export const ipv4 = builtin(addressCodec(4), {
  view: false,
  standalone: false,
  check: (x, at) => `typeof ${x} === "string" && ipv4Into(${x}, buf, ${at(0)})`,
  write: () => '',
  read: (at) => [0, 1, 2, 3].map((k) => `DECIMAL[buf[${at(k)}]]`).join(' + "." + '),
});
/** IPv6 address; 16 bytes in network order, aligned like `struct in6_addr` (4). */
export const ipv6 = builtin(addressCodec(6));

/** A decoded LPM-trie key (see {@link lpmKey}): a prefix length and an address. */
export interface LpmKey {
  /** Prefix length in bits (0..32 for IPv4, 0..128 for IPv6). */
  prefixLen: number;
  /** The address in text form ('198.18.0.0', '2001:db8::'); host bits beyond the prefix are zero. */
  addr: string;
}

/**
 * LPM-trie key: u32 prefixlen (host order) followed by the address (network order), i.e.
 * `struct { __u32 prefixlen; __u8 addr[4 or 16]; }`. Encode takes { prefixLen, addr } or a
 * CIDR string. Host bits beyond the prefix are rejected, never masked. Its layout is plain
 * bytes, so checkCodec does not depend on the C member names.
 */
export function lpmKey(family: 4 | 6): Codec<LpmKey, LpmKey | string> {
  if (family !== 4 && family !== 6) invalidArgument('lpmKey', `family must be 4 or 6, got ${show(family)}`);
  const name = `lpmKey(${family})`;
  const max = family === 4 ? 32 : 128;
  const size = 4 + max / 8;
  const parse = family === 4 ? parseIPv4 : parseIPv6;
  const format = family === 4 ? formatIPv4 : formatIPv6;
  return builtin<Codec<LpmKey, LpmKey | string>>({
    name,
    size,
    align: 4,
    layout: { kind: 'bytes', size },
    encode(v, buf, off) {
      let prefixLen: number;
      let addr: Buffer | null;
      if (typeof v === 'string') {
        const c = parseCidr(v, name);
        if (c.family !== family) invalidArgument(name, `${show(v)} is not an IPv${family} prefix`);
        ({ prefixLen, addr } = c);
      } else {
        if (typeof v !== 'object' || v === null) invalidArgument(name, `expected { prefixLen, addr } or a CIDR string, got ${show(v)}`);
        const extra = Object.keys(v).find((k) => k !== 'prefixLen' && k !== 'addr');
        if (extra !== undefined) invalidArgument(name, `unknown field ${show(extra)} (expected prefixLen and addr)`);
        prefixLen = checkInt(v.prefixLen, 0, max, `${name}.prefixLen`);
        addr = typeof v.addr === 'string' ? parse(v.addr) : null;
        if (!addr) invalidArgument(`${name}.addr`, `expected an IPv${family} address, got ${show(v.addr)}`);
        checkHostBits(addr, prefixLen, name);
      }
      room(buf, off, size);
      view(buf).setUint32(off, prefixLen, HOST_LE);
      buf.set(addr, off + 4);
    },
    decode(buf, off) {
      return { prefixLen: view(buf).getUint32(off, HOST_LE), addr: format(buf, off + 4) };
    },
  });
}
