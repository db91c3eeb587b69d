#!/usr/bin/env node
// Runs every bench/*.bench.mjs (or those named with --only), prints each result as a
// table and writes bench/results/<name>.json. `--quick` asks each benchmark for a short run.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } } });
const only = values.only ? values.only.split(',') : null;
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .sort();
mkdirSync(join(here, 'results'), { recursive: true });

function table(rows) {
  if (!rows.length) return '';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(v < 10 ? 3 : 1)) : String(v ?? ''));
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  const line = (cells) => cells.map((c, i) => c.padStart(w[i])).join('  ');
  return [line(cols), line(w.map((n) => '-'.repeat(n))), ...rows.map((r) => line(cols.map((c) => fmt(r[c]))))].join('\n');
}

let failed = 0;
for (const f of files) {
  const mod = (await import(join(here, f))).default;
  if (only && !only.includes(mod.name)) continue;
  console.log(`\n## ${mod.name}: ${mod.description}`);
  const t0 = Date.now();
  try {
    const res = await mod.run({ quick: values.quick, log: (m) => console.log(`   ${m}`) });
    console.log(table(res.rows));
    if (res.summary) console.log('summary:', JSON.stringify(res.summary));
    const out = { name: mod.name, date: new Date().toISOString(), quick: values.quick, seconds: (Date.now() - t0) / 1000, ...res };
    writeFileSync(join(here, 'results', `${mod.name}.json`), JSON.stringify(out, null, 2));
  } catch (e) {
    failed++;
    console.error(`benchmark ${mod.name} failed:`, e);
  }
}
process.exit(failed ? 1 : 0);
