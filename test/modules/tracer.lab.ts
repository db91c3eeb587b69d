/**
 * The routed lab the PacketTracer suites share: a -- r -- b, r forwarding, IPv4 and IPv6,
 * neighbours resolved by one ping. Each suite takes its own pair of subnets (198.18.N.0/24
 * and 198.18.N+1.0/24, 2001:db8:N::/64 and 2001:db8:N+1::/64): the tracer sees every
 * namespace on the machine, and suites running side by side must not match each other's
 * packets.
 */
import { statSync } from 'node:fs';
import { expect } from 'vitest';
import { Lab, type LabHost, type LabLink } from '../../lib/lab/index.js';

export interface TracerLab {
  lab: Lab;
  a: LabHost;
  r: LabHost;
  b: LabHost;
  ar: LabLink;
  rb: LabLink;
  /** a's address (198.18.N.1) and b's (198.18.N+1.2). */
  A: string;
  B: string;
  /** The namespaces' inode numbers, by host name (what the tracer reports as `netns`). */
  ino: Record<'a' | 'r' | 'b', number>;
}

/** Builds the lab on subnets N and N+1; the caller closes `lab`. */
export async function tracerLab(name: string, n: number): Promise<TracerLab> {
  const m = n + 1;
  const A = `198.18.${n}.1`;
  const B = `198.18.${m}.2`;
  const lab = await Lab.create({ name });
  const [a, r, b] = await Promise.all([lab.host('a'), lab.host('r', { forwarding: true }), lab.host('b')]);
  const [ar, rb] = await Promise.all([
    lab.link(a, r, { aAddrs: [`${A}/24`, `2001:db8:${n}::1/64`], bAddrs: [`198.18.${n}.2/24`, `2001:db8:${n}::2/64`] }),
    lab.link(r, b, { aAddrs: [`198.18.${m}.1/24`, `2001:db8:${m}::1/64`], bAddrs: [`${B}/24`, `2001:db8:${m}::2/64`] }),
  ]);
  await a.addRoute(`198.18.${m}.0/24 via 198.18.${n}.2`);
  await b.addRoute(`198.18.${n}.0/24 via 198.18.${m}.1`);
  await a.addRoute(`2001:db8:${m}::/64 via 2001:db8:${n}::2`);
  await b.addRoute(`2001:db8:${n}::/64 via 2001:db8:${m}::1`);
  expect((await a.ping(B, { count: 1 })).received).toBe(1); // neighbours resolved
  const ino = { a: statSync(a.netnsPath).ino, r: statSync(r.netnsPath).ino, b: statSync(b.netnsPath).ino };
  return { lab, a, r, b, ar, rb, A, B, ino };
}
