/**
 * Exit codes of the `bpfkit` command (docs/cli.md lists them) and the one place that
 * turns an error into a message and a code.
 */
import { BpfkitError } from '../core/errors.js';

export const EXIT = {
  /** Done (for `firewall`: stopped by SIGINT/SIGTERM and cleaned up). */
  ok: 0,
  /** A runtime failure: the kernel or the system refused something. */
  failure: 1,
  /** The command line is wrong: unknown command or option, missing or bad option value. */
  usage: 2,
  /** Not permitted: not root, or without CAP_BPF / CAP_NET_ADMIN. */
  permission: 3,
  /** This kernel (or interface) lacks a feature the command needs. */
  unsupported: 4,
  /** An input file (a rule file) cannot be read, parsed or validated. */
  input: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI itself raises, with the exit code it stands for. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** The exit code an error stands for. */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof BpfkitError) {
    switch (err.code) {
      case 'ERR_PERMISSION':
        return EXIT.permission;
      case 'ERR_UNSUPPORTED':
        return EXIT.unsupported;
      case 'ERR_INVALID_RULE':
        return EXIT.input;
      case 'ERR_INVALID_ARGUMENT':
        return EXIT.usage;
      default:
        return EXIT.failure;
    }
  }
  return EXIT.failure;
}

/** One line (or a few) saying what went wrong, for stderr. */
export function describeError(err: unknown): string {
  if (err instanceof CliError) return err.message;
  // bpfkit's messages already name the rule ("rule 'ssh' (#0): dstPort: ...") or field
  if (err instanceof BpfkitError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
