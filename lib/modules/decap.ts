/**
 * Decapsulator: strips VXLAN (RFC 7348) and Geneve (RFC 8926) outer headers at XDP
 * (bpf/decap.bpf.c), so the inner frame climbs the stack once, as if it had arrived on
 * the interface, instead of twice (outer packet up to the tunnel device, inner packet
 * injected again).
 *
 * ```ts
 * const decap = await Decapsulator.attach('eth0', { protocols: ['vxlan', 'geneve'], vnis: [100, 200] });
 * await decap.update({ vnis: [100, 200, 300] });   // atomic
 * console.log(decap.stats().vnis);
 * decap.close();
 * ```
 *
 * Atomic updates: the core's DoubleBuffer (lib/core/swap.ts, bpf/include/bpfkit_swap.h).
 * The program reads its `struct decap_config` through the swap slot `config[0]`, which
 * points at one of two copies (config_a / config_b). An update writes the idle copy and
 * the next generation of the VNI allowlist (its keys carry the copy's index), then flips
 * the slot; the flip resolves after the kernel's grace period, so afterwards the old
 * generation is unreachable and is deleted. A packet sees the whole old or the whole new
 * settings.
 */
import { execFile } from 'node:child_process';
import { BpfkitError, invalidArgument } from '../core/errors.js';
import { array, be16, bytes, mac, parseIPv4, parseIPv6, struct, u32, u64, u8 } from '../core/codecs.js';
import type { BpfMap } from '../core/map.js';
import { bpfObjectPath, native } from '../core/native.js';
import { checkInterface, netnsPath, type NetnsRef } from '../core/netns.js';
import { BpfObject } from '../core/object.js';
import { DoubleBuffer } from '../core/swap.js';
import { XdpPipeline, type StagePosition } from './pipeline.js';
import type { TestRunOptions, TestRunResult, XdpLink, XdpMode, XdpProgram } from '../core/program.js';

export type TunnelProtocol = 'vxlan' | 'geneve';
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

export interface DecapLoadOptions extends DecapOptions {
  limits?: DecapLimits;
}

/** As a pipeline stage: its name in the pipeline (default 'decap') and position. */
export interface DecapStageOptions extends StagePosition {
  name?: string;
}

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
  protocols: TunnelProtocol[];
  ports: Record<TunnelProtocol, number[]>;
  vnis: number[] | null;
  localAddresses: string[] | null;
  rewriteMac: boolean;
  metadata: boolean;
  interfaceMac: string | null;
}

export interface DecapCounter {
  packets: bigint;
  bytes: bigint;
}

export interface DecapVniStats extends DecapCounter {
  protocol: TunnelProtocol;
  vni: number;
}

/**
 * Counters summed over CPUs. Decapsulated bytes are inner-frame bytes (what the stack
 * receives); passed bytes are whole frames as received.
 */
export interface DecapStats {
  decapsulated: DecapCounter;
  protocols: Record<TunnelProtocol, DecapCounter & { ipv4: DecapCounter; ipv6: DecapCounter }>;
  /** Per (protocol, VNI), sorted. Bounded by limits.vniStats: see vniOverflow. */
  vnis: DecapVniStats[];
  /** Decapsulated packets of VNIs that found the per-VNI table full (still decapsulated). */
  vniOverflow: DecapCounter;
  /** Decapsulated packets whose metadata could not be written (driver without metadata support). */
  metadataFailed: DecapCounter;
  /** Tunnel packets passed to the stack unchanged, by reason. */
  passed: Record<DecapPassReason, DecapCounter>;
  passedTotal: DecapCounter;
}

// ---- kernel side layout (bpf/decap.bpf.c) -------------------------------------------------

const MAX_PORTS = 4;
const MAX_LOCAL = 8; // strict-mode addresses per family
const GEN_SHIFT = 24;
const MAX_VNI = 0xffffff;
const F_VNI_ALLOWLIST = 1 << 0;
const F_STRICT_DST = 1 << 1;
const F_REWRITE_MAC = 1 << 2;
const F_METADATA = 1 << 3;
const F_CHECK_MAC = 1 << 4;
const CNT_DECAP = 0;
const CNT_VNI_OVERFLOW = 4;
const CNT_META_FAILED = 5;
const CNT_PASS = 8;
const CNT_SLOTS = 32;
const PROTO_INDEX: Record<TunnelProtocol, number> = { vxlan: 0, geneve: 1 };

