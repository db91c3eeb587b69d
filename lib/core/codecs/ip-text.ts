/** IP address text: strict parsing into bytes, RFC 5952 formatting, CIDR prefixes. */
import { invalidArgument } from '../errors.js';
import { room, show } from './shared.js';

/** Strict dotted quad: 4 decimal parts 0..255, no leading zeros (they mean octal to some tools). */
export function ipv4Into(s: string, out: Uint8Array, off: number): boolean {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a virtual '.' closes the last part
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return false;
      out[off + part++] = val;
      val = digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && val === 0) return false;
      val = val * 10 + (c - 0x30);
      digits++;
      if (val > 255) return false;
    } else {
      return false;
    }
  }
  return part === 4;
}

const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/** Colon-separated 16-bit groups; the last one may be a dotted IPv4 address (two groups). */
function ipv6Groups(text: string, v4Last: boolean): number[] | null {
  if (text === '') return [];
  const pieces = text.split(':');
  const words: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    if (HEX_GROUP.test(p)) {
      words.push(parseInt(p, 16));
    } else if (v4Last && i === pieces.length - 1) {
      const q = new Uint8Array(4);
      if (!ipv4Into(p, q, 0)) return null;
      words.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
    } else {
      return null;
    }
  }
  return words;
}

export function ipv6Into(s: string, out: Uint8Array, off: number): boolean {
  if (s.length > 45) return false;
  const gap = s.indexOf('::');
  if (gap !== -1 && s.indexOf('::', gap + 1) !== -1) return false;
  const head = ipv6Groups(gap === -1 ? s : s.slice(0, gap), gap === -1);
  const tail = gap === -1 ? [] : ipv6Groups(s.slice(gap + 2), true);
  if (!head || !tail) return false;
  const n = head.length + tail.length;
  if (gap === -1 ? n !== 8 : n > 7) return false; // '::' stands for at least one group
  const words = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = words[i] >> 8;
    out[off + 2 * i + 1] = words[i] & 0xff;
  }
  return true;
}

/** Parse a dotted-quad IPv4 address into 4 bytes (network order), or null if invalid. */
export function parseIPv4(s: string): Buffer | null {
  const out = Buffer.alloc(4);
  return typeof s === 'string' && ipv4Into(s, out, 0) ? out : null;
}

/** Parse any RFC 4291 IPv6 text form ('::' compression, embedded IPv4) into 16 bytes, or null. */
export function parseIPv6(s: string): Buffer | null {
  const out = Buffer.alloc(16);
  return typeof s === 'string' && ipv6Into(s, out, 0) ? out : null;
}

