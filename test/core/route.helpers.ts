/**
 * What the routing suites share: one lab (hosts a and b, two veth pairs with IPv4 and IPv6
 * addresses), iproute2 run in a host's namespace as the witness, and the root namespace's
 * rules snapshotted before and compared after (they must not change).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, expect } from 'vitest';
import { BpfkitError } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';

/** The root namespace's rules (both families), to compare before and after a suite. */
export function rootRules(): string {
  return [
    ['-4', 'rule', 'show'],
    ['-6', 'rule', 'show'],
  ]
    .map((a) => execFileSync('ip', a, { encoding: 'utf8' }))
    .join('\n--\n');
}

/** The network namespaces of this process's threads. */
export function threadNamespaces(): Set<string> {
  const out = new Set<string>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      out.add(readlinkSync(`/proc/self/task/${t}/ns/net`));
    } catch {
      /* thread exited */
    }
  }
  return out;
}

export const rootNs = readlinkSync('/proc/self/ns/net');

export interface RouteLab {
  lab: Lab;
  a: LabHost;
  b: LabHost;
}

/** Register the suite's lab (created before its tests, closed after); fields are set once beforeAll ran. */
export function useRouteLab(name: string): RouteLab {
  const fx = {} as RouteLab;
  let rootBefore = '';
  beforeAll(async () => {
    rootBefore = rootRules();
    fx.lab = await Lab.create({ name });
    fx.a = await fx.lab.host('a');
    fx.b = await fx.lab.host('b');
    await fx.lab.link(fx.a, fx.b, { aName: 'eth0', bName: 'eth0', aAddrs: ['198.18.1.1/24', 'fd00:1::1/64'], bAddrs: ['198.18.1.2/24', 'fd00:1::2/64'] });
    await fx.lab.link(fx.a, fx.b, { aName: 'eth1', bName: 'eth1', aAddrs: ['198.18.2.1/24', 'fd00:2::1/64'], bAddrs: ['198.18.2.2/24', 'fd00:2::2/64'] });
  });
  afterAll(async () => {
    await fx.lab?.close();
    // never touch the root namespace: its rules must be exactly as before
    expect(rootRules()).toBe(rootBefore);
  });
  return fx;
}

/** `ip rule show` (both families) in host h: the witness. */
export async function ipRules(h: LabHost): Promise<string> {
  return `${await h.ip(['-4', 'rule', 'show'])}--\n${await h.ip(['-6', 'rule', 'show'])}`;
}

export async function ipRoutes(table: number | string, h: LabHost): Promise<string> {
  // ip fails on a table the kernel has not created yet: that is an empty table
  const show = (fam: string) =>
    h.ip([fam, 'route', 'show', 'table', String(table)]).catch((e: Error) => {
      if (/FIB table does not exist/.test(e.message)) return '';
      throw e;
    });
  return `${await show('-4')}--\n${await show('-6')}`;
}

/** Everything routing-related in a namespace, for "nothing changed" checks. */
export async function routingState(h: LabHost): Promise<string> {
  return `${await ipRules(h)}\n${await h.ip(['-4', 'route', 'show', 'table', 'all'])}\n${await h.ip(['-6', 'route', 'show', 'table', 'all'])}`;
}

export async function rejects(p: Promise<unknown>): Promise<BpfkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a rejection');
}
