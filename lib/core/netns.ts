/** Network-namespace arguments: a name under /run/netns, or a path (/proc/PID/ns/net). */
import { invalidArgument } from './errors.js';

export type NetnsRef = string;

/** Path of a namespace given by name or path; undefined for "the caller's namespace". */
export function netnsPath(ns: NetnsRef | undefined): string | undefined {
  if (ns === undefined || ns === '') return undefined;
  if (typeof ns !== 'string') invalidArgument('netns', 'must be a namespace name or a path');
  if (ns.startsWith('/')) return ns;
  if (ns.includes('/') || ns === '.' || ns === '..') invalidArgument('netns', `'${ns}' is not a namespace name`);
  return `/run/netns/${ns}`;
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
