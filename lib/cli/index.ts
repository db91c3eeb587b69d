/**
 * The `bpfkit` command (dist/cli.js): demo, status, firewall, trace. One file per command;
 * exit codes and error reporting in exit.ts (docs/cli.md describes them all).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { packageRoot } from '../core/native.js';
import { registerDemo } from './demo.js';
import { describeError, EXIT, exitCodeOf, type ExitCode } from './exit.js';
import { registerFirewall } from './firewall.js';
import { registerStatus } from './status.js';
import { registerTrace } from './trace.js';

/** The commander program, every command registered; `exit` receives the code a command finished with. */
export function buildProgram(exit: (code: ExitCode) => void): Command {
  const program = new Command('bpfkit');
  const version = (JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string }).version;
  program
    .description('program the Linux datapath with eBPF: status, firewall, trace, demo')
    .version(version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 failure, 2 usage error, 3 not permitted (root or CAP_BPF + CAP_NET_ADMIN
needed), 4 unsupported by this kernel or interface, 5 bad input file. See docs/cli.md.`,
    );
  const run = async (fn: () => Promise<ExitCode>): Promise<void> => {
    let code: ExitCode;
    try {
      code = await fn();
    } catch (e) {
      process.stderr.write(`bpfkit: ${describeError(e)}\n`);
      code = exitCodeOf(e);
    }
    exit(code);
  };
  registerStatus(program, run);
  registerFirewall(program, run);
  registerTrace(program, run);
  registerDemo(program, run);
  for (const c of program.commands) c.exitOverride();
  return program;
}

/** Parses argv (without node and script) and runs the command; resolves to the exit code. */
export async function main(argv: string[]): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // --help and --version end with exit code 0; everything else commander raises is usage
    return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bpfkit: ${describeError(err)}\n`);
    process.exit(exitCodeOf(err));
  },
);
