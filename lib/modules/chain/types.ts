/** ServiceChainer's public types: services, rules, options and statistics. */
import type { IpProtocolName } from '../../core/net/protocols.js';
import type { NetnsRef } from '../../core/net/netns.js';
import type { StagePosition } from '../pipeline.js';

/** Where a service's (or upstream's) marked traffic is routed: one next hop. */
export interface ChainNextHop {
  /** Gateway address, IPv4 or IPv6 (the route's family follows it). */
  via?: string;
  /** Output interface (name or index); alone, the route is on-link in both families. */
  dev?: string | number;
  /** Multipath weight 1-256 when there are several next hops of one family. */
  weight?: number;
  /** Treat the gateway as on-link even if no route says it is reachable (`ip route ... onlink`). */
  onlink?: boolean;
}

/** A path the chainer routes marked traffic onto: its mark, its table, its next hops. */
export interface ChainPath {
  /** fwmark the XDP stage writes (1..0xffffffff), unique among services and upstream. */
  mark: number;
  /** Routing table (1..0xfffffff0, not main/local/default), unique, owned by the chainer. */
  table: number;
  /** Next hops of the default route(s) in `table` (IPv4 and/or IPv6). */
  nexthops: readonly ChainNextHop[];
}

/** A service traffic must visit (firewall, IDS ...), which hands it back unmodified. */
export interface ChainService extends ChainPath {
  /** 1-64 of [A-Za-z0-9_.:-]; not 'upstream'. */
  name: string;
}

/**
 * A classification rule: every field given must match (absent fields match anything);
 * the first matching rule by `priority` (lower first; ties in list order) decides.
 */
export interface ChainRule {
  /** A name for stats() (default: the rule's index). */
  id?: string;
  /** Lower first; default 1000 (ties: list order). 0..0xffffff. */
  priority?: number;
  /** Ingress interface (name or index, in the chainer's namespace). */
  iface?: string | number;
  /** Source MAC, e.g. '02:00:00:00:00:01'. */
  srcMac?: string;
  /** VLAN id (1..4094) of the outer 802.1Q/802.1ad tag. */
  vlan?: number;
  /** VXLAN/Geneve VNI from the Decapsulator's metadata (0..0xffffff). */
  vni?: number;
  /** Source prefix, IPv4 or IPv6 ('198.18.0.0/24', '2001:db8::/32'). */
  src?: string;
  /** Destination prefix, same family as `src`. */
  dst?: string;
  /** IP protocol: a name from the core's table (lib/core/net/protocols.ts) or a number 0..255. */
  proto?: IpProtocolName | number;
  /** Destination port (needs proto tcp, udp or sctp). */
  dstPort?: number;
  /** A service's name, or 'upstream'. */
  action: string;
}

/** Capacities fixed when the program is loaded. */
export interface ChainLimits {
  /** Rules in a set (default 4096; the kernel keeps two generations). */
  maxRules?: number;
}

/** What the chainer does: services, the upstream path, and the rules that pick between them. */
export interface ChainConfig {
  /** Services traffic can be sent through (their names are rule actions). */
  services: readonly ChainService[];
  /** Where traffic goes when a rule says 'upstream' (typically: back from a service). */
  upstream: ChainPath;
  /** Classification rules, first match by priority. */
  rules: readonly ChainRule[];
}

/** Options of {@link ServiceChainer.attach}: the configuration plus where and how to attach. */
export interface ChainAttachOptions extends ChainConfig {
  /** First `ip rule` priority of the chainer's policy routes (default 1000): services get
   * base, base + 1, ... in list order, upstream the one after. */
  rulePriority?: number;
  /** Capacities (fixed at load). */
  limits?: ChainLimits;
  /** Namespace of the interface(s) (not for a pipeline stage: the pipeline's). */
  netns?: NetnsRef;
  /** XDP mode when attached to an interface (default native). */
  mode?: 'native' | 'generic' | 'auto';
  /** As a pipeline stage: its name (default 'chain') and place (default last). */
  stage?: { name?: string } & StagePosition;
  /**
   * 'stack' (default): XDP marks, the stack routes on the mark. 'xdp': XDP also routes the
   * packets it marks - bpf_fib_lookup with the mark (the same ip rules and tables), MAC
   * rewrite, TTL/hop limit - 1, redirect to one of `egress` - and hands everything else
   * (no neighbour yet, local, fragmentation needed ...) to the stack, marked. Linux >= 6.10.
   */
  forward?: 'stack' | 'xdp';
  /** With forward 'xdp': the interfaces XDP may redirect to (each must take XDP frames:
   * a veth whose peer runs an XDP program or GRO, a NIC with ndo_xdp_xmit). Others: stack. */
  egress?: readonly (string | number)[];
  /**
   * A directory on a BPF filesystem: the programs, maps and links are pinned there, so the
   * chainer (and its policy routes) outlives this process; close() then only releases the
   * handles and detach() removes everything. If the directory already holds a chainer, it
   * is adopted (see ServiceChainer.adopt) and the configuration given here applied to it.
   */
  pin?: string;
}

