/**
 * `bpfkit trace`: a PacketTracer (lib/modules/tracer) from the command line. Prints each
 * packet's timeline as it finishes (namespace, interface, point, time since the first
 * event, verdict, drop reason), or one JSON object per line with --json. Stops after
 * --count packets, after --seconds, or on SIGINT/SIGTERM; every stop unloads the tracer.
 */
import { readdirSync, statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { BpfkitError } from '../core/errors.js';
import { parseCidr } from '../core/codecs.js';
import { IP_PROTOCOLS, ipProtocolNumber, ipProtocolShown } from '../core/net/protocols.js';
import { NETNS_RUN_DIR } from '../lab/common.js';
import {
  PacketTracer,
  TRACE_POINTS,
  type PacketTracerOptions,
  type TraceEvent,
  type TraceFilter,
  type TracePacket,
  type TracePoint,
} from '../modules/tracer/index.js';
import { CliError, describeError, EXIT, type ExitCode } from './exit.js';
import { plainEvent } from '../modules/tracer/view.js';
import { integerOption, listOption, nameOption } from './options.js';

export interface TraceCliOptions {
  host?: string[];
  cidr?: string[];
  port?: number;
  proto?: number;
  iface?: string;
  netns?: string;
  mark?: { value: number; mask: number };
  points?: TracePoint[];
  tunnels?: boolean;
  /** A pcap-filter expression (--pcap, or the words after the options, as tcpdump and pwru take it). */
  pcap?: string;
  json?: boolean;
  count?: number;
  seconds?: number;
}

/** An address (`--host`, no prefix) or a CIDR (`--cidr`), repeatable: at most one IPv4 and one IPv6 in all. */
function addressOption(cidr: boolean): (value: string, previous: string[] | undefined) => string[] {
  return (value, previous) => {
    if (cidr !== value.includes('/'))
      throw new InvalidArgumentError(
        cidr ? `'${value}' is not a CIDR (use --host for one address)` : `'${value}' is an address, not a CIDR (use --cidr for a prefix)`,
      );
    try {
      parseCidr(value, cidr ? '--cidr' : '--host');
    } catch (e) {
      throw new InvalidArgumentError(e instanceof BpfkitError ? e.message.replace(/^--\w+: /, '') : String(e));
    }
    return [...(previous ?? []), value];
  };
}

/** A protocol name (tcp, udp, icmp, ...) or a number 0..255. */
function protoOption(value: string): number {
  const v = value.trim().toLowerCase();
  const n = /^\d+$/.test(v) ? Number(v) : ipProtocolNumber(v);
  if (n === undefined || n > 255)
    throw new InvalidArgumentError(`unknown protocol '${value}' (names: ${Object.keys(IP_PROTOCOLS).join(', ')}; or a number 0..255)`);
  return n;
}

/** `N` or `N/MASK`, decimal or 0x-hex, each a 32-bit unsigned number. */
function markOption(value: string): { value: number; mask: number } {
  const num = (s: string | undefined): number => {
    const t = (s ?? '').trim();
    const n = /^0x[0-9a-f]{1,8}$/i.test(t) ? parseInt(t.slice(2), 16) : /^\d{1,10}$/.test(t) ? Number(t) : Number.NaN;
    if (!(n >= 0 && n <= 0xffffffff)) throw new InvalidArgumentError(`expected N or N/MASK (32-bit, decimal or 0x-hex), got '${value}'`);
    return n;
  };
  const [v, m, extra] = value.split('/');
  if (extra !== undefined) num(undefined);
  return { value: num(v), mask: m === undefined ? 0xffffffff : num(m) };
}

/** The option a tracer field came from, for error messages. */
const OPTION_OF: Record<string, string> = {
  'filter.host': '--host/--cidr',
  'filter.proto': '--proto',
  'filter.port': '--port',
  'filter.iface': '--iface',
  'filter.netns': '--netns',
  'filter.mark': '--mark',
  'filter.mark.mask': '--mark',
  'filter.tunnels': '--tunnels',
  'filter.pcap': '--pcap',
  points: '--points',
};

/** A tracer error about one of its fields, reworded to name the option (the exit code stays the error's). */
function namingOption(e: unknown): unknown {
  if (!(e instanceof BpfkitError) || !e.field || !OPTION_OF[e.field]) return e;
  const text = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
  if (e.code === 'ERR_INVALID_ARGUMENT') return new CliError(EXIT.usage, `option '${OPTION_OF[e.field]}': ${text}`, { cause: e });
  return new BpfkitError(e.code, `option '${OPTION_OF[e.field]}': ${text}`, { field: e.field, cause: e });
}

/** Namespace inodes -> names under /run/netns (and 'self' for bpfkit's own, if unnamed); re-read on a miss, at most once a second. */
class NetnsNames {
  #names = new Map<number, string>();
  #readAt = 0;
  name(ino: number): string {
    if (!ino) return '-';
    if (!this.#names.has(ino) && Date.now() - this.#readAt >= 1000) this.#read();
    return this.#names.get(ino) ?? `ns:${ino}`;
  }
  #read(): void {
    this.#readAt = Date.now();
    this.#names.clear();
    try {
      this.#names.set(statSync('/proc/self/ns/net').ino, 'self');
    } catch {
      /* no procfs: inodes stay numbers */
    }
    let entries: string[];
    try {
      entries = readdirSync(NETNS_RUN_DIR);
    } catch {
      return; // no named namespaces
    }
    for (const n of entries) {
      try {
        this.#names.set(statSync(`${NETNS_RUN_DIR}/${n}`).ino, n);
      } catch {
        /* removed meanwhile */
      }
    }
  }
}

const us = (ns: number): string => `${(ns / 1000).toFixed(3)}us`;
const endpoint = (addr: string, port: number | undefined, family: number | undefined): string =>
  port === undefined ? addr : family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;

/** The packet's headers, from its first event that has them: `udp 198.18.0.1:4000 -> 198.18.0.2:53`. */
function headerText(p: TracePacket): string {
  const e = p.events.find((x) => x.src !== undefined);
  if (!e) return 'no IP header';
  return `${e.proto ?? 'ip'} ${endpoint(e.src!, e.sport, e.family)} -> ${endpoint(e.dst!, e.dport, e.family)}`;
}

/** What an event adds beyond its point: the drop reason, a route lookup, XDP, the inner headers. */
function eventDetail(e: TraceEvent): string {
  const parts: string[] = [];
  if (e.dropReason !== undefined) parts.push(`reason=${e.dropReason}`);
  if (e.rc !== undefined && e.rc !== 0) parts.push(`rc=${e.rc}`);
  if (e.fib) parts.push(`table=${e.fib.table} ${e.fib.result}${e.fib.oif ? ` oif=${e.fib.oif}` : ''}${e.fib.gateway ? ` via ${e.fib.gateway}` : ''}`);
  if (e.xdp)
    parts.push(
      Object.entries(e.xdp)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' '),
    );
  if (e.neigh) parts.push(`${e.neigh.from} -> ${e.neigh.to}${e.neigh.lladdr ? ` ${e.neigh.lladdr}` : ''}`);
  if (e.inner)
    parts.push(
      `inner ${e.inner.tunnel} ${e.inner.proto} ${endpoint(e.inner.src, e.inner.sport, e.inner.family)} -> ${endpoint(e.inner.dst, e.inner.dport, e.inner.family)}`,
    );
  if (e.mark) parts.push(`mark=0x${e.mark.toString(16)}`);
  if (e.len) parts.push(`len=${e.len}`);
  return parts.join(' ');
}

