/**
 * What `bpfkit status` reads from the kernel: every XDP and TC attachment in this
 * process's network namespace and in every named one (/run/netns), and the objects pinned
 * under /sys/fs/bpf. XDP and tcx come through bpfkit's addon (xdpQuery, TcLink.query);
 * the interface list comes from `ip -j link` and clsact filters from `bpftool net -j`,
 * which the addon does not read. Which programs are bpfkit's is decided in status-modules.ts.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfkitError } from '../core/errors.js';
import { native, type NativeLinkHandle, type NativeMapHandle, type NativeProgramHandle } from '../core/native.js';
import { TcLink, type TcDirection } from '../core/programs/tc.js';
import { ipBin, run } from '../lab/run.js';
import { BPFFS_PATH } from '../lab/bpffs.js';

/** Directory of named network namespaces (iproute2's). */
export const NETNS_DIR = '/run/netns';
/** Walk limits for /sys/fs/bpf: a machine with more pins than this is listed in part (and says so). */
const MAX_PIN_DEPTH = 6;
const MAX_PINS = 4096;
const CMD_TIMEOUT_MS = 10_000;

export type Hook = 'xdp' | 'tc-ingress' | 'tc-egress';

/** One program attached at one hook of one interface, as the kernel reports it. */
export interface RawAttachment {
  /** Name under /run/netns; null for the namespace `bpfkit status` runs in. */
  netns: string | null;
  ifname: string;
  ifindex: number;
  hook: Hook;
  /** xdp: 'native' | 'generic' | 'offload'; tc: 'tcx' | 'clsact'. */
  mode: string;
  programId: number;
  /** tcx: the bpf_link id (0: attached without a link). */
  linkId?: number;
}

export interface NamespaceScan {
  name: string | null;
  interfaces: number;
  /** Why (part of) this namespace could not be read. */
  error?: string;
}

export interface PinInfo {
  path: string;
  kind: 'map' | 'program' | 'link';
  /** Kernel id of the pinned object. */
  id: number;
  /** Map or program name (links have none). */
  name?: string;
  /** For a program: its id; for a link: the program it runs. */
  programId?: number;
  /** For a link: the interface index it is attached to, if it has one. */
  ifindex?: number;
}

interface IpLink {
  ifindex: number;
  ifname: string;
}
interface BpftoolNet {
  tc?: { devname: string; ifindex: number; kind: string; id: number }[];
}

/** Named namespaces, without aliases of the namespace this process runs in. */
export function namedNamespaces(): string[] {
  let names: string[];
  try {
    names = readdirSync(NETNS_DIR).sort();
  } catch {
    return [];
  }
  let self: number | undefined;
  try {
    self = statSync('/proc/self/ns/net').ino;
  } catch {
    /* no procfs: keep every name */
  }
  return names.filter((n) => {
    try {
      return statSync(join(NETNS_DIR, n)).ino !== self;
    } catch {
      return false; // removed while we looked
    }
  });
}

const XDP_MODES: Record<string, string> = { drv: 'native', skb: 'generic', hw: 'offload', native: 'native', generic: 'generic', offload: 'offload' };

/** Every XDP and TC attachment of one namespace. */
export async function scanNamespace(netns: string | null, warnings: string[]): Promise<{ scan: NamespaceScan; attachments: RawAttachment[] }> {
  const nsArgs = netns ? ['-n', netns] : [];
  const nsPath = netns ? join(NETNS_DIR, netns) : undefined;
  const where = netns ? `namespace '${netns}'` : 'this namespace';
  const scan: NamespaceScan = { name: netns, interfaces: 0 };
  const out: RawAttachment[] = [];
  let links: IpLink[];
  try {
    const r = await run(ipBin(), [...nsArgs, '-j', 'link', 'show'], { timeoutMs: CMD_TIMEOUT_MS });
    links = JSON.parse(r.stdout || '[]') as IpLink[];
  } catch (e) {
    scan.error = `cannot list interfaces: ${e instanceof Error ? e.message : String(e)}`;
    return { scan, attachments: out };
  }
  scan.interfaces = links.length;
  const names = new Map(links.map((l) => [l.ifindex, l.ifname]));
  for (const l of links) {
    try {
      const q = native().xdpQuery(l.ifindex, nsPath);
      if (q.progId) out.push({ netns, ifname: l.ifname, ifindex: l.ifindex, hook: 'xdp', mode: XDP_MODES[q.mode] ?? q.mode, programId: q.progId });
    } catch (e) {
      if (isPermission(e)) throw e;
      if (!isGone(e)) warnings.push(`${where}, ${l.ifname}: XDP query failed: ${messageOf(e)}`);
    }
    for (const direction of ['ingress', 'egress'] as TcDirection[]) {
      try {
        const q = TcLink.query(l.ifindex, nsPath ? { direction, netns: nsPath } : { direction });
        for (const p of q.programs) {
          out.push({ netns, ifname: l.ifname, ifindex: l.ifindex, hook: `tc-${direction}`, mode: 'tcx', programId: p.programId, linkId: p.linkId });
        }
      } catch (e) {
        if (isPermission(e)) throw e;
        // ERR_UNSUPPORTED: a kernel without tcx hooks has nothing there to list
        if (!isGone(e) && !(e instanceof BpfkitError && e.code === 'ERR_UNSUPPORTED')) {
          warnings.push(`${where}, ${l.ifname}: tcx query (${direction}) failed: ${messageOf(e)}`);
        }
      }
    }
  }
  out.push(...(await clsactFilters(netns, names, warnings)));
  return { scan, attachments: out };
}

