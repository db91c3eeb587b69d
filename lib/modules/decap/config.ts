/**
 * Decapsulator configuration: the kernel side's layout (bpf/decap.bpf.c) and the
 * validation that turns options into settings. Pure except for reading an interface's
 * MAC; nothing here touches the program's maps.
 */
import { BpfkitError, invalidArgument } from '../../core/errors.js';
import { checkInteger } from '../../core/validate.js';
import { array, be16, bytes, mac, parseIPv4, parseIPv6, struct, u32, u64, u8 } from '../../core/codecs.js';
import { DEFAULT_TUNNEL_PORTS, TUNNEL_PROTOCOLS, type DecapLimits, type DecapOptions, type DecapSettings, type TunnelProtocol } from './types.js';

// ---- kernel side layout (bpf/decap.bpf.c) -------------------------------------------------

export const MAX_PORTS = 4;
export const MAX_LOCAL = 8; // strict-mode addresses per family
export const GEN_SHIFT = 24;
export const MAX_VNI = 0xffffff;
export const F_VNI_ALLOWLIST = 1 << 0;
export const F_STRICT_DST = 1 << 1;
export const F_REWRITE_MAC = 1 << 2;
export const F_METADATA = 1 << 3;
export const F_CHECK_MAC = 1 << 4;
export const CNT_DECAP = 0;
export const CNT_VNI_OVERFLOW = 4;
export const CNT_META_FAILED = 5;
export const CNT_PASS = 8;
export const CNT_SLOTS = 32;
export const PROTO_INDEX: Record<TunnelProtocol, number> = { vxlan: 0, geneve: 1 };

export const configCodec = struct('decap_config', {
  flags: u32,
  gen: u32,
  version: u32,
  ports: array(array(be16, MAX_PORTS), 2),
  nports: array(u8, 2),
  mac: bytes(6),
  nlocal4: u8,
  nlocal6: u8,
  _pad: bytes(2),
  local4: bytes(4 * MAX_LOCAL, 4),
  local6: bytes(16 * MAX_LOCAL, 4),
});
export type ConfigValue = Parameters<typeof configCodec.encode>[0];
/** vni_slot key: proto << VNI_PROTO_SHIFT | vni. */
export const VNI_PROTO_SHIFT = 24;
export const counterCodec = struct('bpfkit_counter', { packets: u64, bytes: u64 });

export const DEFAULT_LIMITS: Required<DecapLimits> = { allowedVnis: 4096, vniStats: 4096 };
export const OPTION_KEYS = new Set(['protocols', 'ports', 'vnis', 'localAddresses', 'rewriteMac', 'metadata', 'interfaceMac']);
export const LOAD_KEYS = new Set([...OPTION_KEYS, 'limits']);
export const ATTACH_KEYS = new Set([...LOAD_KEYS, 'netns', 'mode', 'stage']);

// ---- validation (pure: nothing touches the kernel before all of it passed) ---------------

export function checkKeys(opts: object, allowed: Set<string>, what: string): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) invalidArgument(what, 'must be an object');
  for (const k of Object.keys(opts)) {
    if (!allowed.has(k)) invalidArgument(k, `unknown option (${what} takes: ${[...allowed].join(', ')})`);
  }
}

export function checkLimits(l: DecapLimits | undefined): Required<DecapLimits> {
  if (l === undefined) return { ...DEFAULT_LIMITS };
  checkKeys(l, new Set(Object.keys(DEFAULT_LIMITS)), 'limits');
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof DecapLimits)[]) {
    const v = l[k];
    if (v === undefined) continue;
    checkInteger(v, `limits.${k}`, 1, 1 << 20);
    out[k] = v;
  }
  return out;
}

export function checkPorts(v: unknown, field: string): number[] {
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
export function localAddrBytes(a: string): Buffer | null {
  return parseIPv4(a) ?? parseIPv6(a);
}

/** Applies `opts` on top of `base`, validating every field. Throws before anything changes. */
export function resolveSettings(base: DecapSettings, opts: DecapOptions, limits: Required<DecapLimits>): DecapSettings {
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

export function checkMac(v: unknown, field: string): string {
  const b = Buffer.alloc(6);
  try {
    mac.encode(v as string, b, 0);
  } catch {
    invalidArgument(field, `must be a MAC address like 02:00:00:00:00:01, got ${JSON.stringify(v)}`);
  }
  if (b[0]! & 1) invalidArgument(field, `${String(v)} is a group address, not an interface's`);
  return mac.decode(b, 0);
}

export const DEFAULT_SETTINGS: DecapSettings = {
  protocols: [...TUNNEL_PROTOCOLS],
  ports: { vxlan: [...DEFAULT_TUNNEL_PORTS.vxlan], geneve: [...DEFAULT_TUNNEL_PORTS.geneve] },
  vnis: null,
  localAddresses: null,
  rewriteMac: true,
  metadata: true,
  interfaceMac: null,
};

export function configValue(s: DecapSettings, gen: number, version: number): ConfigValue {
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
    flags,
    gen,
    version,
    ports,
    nports,
    mac: macBytes,
    nlocal4: local4.length,
    nlocal6: local6.length,
    local4: pack(local4, 4),
    local6: pack(local6, 16),
  };
}

// ---- the interface's MAC ---------------------------------------------------------------------

/** MAC of `iface` (name or index) in `ns` (a path or undefined), read with iproute2. */
export async function interfaceMac(iface: string | number, ns: string | undefined): Promise<string | null> {
  const ip = process.env.BPFKIT_IP ?? 'ip';
  const args = ['-j', 'link', 'show'];
  let file = ip;
  let argv = args;
  if (ns?.startsWith('/run/netns/') && !ns.slice('/run/netns/'.length).includes('/')) argv = ['-n', ns.slice('/run/netns/'.length), ...args];
  else if (ns) {
    file = 'nsenter';
    argv = [`--net=${ns}`, ip, ...args];
  }
  // node:child_process is loaded here, not at import: it costs ~3 ms of every cold import
  const { execFile } = process.getBuiltinModule('node:child_process');
  const out = await new Promise<string>((resolve, reject) => {
    execFile(file, argv, { timeout: 10_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err)
        reject(
          new BpfkitError('ERR_SYSTEM', `cannot read the MAC address of ${String(iface)}: ${file} ${argv.join(' ')}: ${String(stderr).trim() || err.message}`, {
            cause: err,
          }),
        );
      else resolve(stdout);
    });
  });
  const links = JSON.parse(out || '[]') as { ifindex: number; ifname: string; address?: string; link_type?: string }[];
  const l = links.find((x) => (typeof iface === 'number' ? x.ifindex === iface : x.ifname === iface));
  if (!l) throw new BpfkitError('ERR_NO_SUCH_INTERFACE', `no interface ${String(iface)}${ns ? ` in ${ns}` : ''}`, { field: 'interface' });
  return l.link_type === 'ether' && l.address ? l.address : null;
}