/** One timeline as text: a header line and one indented line per event. */
export function formatPacket(p: TracePacket, ns: (ino: number) => string): string {
  const verdict = p.verdict === 'dropped' ? `dropped ${p.dropReason ?? '(no reason)'}` : p.verdict;
  const lines = [
    `packet ${p.skb} ${verdict}  ${headerText(p)}  ${p.events.length} events in ${us(p.durationNs)}, netns ${p.namespaces.map(ns).join(' > ') || '-'}`,
  ];
  const width = Math.max(...p.events.map((e) => ns(e.netns).length));
  for (const e of p.events) {
    lines.push(
      `  ${`+${us(e.dtNs)}`.padStart(13)}  ${ns(e.netns).padEnd(width)}  ${(e.ifname || `if${e.ifindex}`).padEnd(15)} ${e.point.padEnd(13)} ${eventDetail(e)}`,
    );
  }
  return lines.join('\n');
}

/** An event of no packet (XDP, neighbour, a lookup of no received packet) as one line. */
function formatLoose(e: TraceEvent, ns: (ino: number) => string): string {
  return `event ${e.point} ${ns(e.netns)} ${e.ifname || (e.ifindex ? `if${e.ifindex}` : '-')} ${eventDetail(e)}`;
}

const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

export function buildFilter(o: TraceCliOptions): TraceFilter | undefined {
  const f: TraceFilter = {};
  const hosts = [...(o.host ?? []), ...(o.cidr ?? [])];
  if (hosts.length) f.host = hosts.length === 1 ? hosts[0]! : hosts;
  if (o.proto !== undefined) f.proto = ipProtocolShown(o.proto);
  if (o.port !== undefined) f.port = o.port;
  if (o.iface !== undefined) f.iface = o.iface;
  if (o.netns !== undefined) f.netns = o.netns;
  if (o.mark !== undefined) f.mark = o.mark;
  if (o.tunnels) f.tunnels = true;
  if (o.pcap !== undefined) f.pcap = o.pcap;
  return Object.keys(f).length ? f : undefined;
}

