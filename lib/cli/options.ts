/**
 * Option-value parsers for commander: a bad value is a usage error (exit 2) that names
 * the option, raised before anything runs.
 */
import { InvalidArgumentError } from 'commander';

/** An integer in min..max. */
export function integerOption(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}, got '${value}'`);
    return n;
  };
}

/** A plain name (a namespace under /run/netns, an interface): no slashes, not '.' or '..'. */
export function nameOption(): (value: string) => string {
  return (value) => {
    if (!value || value.length > 255 || value.includes('/') || value.includes('\0') || value === '.' || value === '..') {
      throw new InvalidArgumentError(`'${value}' is not a name`);
    }
    return value;
  };
}

/** Like nameOption, for options that take several values. */
export function namesOption(): (value: string, previous: string[] | undefined) => string[] {
  const one = nameOption();
  return (value, previous) => [...(previous ?? []), one(value)];
}

/** A comma-separated list whose items must be among `known`. */
export function listOption(known: readonly string[]): (value: string) => string[] {
  return (value) => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!items.length) throw new InvalidArgumentError(`expected a comma-separated list of ${known.join(', ')}`);
    for (const i of items) {
      if (!known.includes(i)) throw new InvalidArgumentError(`unknown '${i}' (known: ${known.join(', ')})`);
    }
    return items;
  };
}
