/**
 * Deny events and per-rule counters around rule-set changes, with exact accounting.
 *
 * Live UDP datagrams to port 1000 (IPv4 and IPv6, two source ports) flow from a peer
 * namespace while the rule set cycles through X = [x, k], K = [k], Y = [y, k] over 1,080
 * flips, with `eventIntervalMs: 0` so every denied frame gives one event. Every frame to
 * port 1000 is denied by some rule in every set (k is the catch-all), so:
 *  - the events read equal the frames the firewall dropped, counted by the firewall
 *    (events emitted) and by an independent witness: the veth driver's XDP drop counter;
 *  - every event names the reference classifier's first match in the set of the
 *    generation it carries (x and y take each other's freed counter slots, so an event
 *    named through the slot's previous or next owner shows);
 *  - per-rule counters: read after each flip, a rule's counter lies between the events
 *    read so far naming it since it (last) became new and all such events; at the end, with
 *    no traffic, it equals them (a kept id keeps counting, a new id starts at zero, no
 *    packet counted under a rule that did not match it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, type AclEvent, type AclRule } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { refFirstMatch, type RefHeader, type RefRule } from './acl.helpers.js';

const CYCLES = 360; // three flips each
const PORT = 1000;
const SPORTS = [20000, 40000]; // + 1 for IPv6 (an IPv6 socket on :: holds the IPv4 port too)
const FULL: Omit<RefRule, 'spLo' | 'spHi'> = { sLo: 0, sHi: 0xffffffff, dLo: 0, dHi: 0xffffffff, dpLo: PORT, dpHi: PORT, proto: 17 };

interface RuleSet {
  name: string;
  ids: string[];
  ref: RefRule[];
  rules: AclRule[];
}

/** A deny rule for UDP to PORT from source ports [lo, hi], in both forms (no address selector: both families). */
function rule(id: string, lo: number, hi: number): { id: string; ref: RefRule; acl: AclRule } {
  return {
    id,
    ref: { ...FULL, spLo: lo, spHi: hi },
    acl: { id, action: 'deny', proto: 'udp', dstPort: PORT, srcPort: lo === 0 && hi === 65535 ? undefined : [lo, hi] },
  };
}
function set(name: string, rs: ReturnType<typeof rule>[]): RuleSet {
  return {
    name,
    ids: rs.map((r) => r.id),
    ref: rs.map((r) => r.ref),
    rules: rs.map((r) => Object.fromEntries(Object.entries(r.acl).filter(([, v]) => v !== undefined)) as AclRule),
  };
}
const k = rule('k', 0, 65535);
const X = set('X', [rule('x', 20000, 20001), k]);
const K = set('K', [k]);
const Y = set('Y', [rule('y', 30000, 65535), k]);

/** IPv4 address, or the low 32 bits of an IPv6 one (the lab's IPv6 addresses are fd00::<IPv4>). */
function addr32(a: string): number {
  if (!a.includes(':')) return a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  const w = a.split(':');
  const lo = parseInt(w[w.length - 1] || '0', 16);
  const hi = parseInt(w[w.length - 2] || '0', 16);
  return hi * 65536 + lo;
}
const header = (e: AclEvent): RefHeader => ({ src: addr32(e.src), dst: addr32(e.dst), sport: e.srcPort ?? 0, dport: e.dstPort ?? 0, proto: e.proto ?? -1 });

let lab: Lab;
let client: LabHost;
let server: LabHost;
let ifname: string;
let fw: AclFirewall;

/** XDP_DROP verdicts the veth driver counted on the firewall's interface. */
async function xdpDrops(): Promise<number> {
  const out = (await server.exec(['ethtool', '-S', ifname])).stdout;
  let n = 0;
  let found = false;
  for (const m of out.matchAll(/rx_queue_\d+_xdp_drops:\s*(\d+)/g)) {
    n += Number(m[1]);
    found = true;
  }
  if (!found) throw new Error(`no XDP drop counters in ethtool -S ${ifname}`);
  return n;
}

beforeAll(async () => {
  lab = await Lab.create({ name: 'acl-evflip' });
  client = await lab.host('client');
  server = await lab.host('server');
  const l = await lab.link(client, server, { aAddrs: ['198.18.0.1/24', 'fd00::c612:1/64'], bAddrs: ['198.18.0.2/24', 'fd00::c612:2/64'] });
  ifname = l.b.ifname;
  fw = await AclFirewall.attach(ifname, { netns: server.netns, maxRules: 16, eventIntervalMs: 0, ringBytes: 8 << 20, rules: X.rules });
});
afterAll(async () => {
  fw?.close();
  await lab?.close();
});