const configCodec = struct('decap_config', {
  flags: u32,
  gen: u32,
  ports: array(array(be16, MAX_PORTS), 2),
  nports: array(u8, 2),
  mac: bytes(6),
  nlocal4: u8,
  nlocal6: u8,
  _pad: bytes(2),
  local4: bytes(4 * MAX_LOCAL, 4),
  local6: bytes(16 * MAX_LOCAL, 4),
});
type ConfigValue = Parameters<typeof configCodec.encode>[0];
const vniKey = struct('decap_vni_key', { vni: u32, proto: u32 });
const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });

const DEFAULT_LIMITS: Required<DecapLimits> = { allowedVnis: 4096, vniStats: 4096 };
const OPTION_KEYS = new Set(['protocols', 'ports', 'vnis', 'localAddresses', 'rewriteMac', 'metadata', 'interfaceMac']);
const LOAD_KEYS = new Set([...OPTION_KEYS, 'limits']);
const ATTACH_KEYS = new Set([...LOAD_KEYS, 'netns', 'mode', 'stage']);

// ---- validation (pure: nothing touches the kernel before all of it passed) ---------------

function checkKeys(opts: object, allowed: Set<string>, what: string): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) invalidArgument(what, 'must be an object');
  for (const k of Object.keys(opts)) {
    if (!allowed.has(k)) invalidArgument(k, `unknown option (${what} takes: ${[...allowed].join(', ')})`);
  }
}

function checkLimits(l: DecapLimits | undefined): Required<DecapLimits> {
  if (l === undefined) return { ...DEFAULT_LIMITS };
  checkKeys(l, new Set(Object.keys(DEFAULT_LIMITS)), 'limits');
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof DecapLimits)[]) {
    const v = l[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1 || v > 1 << 20) invalidArgument(`limits.${k}`, `must be an integer in 1..${1 << 20}, got ${String(v)}`);
    out[k] = v;
  }
  return out;
}

function checkPorts(v: unknown, field: string): number[] {
  const list = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_PORTS) {
    invalidArgument(field, `must be a port or a list of 1 to ${MAX_PORTS} ports, got ${JSON.stringify(v)}`);
  }
  list.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) invalidArgument(`${field}[${i}]`, `must be a UDP port 1..65535, got ${String(p)}`);
  });
  const uniq = [...new Set(list as number[])];
  if (uniq.length !== list.length) invalidArgument(field, `lists a port twice: ${list.join(', ')}`);
  return uniq;
}

/** An address as the program compares it: 4 bytes (IPv4) or 16 (IPv6), network order. */
function localAddrBytes(a: string): Buffer | null {
  return parseIPv4(a) ?? parseIPv6(a);
}