/** Dotted-quad text of the 4 bytes at `offset` (network order). */
export function formatIPv4(buf: Uint8Array, offset = 0): string {
  room(buf, offset, 4);
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/**
 * RFC 5952 canonical text: lower case, no leading zeros, the longest run (first on a tie) of
 * two or more zero groups replaced by '::'. IPv4-mapped addresses (::ffff:0:0/96) use the
 * mixed notation of RFC 5952 section 5: '::ffff:198.18.0.1'.
 */
export function formatIPv6(buf: Uint8Array, offset = 0): string {
  room(buf, offset, 16);
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((buf[offset + 2 * i] << 8) | buf[offset + 2 * i + 1]);
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) return `::ffff:${formatIPv4(buf, offset + 12)}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = Math.max(j, i + 1);
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best === -1 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** Set all bits after the first `prefixLen` to zero. */
function maskHostBits(addr: Uint8Array, prefixLen: number): Buffer {
  const net = Buffer.from(addr);
  for (let i = 0; i < net.length; i++) net[i] &= (0xff00 >> Math.min(8, Math.max(0, prefixLen - 8 * i))) & 0xff;
  return net;
}

function formatAddr(addr: Uint8Array): string {
  return addr.length === 4 ? formatIPv4(addr) : formatIPv6(addr);
}

export function checkHostBits(addr: Buffer, prefixLen: number, field: string): void {
  const net = maskHostBits(addr, prefixLen);
  if (!net.equals(addr)) {
    invalidArgument(field, `${formatAddr(addr)}/${prefixLen} has host bits set (did you mean ${formatAddr(net)}/${prefixLen}?)`);
  }
}

/** A parsed CIDR (see {@link parseCidr}). */
export interface Cidr {
  /** Address family. */
  family: 4 | 6;
  /** Network address, 4 or 16 bytes in network order. */
  addr: Buffer;
  /** Prefix length in bits. */
  prefixLen: number;
}

/**
 * Parse '198.18.0.0/16' or '2001:db8::/32'. A missing prefix means a host route (/32, /128).
 * Host bits beyond the prefix are an error, not silently masked. `field` names the input in
 * the ERR_INVALID_ARGUMENT error.
 */
export function parseCidr(s: string, field = 'CIDR'): Cidr {
  if (typeof s !== 'string') invalidArgument(field, `expected a CIDR string like 198.18.0.0/16, got ${show(s)}`);
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const family = addrText.includes(':') ? 6 : 4;
  const addr = family === 4 ? parseIPv4(addrText) : parseIPv6(addrText);
  if (!addr) invalidArgument(field, `${show(s)} does not start with a valid IPv${family} address`);
  const max = family === 4 ? 32 : 128;
  let prefixLen = max;
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
      invalidArgument(field, `${show(s)} has an invalid prefix length (expected /0 to /${max})`);
    }
    prefixLen = Number(p);
  }
  checkHostBits(addr, prefixLen, field);
  return { family, addr, prefixLen };
}

/**
 * The common case, a canonical IPv4 address or prefix ("198.18.0.0/15", "198.18.0.1"),
 * read without a regex or any allocation: writes the address (as a signed 32-bit
 * number) to out[0] and the prefix length to out[1], and returns the index of the '/'
 * (s.length when there is none). Returns -1 for anything else (leading zeros, a prefix
 * over 32, host bits set, IPv6, junk): parseCidr() reads those or explains what is
 * wrong. The one fast path of the ACL rules and the routing specs.
 */
export function canonicalIPv4(s: string, out: Int32Array): number {
  const n = s.length;
  let addr = 0; // int32 arithmetic throughout (no double modulo, no heap numbers)
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      addr = (addr << 8) | octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c === 47) {
      break;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  addr = (addr << 8) | octet;
  let len = 32;
  if (i < n) {
    const m = n - i - 1; // digits after the slash: 1 or 2, no leading zero
    if (m < 1 || m > 2) return -1;
    const d1 = s.charCodeAt(i + 1) - 48;
    if (d1 < 0 || d1 > 9) return -1;
    if (m === 1) {
      len = d1;
    } else {
      const d2 = s.charCodeAt(i + 2) - 48;
      if (d1 === 0 || d2 < 0 || d2 > 9) return -1;
      len = d1 * 10 + d2;
      if (len > 32) return -1;
    }
  }
  if (len < 32 && (addr & (-1 >>> len)) !== 0) return -1; // host bits set
  out[0] = addr;
  out[1] = len;
  return i;
}

/**
 * The IPv6 counterpart of {@link canonicalIPv4}: an address or prefix of hex groups
 * ("2001:db8::/32", "FD00:0:0:0:0:0:0:1"), read with one pass of charCodeAt and no
 * allocation. Writes the address as four signed 32-bit words (network order) to
 * out[0..3], the prefix length to out[4], and to out[5] 1 when the text is already its
 * RFC 5952 form (what formatIPv6 gives), else 0; returns the index of the '/' (s.length
 * when there is none). Returns -1 for anything else, valid or not (an embedded IPv4
 * address, IPv4-mapped addresses, host bits set, a bad prefix, junk): parseCidr() reads
 * those or explains what is wrong.
 */
export function readIPv6(s: string, out: Int32Array): number {
  const n = s.length;
  // the groups before '::' go to w0..w7 from the left; after it, they are shifted right at the end
  let w0 = 0;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  let w4 = 0;
  let w5 = 0;
  let w6 = 0;
  let w7 = 0;
  let groups = 0; // groups written
  let gap = -1; // groups before '::'
  let canon = 1;
  let val = 0;
  let digits = 0;
  let i = 0;
  for (; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 47; // a virtual '/' ends the address
    const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (h >= 0) {
      if (digits > 0 && val === 0) canon = 0; // a leading zero
      if (c >= 65 && c <= 70) canon = 0; // upper case
      if (++digits > 4) return -1;
      val = (val << 4) | h;
      continue;
    }
    if (c !== 58 && c !== 47) return -1;
    if (digits > 0) {
      if (groups === 8) return -1;
      switch (groups++) {
        case 0:
          w0 = val;
          break;
        case 1:
          w1 = val;
          break;
        case 2:
          w2 = val;
          break;
        case 3:
          w3 = val;
          break;
        case 4:
          w4 = val;
          break;
        case 5:
          w5 = val;
          break;
        case 6:
          w6 = val;
          break;
        default:
          w7 = val;
      }
      val = 0;
      digits = 0;
      if (c === 47) break;
      continue;
    }
    // no digits since the last ':' (or the start): only '::' may be here
    if (c !== 58 || gap >= 0) return -1;
    if (i === 0) {
      if (n < 2 || s.charCodeAt(1) !== 58) return -1;
      i = 1;
    }
    gap = groups;
    if (i + 1 >= n) {
      i = n; // '::' at the end
      break;
    }
    if (s.charCodeAt(i + 1) === 47) {
      i++;
      break;
    }
  }
  if (gap < 0 ? groups !== 8 : groups > 7) return -1; // '::' stands for one or more groups
  if (gap >= 0) {
    // move the groups after '::' to the end, zeros between
    const tail = groups - gap;
    const w = [w0, w1, w2, w3, w4, w5, w6, w7]; // (one small array per '::')
    for (let k = 7; k >= 8 - tail; k--) w[k] = w[k - (8 - groups)]!;
    for (let k = gap; k < 8 - tail; k++) w[k] = 0;
    [w0, w1, w2, w3, w4, w5, w6, w7] = w as [number, number, number, number, number, number, number, number];
  }
  // IPv4-mapped addresses are written in mixed notation (RFC 5952 section 5): the general path
  if (w0 === 0 && w1 === 0 && w2 === 0 && w3 === 0 && w4 === 0 && w5 === 0xffff) return -1;
  let len = 128;
  if (i < n) {
    const m = n - i - 1; // 1 to 3 digits after the slash, no leading zero
    if (m < 1 || m > 3) return -1;
    len = 0;
    for (let k = i + 1; k < n; k++) {
      const d = s.charCodeAt(k) - 48;
      if (d < 0 || d > 9 || (k === i + 1 && d === 0 && m > 1)) return -1;
      len = len * 10 + d;
    }
    if (len > 128) return -1;
  }
  const a = (w0 << 16) | w1;
  const b = (w2 << 16) | w3;
  const c = (w4 << 16) | w5;
  const d = (w6 << 16) | w7;
  if (len < 128 && (hostBits(a, len) | hostBits(b, len - 32) | hostBits(c, len - 64) | hostBits(d, len - 96)) !== 0) return -1;
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
  out[4] = len;
  // RFC 5952: '::' is the first longest run of two or more zero groups
  if (canon === 1) {
    const run = zeroRun(a, b, c, d);
    if ((run & 15) !== (gap < 0 ? 8 : gap) || (gap >= 0 && run >> 4 !== 8 - groups)) canon = 0;
  }
  out[5] = canon;
  return i < n ? i : n;
}

/** Group k (0..7) of the address in words a..d. */
function group(a: number, b: number, c: number, d: number, k: number): number {
  const w = k < 2 ? a : k < 4 ? b : k < 6 ? c : d;
  return k & 1 ? w & 0xffff : w >>> 16;
}

/** The first longest run of two or more zero groups: start | length << 4 (start 8: none). */
function zeroRun(a: number, b: number, c: number, d: number): number {
  let best = 8;
  let bestLen = 1;
  let run = 0;
  for (let k = 0; k <= 8; k++) {
    if (k < 8 && group(a, b, c, d, k) === 0) {
      run++;
    } else {
      if (run > bestLen) {
        best = k - run;
        bestLen = run;
      }
      run = 0;
    }
  }
  return best | (bestLen << 4);
}

/**
 * RFC 5952 text of the address readIPv6 wrote to out[0..3] (not IPv4-mapped: it refuses
 * those), as formatIPv6 gives it, without a Buffer or arrays.
 */
export function formatIPv6Words(out: Int32Array): string {
  const a = out[0]!;
  const b = out[1]!;
  const c = out[2]!;
  const d = out[3]!;
  const run = zeroRun(a, b, c, d);
  const best = run & 15;
  const end = best + (run >> 4);
  let t = '';
  for (let k = 0; k < 8; k++) {
    if (k === best) {
      t += '::';
      k = end - 1;
      continue;
    }
    if (t.length > 0 && k !== end) t += ':';
    t += group(a, b, c, d, k).toString(16);
  }
  return t;
}

/** The bits of word `w` past the first `bits` (bits < 0: all of them, >= 32: none). */
function hostBits(w: number, bits: number): number {
  return bits >= 32 ? 0 : bits <= 0 ? w : w & (-1 >>> bits);
}