/** ServiceChainer.adopt's options. */
export interface ChainAdoptOptions {
  /** Namespace of the chainer's interfaces (rule `iface` names are resolved there). */
  netns?: NetnsRef;
}

/** Options of {@link ServiceChainer.load}: the configuration, without attaching. */
export interface ChainLoadOptions {
  /** Services traffic can be sent through. */
  services: readonly ChainService[];
  /** Where 'upstream' traffic goes. */
  upstream: ChainPath;
  /** Classification rules. */
  rules: readonly ChainRule[];
  /** Capacities (fixed at load). */
  limits?: ChainLimits;
  /** Namespace that rule `iface` names are resolved in. */
  netns?: NetnsRef;
}

/** What {@link ServiceChainer.update} changes: only the fields given. */
export interface ChainUpdate {
  /** The new rule set (replaces the whole set). */
  rules?: readonly ChainRule[];
  /** The new services (replace the whole list). */
  services?: readonly ChainService[];
}

/** A packet and byte counter, summed over CPUs. */
export interface ChainCounter {
  /** Packets. */
  packets: bigint;
  /** Bytes. */
  bytes: bigint;
}

/** Counters of the XDP stage (see {@link ServiceChainer.stats}). */
export interface ChainStats {
  /** Per rule of the set in force (counters start at zero with each update). */
  rules: ({ index: number; id: string; action: string } & ChainCounter)[];
  /** Per service, packets marked for it. */
  services: ({ name: string } & ChainCounter)[];
  /** Packets marked for upstream. */
  upstream: ChainCounter;
  /** Packets no rule matched (passed unmarked). */
  unclassified: ChainCounter;
  /** Matched, but the metadata could not be written (no headroom / driver support). */
  metadataFailed: ChainCounter;
  /** Every packet the stage saw. */
  packets: ChainCounter;
  /** With forward 'xdp': the marked packets XDP routed itself, and why the others went to the stack. */
  forward?: ChainForwardStats;
}

/** With `forward: 'xdp'`: what the XDP forwarder did with marked packets (see {@link ChainStats.forward}). */
export interface ChainForwardStats {
  /** Routed in XDP: MACs rewritten, TTL/hop limit - 1, redirected. */
  redirected: ChainCounter;
  /** Handed to the stack (marked), by reason: bpf_fib_lookup's answer, or ours. */
  fallback: {
    /** The next hop's neighbour entry is not (yet) valid: the stack resolves it. */
    noNeighbour: ChainCounter;
    /** Not forwarded: local delivery, broadcast, multicast ... */
    notForwarded: ChainCounter;
    /** Forwarding is off on the ingress interface (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding). */
    forwardingDisabled: ChainCounter;
    /** Larger than the egress MTU. */
    fragNeeded: ChainCounter;
    /** The route is a blackhole route: the stack drops the packet silently. */
    blackhole: ChainCounter;
    /** The route is unreachable: the stack answers with ICMP unreachable. */
    unreachable: ChainCounter;
    /** The route is prohibit: the stack answers with ICMP administratively prohibited. */
    prohibit: ChainCounter;
    /** The route needs a lightweight tunnel encapsulation. */
    unsupportedLwt: ChainCounter;
    /** No source address to use on the egress interface (IPv6): the stack decides. */
    noSourceAddress: ChainCounter;
    /** TTL / hop limit 1 or 0: the stack answers with ICMP time exceeded. */
    ttlExpiring: ChainCounter;
    /** The FIB's egress interface is not one of `egress`. */
    notEgress: ChainCounter;
    /** Not plain Ethernet with IPv4/IPv6 (e.g. VLAN-tagged). */
    unsupported: ChainCounter;
    /** bpf_fib_lookup failed (e.g. a kernel without BPF_FIB_LOOKUP_MARK). */
    error: ChainCounter;
  };
}

/** Where the chainer stands (see {@link ServiceChainer.status}). */
export interface ChainStatus {
  /** Where the XDP stage runs. */
  attached: 'interface' | 'pipeline' | 'none';
  /** Whether tc_chain_mark (TC ingress) copies the mark into skb->mark on the chainer's interfaces. */
  marksSkb: boolean;
  /** Policy routes (ip rule + table) in place. */
  routes: number;
  /** Rules in force. */
  rules: number;
  /** Distinct rule shapes (sets of fields matched) the XDP program searches, one hash lookup each. */
  shapes: number;
  /** Who routes the marked packets. */
  forward: 'stack' | 'xdp';
  /** The pin directory, when pinned. */
  pin: string | undefined;
}
