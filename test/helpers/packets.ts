/** Minimal frame builders for tests (Ethernet + IPv4/IPv6 + UDP), checksums included. */
import { parseIPv4, parseIPv6 } from '../../lib/core/codecs.js';

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function csum(buf: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export interface UdpFrame {
  srcMac?: string;
  dstMac?: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload?: Buffer | string;
}

export function udpFrame(f: UdpFrame): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload) : (f.payload ?? Buffer.alloc(18));
  const v6 = f.src.includes(':');
  const eth = Buffer.concat([
    macBytes(f.dstMac ?? '02:00:00:00:00:02'),
    macBytes(f.srcMac ?? '02:00:00:00:00:01'),
    Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00]),
  ]);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(f.sport, 0);
  udp.writeUInt16BE(f.dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const l4 = Buffer.concat([udp, payload]);
  if (v6) {
    const s = parseIPv6(f.src)!,
      d = parseIPv6(f.dst)!;
    const ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = 17;
    ip[7] = 64;
    s.copy(ip, 8);
    d.copy(ip, 24);
    const pseudo = Buffer.concat([s, d, Buffer.from([0, 0, l4.length >> 8, l4.length & 0xff, 0, 0, 0, 17])]);
    l4.writeUInt16BE(csum(Buffer.concat([pseudo, l4])) || 0xffff, 6);
    return Buffer.concat([eth, ip, l4]);
  }
  const s = parseIPv4(f.src)!,
    d = parseIPv4(f.dst)!;
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  s.copy(ip, 12);
  d.copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  const pseudo = Buffer.concat([s, d, Buffer.from([0, 17, l4.length >> 8, l4.length & 0xff])]);
  l4.writeUInt16BE(csum(Buffer.concat([pseudo, l4])) || 0xffff, 6);
  return Buffer.concat([eth, ip, l4]);
}
