// Reading an iptables chain's per-rule packet counter, for benches that compare with iptables.
import { execFileSync } from 'node:child_process';

/**
 * Packets counted by the last rule of `chain` in `table` whose line mentions `match`, read
 * with `<bin> -t <table> -L <chain> -v -x -n` inside network namespace `netns` (`bin`:
 * `iptables` or `iptables-nft`). Throws when no rule line mentions `match`.
 */
export function iptablesPackets(netns, { bin = 'iptables', table, chain, match }) {
  const out = execFileSync('ip', ['netns', 'exec', netns, bin, '-t', table, '-L', chain, '-v', '-x', '-n'], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const line = out
    .split('\n')
    .filter((l) => l.includes(match))
    .at(-1);
  if (line === undefined) throw new Error(`${bin} -t ${table} -L ${chain}: no rule mentions ${match}`);
  return Number(line.trim().split(/\s+/)[0]);
}
