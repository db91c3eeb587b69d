/**
 * Network-namespace arguments, one type and one resolver for every call that takes
 * `{ netns }` (XDP attach, testRun, interface lookups, routing, the modules).
 */
import { fstatSync, statSync } from 'node:fs';
import { invalidArgument } from '../errors.js';

/**
 * A network namespace: a name under /run/netns (`'blue'`), a path (`'/proc/1234/ns/net'`,
 * `'/run/netns/blue'`) or an open file descriptor of one (e.g. from
 * `fs.openSync('/run/netns/blue', 'r')`). An fd is used as `/proc/self/fd/N`: keep it open
 * until the call has finished, and for as long as an object that remembers its namespace
 * (a module that looks interfaces up later) is in use.
 */
export type NetnsRef = string | number;

let nsfsDev: number | undefined;

/**
 * Path of a namespace given by name, path or fd; undefined for "the caller's namespace"
 * (undefined or ''). An fd becomes `/proc/self/fd/N`, which the addon opens like any
 * other path. Bad input is ERR_INVALID_ARGUMENT naming the field 'netns'; a name or path
 * that does not exist is found out by the addon (ERR_NOT_FOUND).
 */
export function netnsPath(ns: NetnsRef | undefined): string | undefined {
  if (ns === undefined || ns === '') return undefined;
  if (typeof ns === 'number') return fdPath(ns);
  if (typeof ns !== 'string') invalidArgument('netns', `must be a namespace name, a path or an open fd, got ${typeof ns}`);
  if (ns.startsWith('/')) return ns;
  if (ns.includes('/') || ns === '.' || ns === '..') invalidArgument('netns', `'${ns}' is not a namespace name`);
  return `/run/netns/${ns}`;
}

function fdPath(fd: number): string {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) invalidArgument('netns', `expected a file descriptor, got ${fd}`);
  let dev: number;
  try {
    dev = fstatSync(fd).dev;
  } catch {
    invalidArgument('netns', `fd ${fd} is not an open file descriptor`);
  }
  // Every namespace file lives on the one nsfs instance: an fd elsewhere is not a namespace.
  nsfsDev ??= statSync('/proc/self/ns/net').dev;
  if (dev !== nsfsDev) invalidArgument('netns', `fd ${fd} is not a namespace file (open /run/netns/NAME or /proc/PID/ns/net)`);
  return `/proc/self/fd/${fd}`;
}

/** An interface by name or index, validated before any syscall. */
export function checkInterface(iface: string | number, field = 'interface'): string | number {
  if (typeof iface === 'number') {
    if (!Number.isInteger(iface) || iface <= 0) invalidArgument(field, `interface index must be a positive integer, got ${iface}`);
    return iface;
  }
  if (typeof iface !== 'string' || iface.length === 0 || iface.length > 15 || /[\s/:]/.test(iface)) {
    invalidArgument(field, `'${String(iface)}' is not a valid interface name`);
  }
  return iface;
}