/** Applies `opts` on top of `base`, validating every field. Throws before anything changes. */
function resolveSettings(base: DecapSettings, opts: DecapOptions, limits: Required<DecapLimits>): DecapSettings {
  const s: DecapSettings = { ...base, ports: { ...base.ports } };
  if (opts.protocols !== undefined) {
    const p = opts.protocols;
    if (!Array.isArray(p) || p.length === 0) invalidArgument('protocols', `must be a non-empty list of 'vxlan' and/or 'geneve', got ${JSON.stringify(p)}`);
    p.forEach((x, i) => {
      if (!TUNNEL_PROTOCOLS.includes(x)) invalidArgument(`protocols[${i}]`, `must be 'vxlan' or 'geneve', got ${JSON.stringify(x)}`);
    });
    if (new Set(p).size !== p.length) invalidArgument('protocols', `lists a protocol twice: ${p.join(', ')}`);
    s.protocols = TUNNEL_PROTOCOLS.filter((x) => p.includes(x));
  }
  if (opts.ports !== undefined) {
    if (typeof opts.ports !== 'object' || opts.ports === null) invalidArgument('ports', 'must be an object like { vxlan: [4789, 8472], geneve: 6081 }');
    checkKeys(opts.ports, new Set(TUNNEL_PROTOCOLS), 'ports');
    for (const proto of TUNNEL_PROTOCOLS) {
      if (opts.ports[proto] !== undefined) s.ports[proto] = checkPorts(opts.ports[proto], `ports.${proto}`);
    }
  }
  const clash = s.ports.vxlan.find((p) => s.ports.geneve.includes(p));
  if (clash !== undefined) invalidArgument('ports', `port ${clash} is configured for both VXLAN and Geneve`);
  if (opts.vnis !== undefined) {
    const v = opts.vnis;
    if (v === null) s.vnis = null;
    else {
      if (!Array.isArray(v)) invalidArgument('vnis', `must be a list of VNIs or null (every VNI), got ${JSON.stringify(v)}`);
      if (v.length === 0) invalidArgument('vnis', 'an empty allowlist would decapsulate nothing; pass null to allow every VNI');
      v.forEach((x, i) => {
        if (!Number.isInteger(x) || x < 0 || x > MAX_VNI) invalidArgument(`vnis[${i}]`, `must be a VNI in 0..${MAX_VNI}, got ${String(x)}`);
      });
      const uniq = [...new Set(v)].sort((a, b) => a - b);
      if (uniq.length > limits.allowedVnis) invalidArgument('vnis', `${uniq.length} VNIs exceed limits.allowedVnis (${limits.allowedVnis}), fixed at load`);
      s.vnis = uniq;
    }
  }
  if (opts.localAddresses !== undefined) {
    const v = opts.localAddresses;
    if (v === null) s.localAddresses = null;
    else {
      if (!Array.isArray(v)) invalidArgument('localAddresses', `must be a list of IP addresses or null (any destination), got ${JSON.stringify(v)}`);
      if (v.length === 0) invalidArgument('localAddresses', 'an empty list would decapsulate nothing; pass null to turn strict mode off');
      const seen = new Map<string, string>();
      v.forEach((a, i) => {
        const b = typeof a === 'string' ? localAddrBytes(a) : null;
        if (!b) invalidArgument(`localAddresses[${i}]`, `must be an IPv4 or IPv6 address, got ${JSON.stringify(a)}`);
        seen.set(b.toString('hex'), a);
      });
      for (const fam of [4, 16]) {
        const n = [...seen.keys()].filter((k) => k.length === fam * 2).length;
        if (n > MAX_LOCAL) invalidArgument('localAddresses', `${n} IPv${fam === 4 ? 4 : 6} addresses: at most ${MAX_LOCAL} per family`);
      }
      s.localAddresses = [...seen.values()];
    }
  }
  for (const k of ['rewriteMac', 'metadata'] as const) {
    const v = opts[k];
    if (v !== undefined) {
      if (typeof v !== 'boolean') invalidArgument(k, `must be true or false, got ${JSON.stringify(v)}`);
      s[k] = v;
    }
  }
  if (opts.interfaceMac !== undefined) s.interfaceMac = checkMac(opts.interfaceMac, 'interfaceMac');
  return s;
}

function checkMac(v: unknown, field: string): string {
  const b = Buffer.alloc(6);
  try {
    mac.encode(v as string, b, 0);
  } catch {
    invalidArgument(field, `must be a MAC address like 02:00:00:00:00:01, got ${JSON.stringify(v)}`);
  }
  if (b[0]! & 1) invalidArgument(field, `${String(v)} is a group address, not an interface's`);
  return mac.decode(b, 0);
}

const DEFAULT_SETTINGS: DecapSettings = {
  protocols: [...TUNNEL_PROTOCOLS],
  ports: { vxlan: [...DEFAULT_TUNNEL_PORTS.vxlan], geneve: [...DEFAULT_TUNNEL_PORTS.geneve] },
  vnis: null,
  localAddresses: null,
  rewriteMac: true,
  metadata: true,
  interfaceMac: null,
};