describe('events and counters around rule-set changes', () => {
  it(`${3 * CYCLES} flips X, K, Y under live IPv4 and IPv6 UDP: every event names its generation's first match`, async () => {
    const sets = new Map<number, RuleSet>([[fw.generation, X]]);
    const events: AclEvent[] = [];
    fw.on('deny', (e) => events.push(e));
    // nothing reached the firewall yet except neighbour discovery (allowed)
    const drops0 = await xdpDrops();
    const emitted0 = (await fw.stats()).events.emitted;
    let flipping = true;
    let sent = 0;
    // one sender per family, alternating source ports
    const live = Promise.all(
      ['198.18.0.2', 'fd00::c612:2'].map(async (dst, f) => {
        for (let i = 0; flipping && i < 10_000; i++) {
          const r = await client.sendUdp(dst, PORT, { count: 1500, sport: SPORTS[i % 2]! + f });
          sent += r.sent;
        }
      }),
    );
    live.catch(() => undefined); // awaited below
    // counters read after each flip: [id, generation the id became new, counter, events naming it read so far]
    const samples: { id: string; since: number; count: number; seen: number }[] = [];
    const since = new Map<string, number>([
      ['x', fw.generation],
      ['k', fw.generation],
    ]);
    const order = [K, Y, X];
    // start flipping once traffic arrives
    for (let i = 0; i < 200 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    for (let c = 0; c < CYCLES; c++) {
      for (const s of order) {
        const prev = sets.get(fw.generation)!;
        await fw.setRules(s.rules);
        sets.set(fw.generation, s);
        for (const id of s.ids) if (!prev.ids.includes(id)) since.set(id, fw.generation);
        for (const id of s.ids) {
          const count = fw.ruleStats(id)!.packets;
          const from = since.get(id)!;
          const seen = events.reduce((n, e) => n + (e.ruleId === id && e.generation >= from ? 1 : 0), 0);
          if (c % 8 === 0 || c === CYCLES - 1) samples.push({ id, since: from, count, seen });
        }
      }
    }
    flipping = false;
    await live;
    // wait until every event written was read (bounded)
    let st = await fw.stats();
    let drops = (await xdpDrops()) - drops0;
    for (let i = 0; i < 200 && (events.length !== st.events.emitted - emitted0 || drops !== events.length); i++) {
      await new Promise((r) => setTimeout(r, 25));
      st = await fw.stats();
      drops = (await xdpDrops()) - drops0;
    }
    const emitted = st.events.emitted - emitted0;
    expect(st.events.lost).toBe(0);
    expect(sent).toBeGreaterThan(1000);
    // exact accounting: one event per dropped frame
    expect(emitted).toBe(drops);
    expect(events.length).toBe(drops);
    expect(new Set(events.map((e) => e.family))).toEqual(new Set([4, 6]));
    // every event names the first match in the set of its own generation
    const wrong = new Map<string, number>();
    for (const e of events) {
      const s = sets.get(e.generation);
      const want = s ? (s.ids[refFirstMatch(s.ref, header(e))] ?? null) : `(no set for generation ${e.generation})`;
      if (e.ruleId !== want || e.action !== 'deny') {
        const key = `${s?.name ?? '?'}: ${want} named ${e.ruleId}`;
        wrong.set(key, (wrong.get(key) ?? 0) + 1);
      }
    }
    expect(Object.fromEntries(wrong)).toEqual({});
    // counters: between the events read so far and all events of the rule since it became new
    const named = (id: string, from: number, to = Infinity) =>
      events.reduce((n, e) => n + (e.ruleId === id && e.generation >= from && e.generation <= to ? 1 : 0), 0);
    const stretchEnd = (id: string, from: number) => {
      let g = from;
      while (sets.get(g + 1)?.ids.includes(id)) g++;
      return g;
    };
    const bad = samples.filter((s) => s.count < s.seen || s.count > named(s.id, s.since, stretchEnd(s.id, s.since)));
    expect(bad.slice(0, 5)).toEqual([]);
    // at rest: the rules in force count exactly their events since they became new
    const final = sets.get(fw.generation)!;
    for (const id of final.ids) expect(fw.ruleStats(id)!.packets, id).toBe(named(id, since.get(id)!));
    expect(since.get('k')).toBe(Math.min(...sets.keys())); // k was kept throughout
    console.log(`acl events-flip: ${3 * CYCLES} flips, ${sent} datagrams sent, ${drops} dropped, ${events.length} events, ${samples.length} counter samples`);
  }, 120_000);
});
