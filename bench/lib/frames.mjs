// Frames the live benchmarks send.

/** 128-byte Ethernet/IPv4/UDP frame, 40000 -> 9000 (valid IP checksum, UDP checksum 0). */
export function udpFrame128(srcMac, dstMac, src, dst) {
  const b = Buffer.alloc(128);
  Buffer.from(dstMac.split(':').map((x) => parseInt(x, 16))).copy(b, 0);
  Buffer.from(srcMac.split(':').map((x) => parseInt(x, 16))).copy(b, 6);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(128 - 14, 16);
  b[22] = 64;
  b[23] = 17;
  Buffer.from(src.split('.').map(Number)).copy(b, 26);
  Buffer.from(dst.split('.').map(Number)).copy(b, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 24);
  b.writeUInt16BE(40000, 34);
  b.writeUInt16BE(9000, 36);
  b.writeUInt16BE(128 - 34, 38);
  return b;
}