export async function runTrace(o: TraceCliOptions): Promise<ExitCode> {
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const note = (type: string, text: string, extra: Record<string, unknown> = {}): void => {
    if (o.json) out(json({ type, time: new Date().toISOString(), message: text, ...extra }));
    else out(`bpfkit trace: ${text}`);
  };
  const filter = buildFilter(o);
  const opts: PacketTracerOptions = {};
  if (filter) opts.filter = filter;
  if (o.points) opts.points = o.points;

  // Signals are ours from before the load: a Ctrl-C while loading stops right after it.
  let onStop: (why: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (onStop = resolve));
  const onSignal = (sig: NodeJS.Signals): void => onStop(sig);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const unlisten = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  let tracer: PacketTracer;
  try {
    tracer = await PacketTracer.start(opts);
  } catch (e) {
    unlisten();
    throw namingOption(e);
  }

  const names = new NetnsNames();
  const ns = (ino: number): string => names.name(ino);
  let printed = 0;
  const full = (): boolean => o.count !== undefined && printed >= o.count;
  tracer.on('packet', (p) => {
    if (full()) return;
    printed++;
    if (o.json) out(json({ type: 'packet', ...p, namespaceNames: p.namespaces.map(ns) }));
    else out(formatPacket(p, ns));
    if (full()) onStop('count');
  });
  tracer.on('event', (e) => {
    if (e.skb || full()) return; // packet events are printed with their timeline
    if (o.json) out(json({ type: 'event', ...plainEvent(e), netnsName: ns(e.netns) }));
    else out(formatLoose(e, ns));
  });
  tracer.on('lost', (l) => note('lost', `${l.count} events lost (the ring buffer was full)`, { count: l.count }));
  tracer.on('error', (err) => process.stderr.write(`bpfkit trace: ${describeError(err)}\n`));
  for (const w of tracer.warnings) process.stderr.write(`bpfkit trace: warning: ${w}\n`);

  const what = filter
    ? Object.entries(filter)
        .map(([k, v]) => `${k} ${typeof v === 'object' ? json(v) : String(v)}`)
        .join(', ')
    : 'every packet';
  note('started', `tracing ${what} at ${tracer.points.join(', ')}`, {
    points: tracer.points,
    filter: filter ?? null,
    programs: tracer.programs.map((p) => p.id),
    warnings: tracer.warnings,
  });

  const keepAlive = setInterval(() => {}, 1 << 30);
  const timer = o.seconds === undefined ? undefined : setTimeout(() => onStop('seconds'), o.seconds * 1000);
  try {
    const why = await stopped;
    await tracer.stop(); // emits the timelines still open, then 'end'
    const s = tracer.stats();
    note('stopped', `${why}: stopped; ${printed} packets shown, ${s.matched} events matched, ${s.lost ?? 0} lost`, { reason: why, packets: printed, stats: s });
  } finally {
    clearInterval(keepAlive);
    if (timer) clearTimeout(timer);
    unlisten();
    if (!tracer.stopped) await tracer.stop();
  }
  return EXIT.ok;
}

