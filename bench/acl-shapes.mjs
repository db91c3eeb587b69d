// Rule sets of shapes ClassBench does not have, for the ACL compiler's tests and bench:
// random "messy but ordinary" policies (prefixes /0../32 and IPv6, tcp/udp/any, single
// ports or ranges up to 20,000 wide), narrow random sets, and adversarial families meant
// to defeat decision-tree cuts. Deterministic for a seed. Like the ClassBench sets, the
// IPv4 prefixes are of anywhere (they are matched against in test runs, never routed);
// IPv6 ones are in 2001:db8::/32 from /32 on.

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));

function v4(addr, len) {
  const a = len === 0 ? 0 : (addr >>> (32 - len)) << (32 - len);
  const u = a >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}/${len}`;
}

function v6(r, len) {
  // from /32 on 2001:0db8 then random words; shorter prefixes of anywhere; host part cleared
  const w = len >= 32 ? [0x2001, 0xdb8] : [];
  while (w.length < 8) w.push(int(r, 0, 0xffff));
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, len - 16 * i));
    w[i] = keep === 0 ? 0 : (w[i] >> (16 - keep)) << (16 - keep);
  }
  return `${w.map((x) => x.toString(16)).join(':')}/${len}`;
}

function ports(r, maxWidth) {
  if (r() < 0.4) return undefined;
  if (r() < 0.5) return int(r, 0, 65535);
  const w = int(r, 1, maxWidth);
  const lo = int(r, 0, 65535 - w);
  return [lo, lo + w];
}

/**
 * `n` random rules (seed `seed`): each address absent (15%) or a prefix of uniform length
 * /0../32 (IPv6 rules, a fraction `v6` of them: /0../128), proto tcp/udp/any, ports absent,
 * single or a range up to `maxPortWidth` wide, actions mixed.
 */
export function randomRules(n, seed, { v6: v6Share = 0.2, maxPortWidth = 20000 } = {}) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const rule = { id: `r${i}`, action: r() < 0.5 ? 'deny' : r() < 0.8 ? 'allow' : 'log' };
    const six = r() < v6Share;
    for (const f of ['src', 'dst']) {
      if (r() < 0.15) continue;
      rule[f] = six ? v6(r, int(r, 0, 128)) : v4(int(r, 0, 0xffffffff), int(r, 0, 32));
    }
    if (six && !rule.src && !rule.dst) rule.src = v6(r, int(r, 16, 128));
    const p = r();
    if (p < 0.4) rule.proto = 'tcp';
    else if (p < 0.8) rule.proto = 'udp';
    if (rule.proto) {
      const sp = ports(r, maxPortWidth);
      const dp = ports(r, maxPortWidth);
      if (sp !== undefined) rule.srcPort = sp;
      if (dp !== undefined) rule.dstPort = dp;
    }
    out.push(rule);
  }
  return out;
}

/** `n` narrow random rules: a /30 source, one protocol, a destination port range of up to 500. */
export function narrowRules(n, seed) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const lo = int(r, 0, 65000);
    out.push({
      id: `n${i}`,
      action: r() < 0.5 ? 'deny' : 'allow',
      src: v4(int(r, 0, 0xffffffff), 30),
      proto: r() < 0.5 ? 'tcp' : 'udp',
      dstPort: [lo, lo + int(r, 0, 500)],
    });
  }
  return out;
}

/**
 * Adversarial families, each meant to defeat decision-tree cuts while a packet still
 * matches only a few rules (beyond that no classifier with a bounded walk can exist):
 * - 'wide': every rule wide in every field a tree cuts (prefixes /4../12 of anywhere,
 *   port ranges 2,000 to 20,000 wide starting anywhere, proto tcp, udp or any);
 * - 'crossing': port ranges that all cross one another (range i starts at 13 i mod
 *   32,768 and is 32,768 wide, in both ports, in opposite directions), so a cut of a
 *   port anywhere splits most of them, over prefixes /12../20;
 * - 'nested': clusters of 64 rules whose prefixes are nested around one point (/8../32
 *   of one address in both fields), port ranges 1,000 to 5,000 wide.
 */
export function adversarialRules(kind, n, seed) {
  const r = rng(seed);
  const out = [];
  let point = 0;
  for (let i = 0; i < n; i++) {
    const rule = { id: `${kind[0]}${i}`, action: r() < 0.5 ? 'deny' : 'allow' };
    if (kind === 'wide') {
      rule.src = v4(int(r, 0, 0xffffffff), int(r, 4, 12));
      rule.dst = v4(int(r, 0, 0xffffffff), int(r, 4, 12));
      const p = r();
      if (p < 0.8) {
        rule.proto = p < 0.4 ? 'tcp' : 'udp';
        for (const f of ['srcPort', 'dstPort']) {
          const w = int(r, 2000, 20000);
          const lo = int(r, 0, 65535 - w);
          rule[f] = [lo, lo + w];
        }
      }
    } else if (kind === 'crossing') {
      rule.src = v4(int(r, 0, 0xffffffff), int(r, 12, 20));
      rule.dst = v4(int(r, 0, 0xffffffff), int(r, 12, 20));
      rule.proto = 'udp';
      const s = (13 * i) % 32768;
      rule.srcPort = [s, s + 32767];
      rule.dstPort = [32768 - s, 65535 - s];
    } else if (kind === 'nested') {
      if (i % 64 === 0) point = int(r, 0, 0xffffffff);
      rule.src = v4(point, int(r, 8, 32));
      rule.dst = v4(point ^ 0x5a5a5a5a, int(r, 8, 32));
      rule.proto = r() < 0.5 ? 'tcp' : 'udp';
      const w = int(r, 1000, 5000);
      const lo = int(r, 0, 65535 - w);
      rule.dstPort = [lo, lo + w];
    } else {
      throw new Error(`unknown adversarial family ${kind}`);
    }
    out.push(rule);
  }
  return out;
}

/**
 * `n` IPv4 headers `{ src, dst, proto, srcPort, dstPort }` (addresses as unsigned
 * numbers) for benchmarks: each a point inside a random IPv4 rule of `rules`.
 */
export function pointsV4(rules, n, seed) {
  const r = rng(seed);
  const v4rules = rules.filter((x) => ![x.src, x.dst].some((a) => typeof a === 'string' && a.includes(':')));
  const inside = (c) => {
    if (c === undefined) return int(r, 0, 0xffffffff);
    const [a, l] = c.split('/');
    const len = l === undefined ? 32 : Number(l);
    const net = a.split('.').reduce((x, y) => x * 256 + Number(y), 0);
    return len === 32 ? net : net + int(r, 0, 2 ** (32 - len) - 1);
  };
  const port = (p) => (typeof p === 'number' ? p : Array.isArray(p) ? int(r, p[0], p[1]) : int(r, 0, 65535));
  return Array.from({ length: n }, () => {
    const x = v4rules[int(r, 0, v4rules.length - 1)];
    const proto = x.proto === 'tcp' ? 6 : x.proto === 'udp' ? 17 : r() < 0.5 ? 6 : 17;
    return { src: inside(x.src), dst: inside(x.dst), proto, srcPort: port(x.srcPort), dstPort: port(x.dstPort) };
  });
}
