/** veth pairs between the hosts of a lab: {@link Lab.link}. */
import { BpfkitError } from '../core/errors.js';
import { isV6, MAC_RE, validateAddr, wrapIpError } from './common.js';
import type { LabHost } from './host.js';
import type { Lab } from './lab.js';
import { ipBin, run } from './run.js';

/** Options for {@link Lab.link}. */
export interface LinkOptions {
  /** Interface name on host a (default: the lowest free `eth<N>` of that host). Max 15 chars. */
  aName?: string;
  /** Interface name on host b (default: the lowest free `eth<N>` of that host). */
  bName?: string;
  /** Addresses for the a end in CIDR form, e.g. `['198.18.0.1/24', 'fd00::1/64']`. */
  aAddrs?: string[];
  /** Addresses for the b end. */
  bAddrs?: string[];
  /** MTU for both ends. */
  mtu?: number;
  /**
   * GRO on both ends: `true` turns it on, `false` off, undefined leaves the kernel default
   * (off for veth). What it changes for XDP (observed on 6.18):
   * - frames XDP_REDIRECTed into a veth (ndo_xdp_xmit) are only delivered to its peer when
   *   the peer runs NAPI, i.e. has an XDP program attached or GRO on; otherwise they are
   *   silently lost. `gro: true` is enough for that.
   * - frames bounced with XDP_TX from a veth reach the peer only if the peer has an XDP
   *   program of its own (XDP_PASS will do); with GRO alone they sit in the peer's ring
   *   until other traffic happens to wake its NAPI.
   * GRO also merges TCP segments on receive, which changes packet counts seen after it.
   */
  gro?: boolean;
  /**
   * TX checksum offload on both ends. Default **false** (the kernel default for veth is
   * on): with offload, packets sent from sockets in the lab leave with only a partial
   * (pseudo-header) L4 checksum that the kernel completes later. XDP programs would then
   * see checksums no wire would carry, and a frame XDP_TX'd / XDP_REDIRECTed onward
   * arrives with a bad checksum and is dropped by the receiver's UDP/TCP stack
   * (UdpInCsumErrors). Off, every packet carries a complete checksum, like traffic from a
   * real wire. Turning it off also turns off TSO, so TCP is segmented before the veth.
   */
  txChecksum?: boolean;
  /** Fixed MAC for the a end (default random). */
  aMac?: string;
  /** Fixed MAC for the b end (default random). */
  bMac?: string;
  /** How long to wait for both ends to report operstate UP. Default 5000 ms. */
  upTimeoutMs?: number;
}

/** One end of a veth pair. `ifindex` and `mac` are read back from the kernel. */
export interface LabEnd {
  /** The host this end is in. */
  host: LabHost;
  /** Interface name inside the host's namespace. */
  ifname: string;
  /** Interface index inside the host's namespace. */
  ifindex: number;
  /** The interface's MAC address. */
  mac: string;
  /** Addresses given to it (CIDR notation). */
  addrs: string[];
}

/** A veth pair between two hosts (`a` and `b` may be the same host). */
export interface LabLink {
  /** The end in the first host given to {@link Lab.link}. */
  a: LabEnd;
  /** The end in the second host. */
  b: LabEnd;
}

/** {@link Lab.link}: the pair is created directly inside the two namespaces. */
export async function linkHosts(lab: Lab, a: LabHost, b: LabHost, opts: LinkOptions): Promise<LabLink> {
  lab.assertOpen('link');
  for (const h of [a, b]) {
    if (h.lab !== lab) throw new BpfkitError('ERR_INVALID_ARGUMENT', `link: host '${h.name}' belongs to another lab`);
  }
  if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535)) {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `link: invalid mtu ${opts.mtu}`, { field: 'mtu' });
  }
  // names are reserved synchronously so concurrent link() calls do not collide
  const aName = a.reserveIfname(opts.aName, 'aName');
  let bName: string;
  try {
    bName = b.reserveIfname(opts.bName, 'bName');
  } catch (err) {
    a.releaseIfname(aName);
    throw err;
  }
  const aAddrs = [...(opts.aAddrs ?? [])];
  const bAddrs = [...(opts.bAddrs ?? [])];
  try {
    for (const [field, list] of [
      ['aAddrs', aAddrs],
      ['bAddrs', bAddrs],
    ] as const) {
      for (const ad of list) validateAddr(field, ad);
    }
    for (const [field, mac] of [
      ['aMac', opts.aMac],
      ['bMac', opts.bMac],
    ] as const) {
      if (mac !== undefined && !MAC_RE.test(mac)) {
        throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: invalid MAC '${mac}'`, { field });
      }
    }
  } catch (err) {
    a.releaseIfname(aName);
    b.releaseIfname(bName);
    throw err;
  }
  try {
    const args = ['-n', a.netns, 'link', 'add', aName];
    if (opts.aMac) args.push('address', opts.aMac);
    args.push('type', 'veth', 'peer', 'name', bName);
    if (opts.bMac) args.push('address', opts.bMac);
    if (b !== a) args.push('netns', b.netns);
    await run(ipBin(), args, { timeoutMs: 10_000 }).catch((err: unknown) => {
      throw wrapIpError(err, `link ${a.name}:${aName} <-> ${b.name}:${bName}`);
    });
    const setup = async (h: LabHost, ifname: string, addrs: string[]): Promise<void> => {
      const cmds: string[] = [];
      if (opts.mtu !== undefined) cmds.push(`link set dev ${ifname} mtu ${opts.mtu}`);
      for (const ad of addrs) cmds.push(`addr add ${ad} dev ${ifname}${isV6(ad) ? ' nodad' : ''}`);
      cmds.push(`link set dev ${ifname} up`);
      await h.setFeatures(ifname, { txChecksum: opts.txChecksum ?? false });
      await h.batch(cmds);
    };
    await Promise.all([setup(a, aName, aAddrs), setup(b, bName, bAddrs)]);
    const timeoutMs = opts.upTimeoutMs ?? 5_000;
    const [ia, ib] = await Promise.all([a.waitLinkUp(aName, timeoutMs), b.waitLinkUp(bName, timeoutMs)]);
    // GRO only once both ends are up: the decap benchmark saw a veth whose GRO was
    // switched on while down drop XDP_TX'd frames from its peer until an XDP program had
    // been attached once (not reproduced by test/core/xdp.test.ts; setting it late is safe).
    if (opts.gro !== undefined) await Promise.all([a.setFeatures(aName, { gro: opts.gro }), b.setFeatures(bName, { gro: opts.gro })]);
    return {
      a: { host: a, ifname: aName, ifindex: ia.ifindex, mac: ia.address ?? '', addrs: aAddrs },
      b: { host: b, ifname: bName, ifindex: ib.ifindex, mac: ib.address ?? '', addrs: bAddrs },
    };
  } catch (err) {
    // best effort: remove a half-made pair (deleting one end deletes both)
    await run(ipBin(), ['-n', a.netns, 'link', 'del', aName], { check: false, timeoutMs: 5_000 }).catch(() => undefined);
    a.releaseIfname(aName);
    b.releaseIfname(bName);
    throw err;
  }
}