/** cls_bpf filters under clsact (or ingress) qdiscs, through bpftool. */
async function clsactFilters(netns: string | null, names: Map<number, string>, warnings: string[]): Promise<RawAttachment[]> {
  const cmd = netns ? ([ipBin(), ['netns', 'exec', netns, 'bpftool', '-j', 'net']] as const) : (['bpftool', ['-j', 'net']] as const);
  let net: BpftoolNet[] | BpftoolNet;
  try {
    const r = await run(cmd[0], [...cmd[1]], { timeoutMs: CMD_TIMEOUT_MS });
    net = JSON.parse(r.stdout || '[]') as BpftoolNet[] | BpftoolNet;
  } catch (e) {
    warnings.push(`${netns ? `namespace '${netns}'` : 'this namespace'}: clsact filters not listed (bpftool -j net: ${messageOf(e)})`);
    return [];
  }
  const out: RawAttachment[] = [];
  for (const block of Array.isArray(net) ? net : [net]) {
    for (const f of block.tc ?? []) {
      // bpftool names the hook 'clsact/ingress', 'clsact/egress' or 'ingress' (an ingress qdisc)
      const direction = f.kind.endsWith('egress') ? 'egress' : 'ingress';
      out.push({ netns, ifname: names.get(f.ifindex) ?? f.devname, ifindex: f.ifindex, hook: `tc-${direction}`, mode: 'clsact', programId: f.id });
    }
  }
  return out;
}

/** Objects pinned under `root` (default /sys/fs/bpf), depth-first in name order. */
export function scanPins(warnings: string[], root = BPFFS_PATH): PinInfo[] {
  const out: PinInfo[] = [];
  let visited = 0;
  const walk = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return; // gone, or not readable
    }
    for (const e of entries) {
      if (++visited > MAX_PINS) return;
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < MAX_PIN_DEPTH) walk(p, depth + 1);
      } else if (e.isFile()) {
        const info = describePin(p);
        if (info) out.push(info);
      }
    }
  };
  walk(root, 0);
  if (visited > MAX_PINS) warnings.push(`more than ${MAX_PINS} entries under ${root}: pins listed in part`);
  return out;
}

function describePin(path: string): PinInfo | undefined {
  let opened;
  try {
    opened = native().openPinned(path);
  } catch (e) {
    if (isPermission(e)) throw e;
    return undefined; // not a BPF object (or removed meanwhile)
  }
  const { kind, handle } = opened;
  try {
    if (kind === 'map') {
      const i = (handle as NativeMapHandle).info();
      return { path, kind, id: i.id, name: i.name };
    }
    if (kind === 'program') {
      const i = (handle as NativeProgramHandle).info();
      return { path, kind, id: i.id, name: i.name, programId: i.id };
    }
    const i = (handle as NativeLinkHandle).info();
    return { path, kind, id: i.id, programId: i.progId, ...(i.ifindex ? { ifindex: i.ifindex } : {}) };
  } catch {
    return undefined;
  } finally {
    handle.close();
  }
}

export function isPermission(e: unknown): boolean {
  return e instanceof BpfkitError && e.code === 'ERR_PERMISSION';
}
/** The namespace or interface went away between listing and asking: not worth a warning. */
function isGone(e: unknown): boolean {
  return e instanceof BpfkitError && (e.code === 'ERR_NOT_FOUND' || e.code === 'ERR_NO_SUCH_INTERFACE');
}
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
