/**
 * The `bpfkit` command line itself: help for every command, usage errors (exit 2), rule
 * files that cannot be read or parsed (exit 5, before anything touches the kernel), and
 * "not permitted" (exit 3) when run as an unprivileged user.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bpfkit --help', () => {
  it('the top level lists every command and the exit codes', async () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      for (const c of ['status', 'firewall', 'demo']) expect(r.stdout).toContain(c);
      expect(r.stdout).toMatch(/Exit codes: 0 ok, 1 failure, 2 usage error, 3 not permitted/);
    }
  });

  it.each([
    ['status', ['--json', '--netns']],
    ['firewall', ['--iface', '--rules', '--netns', '--default', '--mode', '--keep', '--pin', '--event-interval', '--max-rules', '--json']],
    ['demo', ['--seconds', '--only']],
  ])('%s --help exits 0 and names its options', async (cmd, options) => {
    for (const args of [
      [cmd, '--help'],
      ['help', cmd],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain(`Usage: bpfkit ${cmd}`);
      for (const o of options) expect(r.stdout).toContain(o);
    }
  });

  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('usage errors exit 2 and say what is wrong', () => {
  it.each([
    [[], /Usage: bpfkit/],
    [['bogus'], /unknown command 'bogus'/],
    [['status', '--bogus'], /unknown option '--bogus'/],
    [['status', '--netns', 'a/b'], /'a\/b' is not a name/],
    [['demo', '--seconds', '0'], /--seconds <n>.*expected an integer in 1\.\.3600/],
    [['demo', '--seconds', 'soon'], /--seconds <n>.*expected an integer/],
    [['demo', '--only', 'core,nope'], /unknown 'nope' \(known: core/],
    [['firewall', '--rules', 'r.yaml'], /required option '--iface <name>'/],
    [['firewall', '--iface', 'eth0'], /required option '--rules <file>'/],
    [['firewall', '--iface', 'eth0', '--rules', 'r.yaml', '--default', 'maybe'], /--default.*Allowed choices are allow, deny/],
    [['firewall', '--iface', 'eth0', '--rules', 'r.yaml', '--mode', 'fast'], /Allowed choices are native, generic, auto/],
    [['firewall', '--iface', 'eth0', '--rules', 'r.yaml', '--max-rules', '0'], /--max-rules <n>.*1\.\.200000/],
  ])('bpfkit %j', async (args, message) => {
    const r = await cli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a bad interface name is a usage error naming the field, before any kernel change', async () => {
    const rules = join(dir, 'empty.yaml');
    writeFileSync(rules, 'rules: []\n');
    const r = await cli(['firewall', '--iface', 'not a name', '--rules', rules]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ERR_INVALID_ARGUMENT: iface: 'not a name' is not a valid interface name/);
  });
});

describe('rule files that cannot be used exit 5, naming the file', () => {
  it.each([
    ['missing.yaml', null, /missing\.yaml: cannot read the rule file/],
    ['broken.yaml', 'rules: [ {id: a, action: deny\n', /broken\.yaml: not valid YAML/],
    ['broken.json', '[{"id": "a",', /broken\.json: not valid JSON/],
    ['extra.yaml', 'rules: []\ndefaults: deny\n', /extra\.yaml: unknown top-level key 'defaults'/],
    ['scalar.yaml', '42\n', /scalar\.yaml: expected a list of rules or \{ rules: \[\.\.\.\] \}/],
  ])('%s', async (name, text, message) => {
    const file = join(dir, name);
    if (text !== null) writeFileSync(file, text);
    const r = await cli(['firewall', '--iface', 'lo', '--rules', file]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(message);
  });
});

describe('without privileges', () => {
  it('status prints the kernel facts, says it may not read BPF objects, and exits 3', async () => {
    const r = await cli(['status'], { spawn: { uid: 65534, gid: 65534, cwd: '/' } });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^kernel {6}\S+/m);
    expect(r.stdout).toMatch(/privileges {2}not root/);
    expect(r.stdout).toMatch(/attachments not permitted/);
    const j = await cli(['status', '--json'], { spawn: { uid: 65534, gid: 65534, cwd: '/' } });
    expect(j.code).toBe(3);
    const doc = JSON.parse(j.stdout) as { kernel: { root: boolean }; attachments: unknown; error: string };
    expect(doc.kernel.root).toBe(false);
    expect(doc.attachments).toBeNull();
    expect(doc.error).toMatch(/not permitted/);
  });
});
