/**
 * ServiceChainer's configuration as applied: validated and compiled in one step
 * (`resolve`), and written to the kernel one rule-hash generation at a time.
 */
import type { PolicyRouteSpec } from '../../route/index.js';
import { invalidArgument } from '../../core/errors.js';
import { checkPaths, checkRules, compile, type Compiled, type Path, type Rule } from './config.js';
import { policies } from './routes.js';
import type { Parts } from './pins.js';
import type { ChainCounter, ChainLimits, ChainPath, ChainRule, ChainService } from './types.js';

/** Everything the chainer applied: what update() starts from. */
export interface State {
  services: ChainService[];
  upstream: ChainPath;
  rules: ChainRule[];
  paths: { services: Path[]; upstream: Path };
  checked: Rule[];
  compiled: Compiled;
  policies: PolicyRouteSpec[];
}

const zero = (): ChainCounter => ({ packets: 0n, bytes: 0n });

/** Validates and compiles a whole configuration (pure but for interface lookups). */
export function resolve(
  o: { services: readonly ChainService[]; upstream: ChainPath; rules: readonly ChainRule[] },
  limits: Required<ChainLimits>,
  ns: string | undefined,
  base: number,
  gen = 0,
): State {
  if (o.services === undefined) invalidArgument('services', 'is required (may be empty)');
  if (o.rules === undefined) invalidArgument('rules', 'is required (may be empty)');
  const paths = checkPaths(o.services, o.upstream);
  const checked = checkRules(o.rules, paths.services, limits, ns);
  const compiled = compile(checked, gen);
  return {
    services: o.services.map((s) => ({ ...s, nexthops: s.nexthops.map((h) => ({ ...h })) })),
    upstream: { ...o.upstream, nexthops: o.upstream.nexthops.map((h) => ({ ...h })) },
    rules: o.rules.map((r) => ({ ...r })),
    paths,
    checked,
    compiled,
    policies: policies(paths, base),
  };
}

/** Writes generation `gen` of the rule hash (cleared first) and zeroes its rule counters. */
export async function writeGeneration(p: Parts, gen: number, c: Compiled): Promise<void> {
  await clearGeneration(p, gen);
  for (const wide of [true, false]) {
    const list = c.entries.filter((e) => e.wide === wide);
    const map = wide ? p.rules6 : p.rules4;
    if (list.length) await map.setBatch(list.map((e) => [{ ...e.key, gen_shape: (gen << 8) | (e.key.gen_shape & 0xff) }, e.value] as const));
  }
  const maxRules = p.ruleStats.info.maxEntries / 2;
  const n = Math.max(0, ...c.entries.map((e) => e.value.rule + 1));
  if (n) await p.ruleStats.setBatch(Array.from({ length: n }, (_, i) => [gen * maxRules + i, zero()] as const));
}

export async function clearGeneration(p: Parts, gen: number): Promise<void> {
  for (const map of [p.rules6, p.rules4]) {
    const keys = [...map.keys()].filter((k) => k.gen_shape >>> 8 === gen);
    if (keys.length) await map.deleteBatch(keys);
  }
}