function configValue(s: DecapSettings, gen: number): ConfigValue {
  const ports = [0, 0].map(() => new Array<number>(MAX_PORTS).fill(0));
  const nports = [0, 0];
  for (const proto of s.protocols) {
    const i = PROTO_INDEX[proto];
    s.ports[proto].forEach((p, j) => (ports[i]![j] = p));
    nports[i] = s.ports[proto].length;
  }
  const macBytes = Buffer.alloc(6);
  if (s.interfaceMac) mac.encode(s.interfaceMac, macBytes, 0);
  const local = (s.localAddresses ?? []).map((a) => localAddrBytes(a)!);
  const local4 = local.filter((b) => b.length === 4);
  const local6 = local.filter((b) => b.length === 16);
  const pack = (list: Buffer[], size: number) => Buffer.concat([...list, Buffer.alloc(size * (MAX_LOCAL - list.length))]);
  let flags = 0;
  if (s.vnis) flags |= F_VNI_ALLOWLIST;
  if (s.localAddresses) flags |= F_STRICT_DST;
  if (s.rewriteMac) flags |= F_REWRITE_MAC;
  if (s.metadata) flags |= F_METADATA;
  if (s.interfaceMac) flags |= F_CHECK_MAC;
  return {
    flags, gen, ports, nports, mac: macBytes,
    nlocal4: local4.length, nlocal6: local6.length, local4: pack(local4, 4), local6: pack(local6, 16),
  };
}

// ---- the interface's MAC ---------------------------------------------------------------------

