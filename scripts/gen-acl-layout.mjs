#!/usr/bin/env node
// Generates lib/modules/acl/layout.gen.ts from bpf/include/acl_blob.h, the one source of
// truth of the ACL blob's layout: every `#define ACL_X <value>` becomes `export const X`,
// and the members of `enum acl_stat` become ACL_STATS (ACL_STAT_NON_IP -> 'nonIp'), in
// enum order. Run by the native build (CMakeLists.txt) whenever the header changes; the
// output is committed so the TypeScript builds and type-checks without a C toolchain.
//
//   node scripts/gen-acl-layout.mjs           write the file (only if its text changes)
//   node scripts/gen-acl-layout.mjs --check   exit 1 if the committed file is stale
//
// Values are integer expressions of literals and earlier ACL_ macros (+ - * / << >> | &,
// parentheses), or brace lists of them; anything else is an error, so a macro the
// generator cannot read never silently goes missing on the TypeScript side.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HEADER = 'bpf/include/acl_blob.h';
const OUTPUT = 'lib/modules/acl/layout.gen.ts';
const SKIP = new Set(['ACL_BLOB_H']); // the include guard

/** The text of `OUTPUT` for the header text `src`. */
export function generate(src) {
  const values = new Map(); // ACL_X -> BigInt, for macros that use earlier ones
  const out = [
    `// Generated from ${HEADER} by scripts/gen-acl-layout.mjs: do not edit. Change the`,
    '// header; the native build regenerates this file (test/unit/acl-blob-contract.test.ts',
    '// checks that it is current and that the C compiler agrees with every value).',
    '',
  ];
  const lines = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const def = /^#define\s+(ACL_\w+)(\(?)\s*(.*)$/.exec(line);
    if (def) {
      const [, name, paren, rest] = def;
      if (SKIP.has(name)) continue;
      if (paren) throw new Error(`${HEADER}:${i + 1}: ${name} is a function-like macro (not part of the blob's contract)`);
      const { body, comment } = splitComment(rest, i);
      if (!body) throw new Error(`${HEADER}:${i + 1}: ${name} has no value`);
      const doc = docOf(lines, i, comment);
      const ts = name.slice('ACL_'.length);
      if (body.startsWith('{')) {
        if (!body.endsWith('}')) throw new Error(`${HEADER}:${i + 1}: ${name}: unterminated brace list`);
        const items = body
          .slice(1, -1)
          .split(',')
          .map((e) => e.trim())
          .filter((e) => e !== '');
        const nums = items.map((e) => toNumber(evaluate(e, values, name, i), name, i));
        out.push(...doc, `export const ${ts}: readonly number[] = [${nums.join(', ')}];`);
      } else {
        const v = evaluate(body, values, name, i);
        values.set(name, v);
        const n = toNumber(v, name, i);
        const literal = /^0x[0-9a-f]+[uUlL]*$/i.test(body) ? `0x${n.toString(16)}` : String(n);
        const expr = /^[0-9]+[uUlL]*$/.test(body) || literal.startsWith('0x') ? '' : ` // ${body}`;
        out.push(...doc, `export const ${ts} = ${literal};${expr}`);
      }
      continue;
    }
    if (/^enum\s+acl_stat\s*\{/.test(line)) {
      const names = [];
      for (i++; i < lines.length && !/^\s*\}/.test(lines[i]); i++) {
        const m = /^\s*(ACL_STAT_\w+)\s*(=?)/.exec(lines[i]);
        if (!m) continue;
        if (m[2]) throw new Error(`${HEADER}:${i + 1}: enum acl_stat members take their position (no = value)`);
        if (m[1] !== 'ACL_STAT_MAX') names.push(camel(m[1].slice('ACL_STAT_'.length)));
      }
      out.push(
        '/** Per-CPU misc counters (acl_stats): enum acl_stat, in its order, named after its members. */',
        'export const ACL_STATS = [',
        ...names.map((n) => `  '${n}',`),
        '] as const;',
      );
    }
  }
  return `${out.join('\n')}\n`;
}

function splitComment(rest, i) {
  const at = rest.indexOf('/*');
  if (at < 0) return { body: rest.trim(), comment: '' };
  const end = rest.indexOf('*/', at);
  if (end < 0) throw new Error(`${HEADER}:${i + 1}: a comment after a #define must end on its line`);
  return { body: rest.slice(0, at).trim(), comment: rest.slice(at + 2, end).trim() };
}

/** JSDoc from the block comment right above line i (if it ends there) and the trailing one. */
function docOf(lines, i, trailing) {
  const text = [];
  if (i > 0 && /\*\/\s*$/.test(lines[i - 1]) && !/^#/.test(lines[i - 1])) {
    let s = i - 1;
    while (s > 0 && !lines[s].includes('/*')) s--;
    for (let k = s; k < i; k++) text.push(lines[k].replace(/^\s*\/?\*+\/?\s?/, '').replace(/\s*\*\/\s*$/, ''));
  }
  if (trailing) text.push(trailing);
  const body = text.map((t) => t.trim()).filter((t) => t !== '');
  if (body.length === 0) return [];
  return body.length === 1 ? [`/** ${body[0]} */`] : ['/**', ...body.map((t) => ` * ${t}`), ' */'];
}

function camel(upper) {
  return upper.toLowerCase().replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/** A C integer expression, evaluated as BigInt (literals, earlier ACL_ macros, + - * / << >> | &). */
function evaluate(expr, values, name, i) {
  const js = expr.replace(/\b(0x[0-9a-f]+|[0-9]+)[uUlL]*\b|\b(ACL_\w+)\b/gi, (_, num, ref) => {
    if (num) return `${num}n`;
    if (!values.has(ref)) throw new Error(`${HEADER}:${i + 1}: ${name} uses ${ref}, not an earlier integer ACL_ macro`);
    return `${values.get(ref)}n`;
  });
  if (!/^[0-9a-fxn\s()+\-*/<>|&]*$/i.test(js) || /[^<]<[^<]|[^>]>[^>]/.test(` ${js} `)) {
    throw new Error(`${HEADER}:${i + 1}: ${name}: cannot evaluate "${expr}"`);
  }
  return Function(`"use strict"; return (${js});`)();
}

function toNumber(v, name, i) {
  if (typeof v !== 'bigint' || v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`${HEADER}:${i + 1}: ${name} is not a non-negative integer a number holds`);
  }
  return Number(v);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = generate(readFileSync(join(root, HEADER), 'utf8'));
  let old = '';
  try {
    old = readFileSync(join(root, OUTPUT), 'utf8');
  } catch {
    /* not there yet */
  }
  if (process.argv.includes('--check')) {
    if (old !== text) {
      process.stderr.write(`${OUTPUT} is stale: run node scripts/gen-acl-layout.mjs (or the native build)\n`);
      process.exit(1);
    }
  } else if (old !== text) {
    writeFileSync(join(root, OUTPUT), text);
  }
}
