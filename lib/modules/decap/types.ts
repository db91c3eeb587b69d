/** Decapsulator: options, settings, limits and statistics types, and protocol constants. */
import type { XdpMode } from '../../core/programs/program.js';
import type { NetnsRef } from '../../core/net/netns.js';
import type { StagePosition } from '../pipeline.js';

/** A UDP tunnel protocol the Decapsulator strips: VXLAN (RFC 7348) or Geneve (RFC 8926). */
export type TunnelProtocol = 'vxlan' | 'geneve';
/** Every {@link TunnelProtocol}. */
export const TUNNEL_PROTOCOLS: readonly TunnelProtocol[] = ['vxlan', 'geneve'];
/** IANA ports: VXLAN 4789, Geneve 6081. Linux's pre-IANA VXLAN port 8472 only when configured. */
export const DEFAULT_TUNNEL_PORTS: Readonly<Record<TunnelProtocol, readonly number[]>> = { vxlan: [4789], geneve: [6081] };

/**
 * Why a tunnel packet (outer UDP to a configured port) went to the stack unchanged, in the
 * order the program checks. Same order as `enum decap_pass_reason` in bpf/decap.bpf.c.
 */
export const DECAP_PASS_REASONS = [
  'otherHost', // outer destination MAC is unicast and not the interface's
  'notLocal', // strict mode: outer destination address is not one of localAddresses
  'fragment', // outer IPv4 MF set, or an IPv6 fragment header
  'ipOptions', // outer IPv4 options (IHL > 5)
  'ipv6ExtHeaders', // outer IPv6 extension headers
  'ipChecksum', // outer IPv4 header checksum wrong
  'malformed', // IP/UDP length fields inconsistent
  'truncated', // frame or UDP payload ends before the headers it announces
  'vxlanFlags', // VXLAN I flag clear
  'geneveVersion', // Geneve version != 0
  'geneveOam', // Geneve O bit: a control packet, never a tenant's
  'geneveCritical', // Geneve C bit: critical options we do not understand
  'geneveProtocol', // Geneve protocol type != 0x6558 (Ethernet)
  'innerTooShort', // fewer than 14 bytes (an Ethernet header) after the tunnel header
  'vniNotAllowed', // allowlist in force and the VNI is not on it
] as const;
/** One of {@link DECAP_PASS_REASONS}. */
export type DecapPassReason = (typeof DECAP_PASS_REASONS)[number];

/** What the Decapsulator does. Every field is optional; update() changes only the fields given. */
export interface DecapOptions {
  /** Protocols to decapsulate. Default both. */
  protocols?: TunnelProtocol[];
  /** UDP destination ports per protocol, 1 to 4 each. Default VXLAN 4789, Geneve 6081. */
  ports?: { vxlan?: number | number[]; geneve?: number | number[] };
  /** VNI allowlist (0..2^24-1, applies to both protocols). null or absent: every VNI. */
  vnis?: number[] | null;
  /**
   * Strict destination mode: decapsulate only packets whose outer destination address is
   * one of these local tunnel addresses (up to 8 IPv4 and 8 IPv6). null or absent: any
   * destination.
   */
  localAddresses?: string[] | null;
  /**
   * Rewrite the inner destination MAC (when unicast) to the receiving interface's MAC, so
   * the stack accepts the frame as addressed to this host. Default true.
   */
  rewriteMac?: boolean;
  /** Write struct bpfkit_xdp_meta (magic, vni, mark, flags) for later stages. Default true. */
  metadata?: boolean;
  /**
   * The receiving interface's MAC. attach() reads it from the interface (again at every
   * update); give it to override, or with load() where there is no interface.
   */
  interfaceMac?: string;
}

/** Map capacities, fixed when the program is loaded. */
export interface DecapLimits {
  /** Most VNIs in the allowlist. Default 4096. */
  allowedVnis?: number;
  /** (VNI, protocol) pairs with their own counters; others count in vniOverflow. Default 4096. */
  vniStats?: number;
}

/** Options of {@link Decapsulator.load}: what it does, and its capacities. */
export interface DecapLoadOptions extends DecapOptions {
  /** Map capacities (fixed at load). */
  limits?: DecapLimits;
}

/** As a pipeline stage: its name in the pipeline (default 'decap') and position. */
export interface DecapStageOptions extends StagePosition {
  /** The stage's name (default 'decap'). */
  name?: string;
}

/** Options of {@link Decapsulator.attach}. */
export interface DecapAttachOptions extends DecapLoadOptions {
  /** When attaching to an XdpPipeline: the stage's name and position. */
  stage?: DecapStageOptions;
  /** Network namespace of the interface (name under /run/netns or a path). */
  netns?: NetnsRef;
  /** XDP mode: 'native' (default), 'generic' or 'auto'. */
  mode?: XdpMode;
}

/** The settings in force. */
export interface DecapSettings {
  /** Protocols decapsulated. */
  protocols: TunnelProtocol[];
  /** UDP destination ports per protocol. */
  ports: Record<TunnelProtocol, number[]>;
  /** VNI allowlist; null: every VNI. */
  vnis: number[] | null;
  /** Strict mode's local tunnel addresses; null: any destination. */
  localAddresses: string[] | null;
  /** Whether unicast inner destination MACs are rewritten to the interface's. */
  rewriteMac: boolean;
  /** Whether struct bpfkit_xdp_meta is written for later stages. */
  metadata: boolean;
  /** The MAC written into inner frames; null when unknown (load() without one, rewriteMac off). */
  interfaceMac: string | null;
}

/** A packet and byte counter, summed over CPUs. */
export interface DecapCounter {
  /** Packets. */
  packets: bigint;
  /** Bytes. */
  bytes: bigint;
}

/** Counters of one (protocol, VNI) pair: inner packets and bytes handed to the stack. */
export interface DecapVniStats extends DecapCounter {
  /** The tunnel protocol. */
  protocol: TunnelProtocol;
  /** The VNI. */
  vni: number;
}

/**
 * Counters summed over CPUs. Decapsulated bytes are inner-frame bytes (what the stack
 * receives); passed bytes are whole frames as received.
 */
export interface DecapStats {
  /** Inner packets and bytes handed to the stack. */
  decapsulated: DecapCounter;
  /** The same per protocol, split by outer family (`ipv4`, `ipv6`). */
  protocols: Record<TunnelProtocol, DecapCounter & { ipv4: DecapCounter; ipv6: DecapCounter }>;
  /** Per (protocol, VNI), sorted. Bounded by limits.vniStats: see vniOverflow. */
  vnis: DecapVniStats[];
  /** Decapsulated packets of VNIs that found the per-VNI table full (still decapsulated). */
  vniOverflow: DecapCounter;
  /** Decapsulated packets whose metadata could not be written (driver without metadata support). */
  metadataFailed: DecapCounter;
  /** Tunnel packets passed to the stack unchanged, by reason. */
  passed: Record<DecapPassReason, DecapCounter>;
  /** All tunnel packets passed unchanged. */
  passedTotal: DecapCounter;
}