/** MAC of `iface` (name or index) in `ns` (a path or undefined), read with iproute2. */
async function interfaceMac(iface: string | number, ns: string | undefined): Promise<string | null> {
  const ip = process.env.BPFKIT_IP ?? 'ip';
  const args = ['-j', 'link', 'show'];
  let file = ip;
  let argv = args;
  if (ns?.startsWith('/run/netns/') && !ns.slice('/run/netns/'.length).includes('/')) argv = ['-n', ns.slice('/run/netns/'.length), ...args];
  else if (ns) {
    file = 'nsenter';
    argv = [`--net=${ns}`, ip, ...args];
  }
  const out = await new Promise<string>((resolve, reject) => {
    execFile(file, argv, { timeout: 10_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new BpfkitError('ERR_SYSTEM', `cannot read the MAC address of ${String(iface)}: ${file} ${argv.join(' ')}: ${String(stderr).trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
  const links = JSON.parse(out || '[]') as { ifindex: number; ifname: string; address?: string; link_type?: string }[];
  const l = links.find((x) => (typeof iface === 'number' ? x.ifindex === iface : x.ifname === iface));
  if (!l) throw new BpfkitError('ERR_NO_SUCH_INTERFACE', `no interface ${String(iface)}${ns ? ` in ${ns}` : ''}`, { field: 'interface' });
  return l.link_type === 'ether' && l.address ? l.address : null;
}

// ---- the Decapsulator --------------------------------------------------------------------

interface Parts {
  obj: BpfObject;
  prog: XdpProgram;
  outer: BpfMap<number, number>;
  inner: [BpfMap<number, ConfigValue>, BpfMap<number, ConfigValue>];
  /** config[0] -> config_a | config_b; the copy's index is also the VNI allowlist generation. */
  swap: DoubleBuffer<BpfMap<number, ConfigValue>>;
  vniAllow: BpfMap<number, number>;
  vniStats: BpfMap<{ vni: number; proto: number }, DecapCounter[], { vni: number; proto: number }, DecapCounter[] | DecapCounter>;
  counters: BpfMap<number, DecapCounter[], number, DecapCounter[] | DecapCounter>;
}

const zero = (): DecapCounter => ({ packets: 0n, bytes: 0n });
const sum = (cs: readonly DecapCounter[]): DecapCounter =>
  cs.reduce((a, c) => ({ packets: a.packets + c.packets, bytes: a.bytes + c.bytes }), zero());

export class Decapsulator {
  #p: Parts | undefined;
  #link: XdpLink | undefined;
  #settings: DecapSettings;
  readonly limits: Readonly<Required<DecapLimits>>;
  #iface: { iface: string | number; ns: string | undefined; macGiven: boolean } | undefined;
  #stage: { pipeline: XdpPipeline; name: string } | undefined;

  private constructor(p: Parts, settings: DecapSettings, limits: Required<DecapLimits>) {
    this.#p = p;
    this.#settings = settings;
    this.limits = limits;
  }

  /**
   * Loads the program and applies `opts` without attaching it anywhere: for
   * BPF_PROG_TEST_RUN (testRun) or for chaining the program yourself (`program`).
   * Without `interfaceMac`, `rewriteMac` must be false and the outer MAC is not checked.
   */
  static async load(opts: DecapLoadOptions = {}): Promise<Decapsulator> {
    checkKeys(opts, LOAD_KEYS, 'Decapsulator.load');
    const limits = checkLimits(opts.limits);
    const settings = resolveSettings(DEFAULT_SETTINGS, stripLimits(opts), limits);
    if (settings.rewriteMac && !settings.interfaceMac) {
      invalidArgument('interfaceMac', 'rewriteMac needs the receiving interface MAC: give interfaceMac, set rewriteMac: false, or use attach()');
    }
    return Decapsulator.#create(settings, limits);
  }

  /**
   * Loads the program, configures it and attaches it to `iface` (XDP, native mode by
   * default). The interface's MAC is read from the kernel unless `interfaceMac` is given.
   *
   * Given an attached {@link XdpPipeline} instead of an interface, the program becomes a
   * stage of it (named `stage.name`, default 'decap', placed by `stage.before/after/index`,
   * default last) on the pipeline's interface: decapsulated and untouched packets alike
   * continue with the next stage.
   */
  static async attach(target: string | number | XdpPipeline, opts: DecapAttachOptions = {}): Promise<Decapsulator> {
    checkKeys(opts, ATTACH_KEYS, 'Decapsulator.attach');
    const pipeline = target instanceof XdpPipeline ? target : undefined;
    if (pipeline) {
      if (pipeline.closed) invalidArgument('pipeline', 'the XdpPipeline is closed');
      if (pipeline.ifindex === undefined) invalidArgument('pipeline', 'the XdpPipeline is not attached to an interface (use XdpPipeline.attach)');
      for (const k of ['netns', 'mode'] as const) if (opts[k] !== undefined) invalidArgument(k, `a pipeline stage runs on the pipeline's interface: no '${k}'`);
    } else {
      checkInterface(target as string | number);
      if (opts.stage !== undefined) invalidArgument('stage', 'only for a pipeline stage: attach to an XdpPipeline');
    }
    const iface = pipeline ? pipeline.ifindex! : (target as string | number);
    const limits = checkLimits(opts.limits);
    const { netns, mode, stage, ...rest } = opts;
    if (mode !== undefined && !['native', 'generic', 'auto'].includes(mode)) invalidArgument('mode', `must be 'native', 'generic' or 'auto', got '${String(mode)}'`);
    const stageName = stage?.name ?? 'decap';
    let settings = resolveSettings(DEFAULT_SETTINGS, stripLimits(rest), limits);
    const ns = pipeline ? pipeline.netns : netnsPath(netns);
    native().ifIndex(iface, ns); // ERR_NO_SUCH_INTERFACE before anything is loaded
    if (!settings.interfaceMac) {
      const m = await interfaceMac(iface, ns);
      if (!m && settings.rewriteMac) {
        throw new BpfkitError('ERR_UNSUPPORTED', `${String(iface)} has no Ethernet address to rewrite inner frames to: give interfaceMac or set rewriteMac: false`, { field: 'rewriteMac' });
      }
      settings = { ...settings, interfaceMac: m };
    }
    const d = await Decapsulator.#create(settings, limits, pipeline);
    try {
      if (pipeline) {
        const { name: _n, ...where } = stage ?? {};
        await pipeline.add({ name: stageName, program: d.program }, where);
        d.#stage = { pipeline, name: stageName };
      } else {
        d.#link = d.program.attach(iface, { mode: mode ?? 'native', ...(netns !== undefined ? { netns } : {}) });
      }
    } catch (e) {
      d.close();
      throw e;
    }
    d.#iface = { iface, ns, macGiven: opts.interfaceMac !== undefined };
    return d;
  }

  static async #create(settings: DecapSettings, limits: Required<DecapLimits>, pipeline?: XdpPipeline): Promise<Decapsulator> {
    const st = pipeline?.stageOptions();
    const obj = await BpfObject.load(bpfObjectPath('decap'), {
      name: 'decap',
      maps: {
        vni_allow: { maxEntries: 2 * limits.allowedVnis },
        vni_stats: { maxEntries: limits.vniStats },
        ...st?.maps,
      },
      ...(st ? { globals: st.globals } : {}),
    });
    const opened: { close(): void }[] = [];
    const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
    try {
      const outer = keep(obj.map('config', { key: u32, value: u32 }));
      const inner: Parts['inner'] = [keep(obj.map('config_a', { key: u32, value: configCodec })), keep(obj.map('config_b', { key: u32, value: configCodec }))];
      const parts: Parts = {
        obj,
        prog: keep(obj.xdpProgram('xdp_decap')),
        outer,
        inner,
        // the object's static initialiser points config[0] at config_a (copy 0)
        swap: new DoubleBuffer(outer, inner, 0),
        vniAllow: keep(obj.map('vni_allow', { key: u32, value: u8 })),
        vniStats: keep(obj.perCpuMap('vni_stats', { key: vniKey, value: counterCodec })),
        counters: keep(obj.perCpuMap('counters', { key: u32, value: counterCodec })),
      };
      const d = new Decapsulator(parts, DEFAULT_SETTINGS, limits);
      // The object's static initialiser points config[0] at config_a (generation 0), which
      // is all zeros (no ports): write it before anything can see traffic.
      await d.#writeGeneration(parts, 0, settings);
      parts.inner[0].set(0, configValue(settings, 0));
      d.#settings = settings;
      return d;
    } catch (e) {
      for (const o of opened) o.close();
      obj.close();
      throw e;
    }
  }

  /** The loaded XDP program (for testRun, pinning, or tail calls from a pipeline). */
  get program(): XdpProgram {
    return this.#parts().prog;
  }

  /** The XDP attachment, when made by attach(). */
  get link(): XdpLink | undefined {
    return this.#link;
  }

  /** The settings in force (a copy). */
  get settings(): DecapSettings {
    const s = this.#settings;
    return {
      ...s,
      protocols: [...s.protocols],
      ports: { vxlan: [...s.ports.vxlan], geneve: [...s.ports.geneve] },
      vnis: s.vnis && [...s.vnis],
      localAddresses: s.localAddresses && [...s.localAddresses],
    };
  }

  /**
   * Changes the fields given (others keep their values) atomically: every packet is
   * handled by the whole old or the whole new settings. Everything is validated first;
   * a rejected update changes nothing. When attached, the interface MAC is read again
   * (unless `interfaceMac` was given). Concurrent calls apply in call order.
   */
  update(opts: DecapOptions): Promise<void> {
    return this.#parts().swap.serial(() => this.#update(opts));
  }

  async #update(opts: DecapOptions): Promise<void> {
    const p = this.#parts();
    checkKeys(opts, OPTION_KEYS, 'update');
    let next = resolveSettings(this.#settings, opts, this.limits);
    if (this.#iface && opts.interfaceMac === undefined && !this.#iface.macGiven) {
      next = { ...next, interfaceMac: await interfaceMac(this.#iface.iface, this.#iface.ns) };
    }
    if (next.rewriteMac && !next.interfaceMac) invalidArgument('interfaceMac', 'rewriteMac needs the receiving interface MAC');
    const gen = p.swap.idleIndex;
    try {
      await this.#writeGeneration(p, gen, next);
      p.swap.idle.set(0, configValue(next, gen));
      // Returns after the grace period, so no program still runs with the old config
      // when the old generation is deleted below.
      await p.swap.flip();
    } catch (e) {
      await this.#clearGeneration(p, gen).catch(() => undefined);
      throw e;
    }
    const old = p.swap.idleIndex;
    this.#settings = next;
    if (this.#iface && opts.interfaceMac !== undefined) this.#iface.macGiven = true;
    // Best effort: leftovers of the old generation are also cleared before its next use.
    await this.#clearGeneration(p, old).catch(() => undefined);
  }

  /** Writes generation `gen` of the VNI allowlist (cleared first). */
  async #writeGeneration(p: Parts, gen: number, s: DecapSettings): Promise<void> {
    await this.#clearGeneration(p, gen);
    if (s.vnis) await p.vniAllow.setBatch(s.vnis.map((v) => [(gen << GEN_SHIFT) | v, 1] as const));
  }

  async #clearGeneration(p: Parts, gen: number): Promise<void> {
    const vnis = [...p.vniAllow.keys()].filter((k) => k >>> GEN_SHIFT === gen);
    if (vnis.length) await p.vniAllow.deleteBatch(vnis);
  }

  /** Counters, summed over CPUs (see DecapStats). */
  stats(): DecapStats {
    const p = this.#parts();
    const slots: DecapCounter[] = [];
    for (let i = 0; i < CNT_SLOTS; i++) slots.push(sum(p.counters.get(i) ?? []));
    const proto = (name: TunnelProtocol) => {
      const base = CNT_DECAP + PROTO_INDEX[name] * 2;
      const ipv4 = slots[base]!;
      const ipv6 = slots[base + 1]!;
      return { ...sum([ipv4, ipv6]), ipv4, ipv6 };
    };
    const protocols = { vxlan: proto('vxlan'), geneve: proto('geneve') };
    const passed = {} as Record<DecapPassReason, DecapCounter>;
    DECAP_PASS_REASONS.forEach((r, i) => (passed[r] = slots[CNT_PASS + i]!));
    const vnis: DecapVniStats[] = [];
    for (const [k, v] of p.vniStats.entries()) {
      vnis.push({ protocol: TUNNEL_PROTOCOLS[k.proto] ?? 'vxlan', vni: k.vni, ...sum(v) });
    }
    vnis.sort((a, b) => PROTO_INDEX[a.protocol] - PROTO_INDEX[b.protocol] || a.vni - b.vni);
    return {
      decapsulated: sum([protocols.vxlan, protocols.geneve]),
      protocols,
      vnis,
      vniOverflow: slots[CNT_VNI_OVERFLOW]!,
      metadataFailed: slots[CNT_META_FAILED]!,
      passed,
      passedTotal: sum(Object.values(passed)),
    };
  }

  /** Runs the program on one frame with BPF_PROG_TEST_RUN (counters count it too). */
  testRun(packet: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    return this.#parts().prog.testRun(packet, opts);
  }

  /** The pipeline this decapsulator is a stage of, and its stage name. */
  get stage(): { pipeline: XdpPipeline; name: string } | undefined {
    return this.#stage;
  }

  /**
   * Detaches (unless the link was pinned) and releases the program and maps. Idempotent.
   * A pipeline stage is removed from its pipeline by a change queued there (the stage
   * keeps running until it completes; `await pipeline.remove(name)` first to order it).
   */
  close(): void {
    this.#link?.close();
    this.#link = undefined;
    const st = this.#stage;
    this.#stage = undefined;
    if (st && !st.pipeline.closed) st.pipeline.remove(st.name).catch(() => undefined);
    const p = this.#p;
    this.#p = undefined;
    if (!p) return;
    for (const m of [p.outer, ...p.inner, p.vniAllow, p.vniStats, p.counters, p.prog]) m.close();
    p.obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #parts(): Parts {
    if (!this.#p) throw new BpfkitError('ERR_CLOSED', 'Decapsulator is closed');
    return this.#p;
  }
}

function stripLimits<T extends { limits?: unknown }>(o: T): Omit<T, 'limits'> {
  const { limits: _l, ...rest } = o;
  return rest;
}
