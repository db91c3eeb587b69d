/** What the lab's files share: namespace naming, input validation, `ip` error mapping. */
import { BpfkitError } from '../core/errors.js';

/** Every namespace the lab creates starts with this; leak checks recognise ours by it. */
export const LAB_NETNS_PREFIX = 'bk-';
/** Where iproute2 keeps named namespaces. */
export const NETNS_RUN_DIR = '/run/netns';
/**
 * The lab writes `bpfkit-lab:pid=<creator pid>:lab=<id>` as the alias of each namespace's
 * `lo`, so leak checks can tell a live lab of another process from a leftover.
 */
export const LAB_OWNER_ALIAS_PREFIX = 'bpfkit-lab:';

export const HOST_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
export const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

export function closedError(what: string): BpfkitError {
  return new BpfkitError('ERR_CLOSED', `${what}: the lab is closed`);
}

export function isV6(addr: string): boolean {
  return addr.includes(':');
}

export function validatePort(field: string, port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid port ${port}`, { field });
  }
}

/** An address as `ip addr add` takes it, without anything that could smuggle options in. */
export function validateAddr(field: string, addr: string): void {
  if (!/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(addr) || !/[.:]/.test(addr)) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid address '${addr}' (want e.g. 198.18.0.1/24 or fd00::1/64)`, {
      field,
    });
  }
}

export function validateIfname(field: string, name: string): void {
  if (!IFNAME_RE.test(name)) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid interface name '${name}' (1-15 chars of [A-Za-z0-9_.-])`, { field });
  }
}

/** Turn a failed `ip` command into a BpfkitError, mapping permission problems to ERR_PERMISSION. */
export function wrapIpError(err: unknown, what: string): BpfkitError {
  if (err instanceof BpfkitError) {
    const stderr = String((err.details as { stderr?: unknown } | undefined)?.stderr ?? '');
    if (/Operation not permitted|Permission denied/.test(stderr)) {
      return new BpfkitError('ERR_PERMISSION', `${what}: permission denied; the lab needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN): ${stderr.trim()}`, {
        cause: err,
        ...(err.details ? { details: err.details } : {}),
      });
    }
    return err;
  }
  return new BpfkitError('ERR_SYSTEM', `${what}: ${String(err)}`, { cause: err });
}

export interface IpLinkJson {
  ifindex: number;
  ifname: string;
  address?: string;
  operstate?: string;
  mtu?: number;
  flags?: string[];
  ifalias?: string;
}
