/**
 * Rule files of `bpfkit firewall`: YAML (.yaml, .yml, or any other name) or JSON (.json),
 * holding a list of rules or `{ rules: [...] }`. Only the file's shape is checked here;
 * the rules themselves are validated by AclFirewall (errors name the rule and the field).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { AclRule } from '../modules/acl/index.js';
import { CliError, EXIT } from './exit.js';

/** Reads and parses a rule file; every failure is a CliError (exit code 5) naming the file. */
export async function loadRuleFile(path: string): Promise<AclRule[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CliError(EXIT.input, `${path}: cannot read the rule file: ${(e as Error).message}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new CliError(EXIT.input, `${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`, { cause: e });
  }
  return rulesOf(doc, path);
}

function rulesOf(doc: unknown, path: string): AclRule[] {
  if (doc === null || doc === undefined) return []; // an empty file: no rules
  if (Array.isArray(doc)) return doc as AclRule[];
  if (typeof doc === 'object') {
    const extra = Object.keys(doc).filter((k) => k !== 'rules');
    if (extra.length) throw new CliError(EXIT.input, `${path}: unknown top-level key '${extra[0]}' (a rule file is a list of rules, or { rules: [...] })`);
    const rules = (doc as { rules?: unknown }).rules;
    if (rules === undefined || rules === null) return [];
    if (Array.isArray(rules)) return rules as AclRule[];
  }
  throw new CliError(EXIT.input, `${path}: expected a list of rules or { rules: [...] }`);
}
