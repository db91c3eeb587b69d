/** Network interfaces by name or index, in any network namespace. */
import { native } from '../native.js';
import { checkInterface, netnsPath, type NetnsRef } from './netns.js';

/**
 * The index of interface `iface` (a name or an index, checked to exist) in `netns`
 * (default: the caller's namespace). ERR_NO_SUCH_INTERFACE when there is none;
 * ERR_INVALID_ARGUMENT naming `field` for a malformed name.
 */
export function ifIndex(iface: string | number, opts: { netns?: NetnsRef; field?: string } = {}): number {
  checkInterface(iface, opts.field ?? 'interface');
  return native().ifIndex(iface, netnsPath(opts.netns));
}
