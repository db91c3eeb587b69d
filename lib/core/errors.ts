/**
 * One error family for everything bpfkit throws. `code` is stable and meant to be
 * branched on; `errno`/`syscall` are set when a system call failed (the addon builds
 * these errors from C++ so every kernel failure keeps its errno).
 */
export type BpfkitErrorCode =
  | 'ERR_PERMISSION'
  | 'ERR_NO_SUCH_INTERFACE'
  | 'ERR_NOT_FOUND'
  | 'ERR_EXISTS'
  | 'ERR_VERIFIER'
  | 'ERR_MAP_FULL'
  | 'ERR_UNSUPPORTED'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_RULE'
  | 'ERR_INVALID_OBJECT'
  | 'ERR_CODEC_MISMATCH'
  | 'ERR_BUSY'
  | 'ERR_CLOSED'
  | 'ERR_SYSTEM';

export interface BpfkitErrorOptions {
  errno?: number;
  syscall?: string;
  /** Name of the offending field / argument, when the error is about input. */
  field?: string;
  /** Rule id, for errors about one rule of a rule set. */
  ruleId?: string;
  /** Full verifier log (ERR_VERIFIER). */
  log?: string;
  /** Extra machine-readable details. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

const PERMISSION_HINT = 'bpfkit needs root, or CAP_BPF + CAP_NET_ADMIN (and CAP_PERFMON for tracing) on the process';

/** The error bpfkit throws for everything: branch on `code`; `field` names the input at fault. */
export class BpfkitError extends Error {
  /** Stable error code, meant to be branched on. */
  readonly code: BpfkitErrorCode;
  /** The errno of the failed system call, when one failed. */
  readonly errno?: number;
  /** The system call (or libbpf/libnl function) that failed, with `errno`. */
  readonly syscall?: string;
  /** Name of the offending field or argument, when the error is about input (`'dstPort'`, `'vnis[3]'`). */
  readonly field?: string;
  /** Id of the rule at fault, for errors about one rule of a rule set. */
  readonly ruleId?: string;
  /** Extra machine-readable details (e.g. `index` of a rule). */
  readonly details?: Record<string, unknown>;

  /** Builds an error; `opts.cause` becomes the standard `cause`. */
  constructor(code: BpfkitErrorCode, message: string, opts: BpfkitErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'BpfkitError';
    this.code = code;
    if (opts.errno !== undefined) this.errno = opts.errno;
    if (opts.syscall !== undefined) this.syscall = opts.syscall;
    if (opts.field !== undefined) this.field = opts.field;
    if (opts.ruleId !== undefined) this.ruleId = opts.ruleId;
    if (opts.details !== undefined) this.details = opts.details;
  }
}

/** The verifier refused a program. `log` is the complete log; the message shows its tail. */
export class VerifierError extends BpfkitError {
  /** The complete verifier log. */
  readonly log: string;
  /** Name of the program the verifier refused. */
  readonly program?: string;
  /** Builds a verifier error; the message gets the log's last lines. */
  constructor(message: string, opts: BpfkitErrorOptions & { program?: string }) {
    const log = opts.log ?? '';
    const tail = verifierTail(log);
    super('ERR_VERIFIER', tail ? `${message}: ${tail}` : message, opts);
    this.name = 'VerifierError';
    this.log = log;
    if (opts.program !== undefined) this.program = opts.program;
  }
}

/** Last meaningful lines of a verifier log (skips the "processed N insns" summary). */
export function verifierTail(log: string, lines = 3): string {
  const all = log
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('processed ') && !l.startsWith('-- '));
  return all.slice(-lines).join(' | ');
}

/** The one errno -> code table, for the bpf syscalls, netlink and everything else. */
const ERRNO_CODES: Record<number, BpfkitErrorCode> = {
  1: 'ERR_PERMISSION', // EPERM
  13: 'ERR_PERMISSION', // EACCES
  2: 'ERR_NOT_FOUND', // ENOENT
  3: 'ERR_NOT_FOUND', // ESRCH (netlink: no such rule or route)
  19: 'ERR_NO_SUCH_INTERFACE', // ENODEV
  17: 'ERR_EXISTS', // EEXIST
  7: 'ERR_MAP_FULL', // E2BIG (map full on update)
  28: 'ERR_MAP_FULL', // ENOSPC
  95: 'ERR_UNSUPPORTED', // EOPNOTSUPP
  97: 'ERR_UNSUPPORTED', // EAFNOSUPPORT
  38: 'ERR_UNSUPPORTED', // ENOSYS
  524: 'ERR_UNSUPPORTED', // ENOTSUPP (kernel internal)
  22: 'ERR_INVALID_ARGUMENT', // EINVAL
  34: 'ERR_INVALID_ARGUMENT', // ERANGE (netlink: a value out of range)
  101: 'ERR_INVALID_ARGUMENT', // ENETUNREACH (a gateway not on any connected network)
  16: 'ERR_BUSY', // EBUSY
  11: 'ERR_BUSY', // EAGAIN
  9: 'ERR_CLOSED', // EBADF
};

/** The code bpfkit gives a failed call's errno ('ERR_SYSTEM' for the rest). */
export function errnoCode(errno: number): BpfkitErrorCode {
  return ERRNO_CODES[errno] ?? 'ERR_SYSTEM';
}

/**
 * Build an error from an errno. Used by the addon (lib/core/native.ts hands it a factory
 * built on this with `setErrorFactory`, which C++ calls for every failed call) and by JS
 * code that wraps a failed syscall.
 */
export function errnoError(
  errno: number,
  syscall: string,
  message: string,
  extra: { code?: BpfkitErrorCode; log?: string; program?: string; details?: Record<string, unknown> } = {},
): BpfkitError {
  const code = extra.code ?? errnoCode(errno);
  const name = errnoName(errno);
  let msg = `${message} (${syscall}: ${name}${errno ? ` ${errno}` : ''})`;
  if (code === 'ERR_PERMISSION') msg += `. ${PERMISSION_HINT}`;
  const opts: BpfkitErrorOptions & { program?: string } = { errno, syscall };
  if (extra.details) opts.details = extra.details;
  if (code === 'ERR_VERIFIER') {
    if (extra.log !== undefined) opts.log = extra.log;
    if (extra.program !== undefined) opts.program = extra.program;
    return new VerifierError(msg, opts);
  }
  return new BpfkitError(code, msg, opts);
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  5: 'EIO',
  7: 'E2BIG',
  9: 'EBADF',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  14: 'EFAULT',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  20: 'ENOTDIR',
  22: 'EINVAL',
  24: 'EMFILE',
  28: 'ENOSPC',
  34: 'ERANGE',
  38: 'ENOSYS',
  61: 'ENODATA',
  71: 'EPROTO',
  75: 'EOVERFLOW',
  93: 'EPROTONOSUPPORT',
  90: 'EMSGSIZE',
  95: 'EOPNOTSUPP',
  97: 'EAFNOSUPPORT',
  98: 'EADDRINUSE',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
  105: 'ENOBUFS',
  110: 'ETIMEDOUT',
  113: 'EHOSTUNREACH',
  125: 'ECANCELED',
  524: 'ENOTSUPP',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno`;
}

/** Throw ERR_INVALID_ARGUMENT naming the field. */
export function invalidArgument(field: string, message: string, details?: Record<string, unknown>): never {
  const opts: BpfkitErrorOptions = { field };
  if (details) opts.details = details;
  throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: ${message}`, opts);
}