export function registerTrace(program: Command, run: (fn: () => Promise<ExitCode>) => Promise<void>): void {
  program
    .command('trace')
    .description('follow packets through the kernel: one timeline per packet (namespace, interface, point, time, verdict, drop reason)')
    .option('--host <addr>', 'an address, as source or destination (repeatable: one IPv4 and one IPv6)', addressOption(false))
    .option('--cidr <cidr>', 'a prefix, as source or destination (counts with --host: one IPv4 and one IPv6)', addressOption(true))
    .option('--port <n>', 'a TCP/UDP/SCTP port, source or destination', integerOption(1, 65535))
    .option('--proto <proto>', `IP protocol: ${Object.keys(IP_PROTOCOLS).join(', ')} or a number`, protoOption)
    .option('--iface <name>', 'only events on this interface (looked up in --netns, else here)', nameOption())
    .option('--netns <name>', 'only events in this network namespace (a name under /run/netns)', nameOption())
    .option('--mark <n[/mask]>', 'skb->mark, optionally under a mask (decimal or 0x-hex)', markOption)
    .option(
      '--points <list>',
      `comma-separated points (default: all this kernel has): ${TRACE_POINTS.join(', ')}`,
      listOption(TRACE_POINTS) as (v: string) => TracePoint[],
    )
    .option('--tunnels', 'match --host/--proto/--port on the inner headers of VXLAN and Geneve packets too')
    .option('--pcap <expr>', "a pcap-filter expression, as tcpdump takes it (e.g. 'tcp and dst port 80'), run in the kernel")
    .argument('[expression...]', 'the pcap-filter expression may also follow the options, as with tcpdump and pwru')
    .option('--json', 'one JSON object per line')
    .option('--count <n>', 'stop after this many packets', integerOption(1, 1_000_000))
    .option('--seconds <n>', 'stop after this many seconds', integerOption(1, 86_400))
    .addHelpText(
      'after',
      `
The pcap-filter expression (--pcap, or the words after the options: not both) is compiled with
libpcap for Ethernet and matched in the kernel against each packet as tcpdump on an Ethernet
interface would see it; it combines with the other filters by AND (see docs/tracing.md).
A packet's timeline is printed when it ends: at a drop or a consume, after 1 s without a new
event, or when the trace stops. With --json every stdout line is an object with a "type":
packet, event (no packet: XDP, neighbour updates), started, lost, stopped. Warnings (what this
kernel cannot trace) and errors go to stderr.
Stops after --count packets, --seconds, or on SIGINT/SIGTERM, unloading everything (exit 0).
Exit codes: 0 stopped cleanly, 1 failure, 2 usage, 3 not permitted, 4 unsupported (no BTF, or
a requested point's tracepoint missing).`,
    )
    .action((words: string[], opts: TraceCliOptions) =>
      run(async () => {
        if (words.length > 0) {
          if (opts.pcap !== undefined)
            throw new CliError(EXIT.usage, `give the pcap-filter expression once: --pcap '${opts.pcap}' or after the options ('${words.join(' ')}'), not both`);
          opts.pcap = words.join(' ');
        }
        return runTrace(opts);
      }),
    );
}
