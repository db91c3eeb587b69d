/**
 * `bpfkit firewall`: an AclFirewall on one interface, its rules from a YAML or JSON file,
 * its deny/log events printed live. SIGHUP reloads the file (one atomic swap; a bad file
 * keeps the rules in force and says why); SIGINT/SIGTERM remove the firewall, or leave it
 * running and pinned with --keep.
 */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ipProtocolName } from '../core/net/protocols.js';
import { AclFirewall, type AclEvent, type AclFirewallOptions } from '../modules/acl/index.js';
import { BPFFS_PATH } from '../lab/bpffs.js';
import { describeError, EXIT, type ExitCode } from './exit.js';
import { integerOption, nameOption } from './options.js';
import { loadRuleFile } from './rules-file.js';

export interface FirewallCliOptions {
  iface: string;
  rules: string;
  netns?: string;
  default: 'allow' | 'deny';
  mode: 'native' | 'generic' | 'auto';
  keep?: boolean;
  pin?: string;
  json?: boolean;
  eventInterval?: number;
  maxRules?: number;
}

/** Where --keep pins a firewall unless --pin says otherwise. */
export function defaultPin(iface: string, netns: string | undefined): string {
  return join(BPFFS_PATH, 'bpfkit', `firewall-${netns ? `${netns}-` : ''}${iface}`);
}

function protoText(p: number | null): string {
  if (p === null) return 'ip';
  return ipProtocolName(p) ?? `proto ${p}`;
}

/** One event as a text line. */
export function formatEvent(e: AclEvent, ifname: string): string {
  const port = (addr: string, p: number | null): string => (p === null ? addr : e.family === 6 ? `[${addr}]:${p}` : `${addr}:${p}`);
  const icmp = e.icmpType !== null ? ` type ${e.icmpType} code ${e.icmpCode}` : '';
  return (
    `${e.time.toISOString()} ${e.action.padEnd(4)} rule=${e.ruleId ?? '(default)'} ${protoText(e.proto)} ` +
    `${port(e.src, e.srcPort)} -> ${port(e.dst, e.dstPort)}${icmp} dev=${ifname} len=${e.length}` +
    `${e.fragment ? ' fragment' : ''}${e.suppressed ? ` (+${e.suppressed} suppressed)` : ''}`
  );
}

export async function runFirewall(o: FirewallCliOptions): Promise<ExitCode> {
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const note = (type: string, text: string, extra: Record<string, unknown> = {}): void => {
    if (o.json) out(JSON.stringify({ type, time: new Date().toISOString(), message: text, ...extra }));
    else out(`bpfkit firewall: ${text}`);
  };
  // everything is read and validated before the kernel is touched
  const rules = await loadRuleFile(o.rules);
  const pin = o.pin ?? (o.keep ? defaultPin(o.iface, o.netns) : undefined);
  const opts: AclFirewallOptions = { rules, defaultAction: o.default, mode: o.mode };
  if (o.netns) opts.netns = o.netns;
  if (pin) opts.pin = pin;
  if (o.eventInterval !== undefined) opts.eventIntervalMs = o.eventInterval;
  if (o.maxRules !== undefined) opts.maxRules = o.maxRules;

  // Signals are ours from before the attach: a Ctrl-C while attaching stops right after it
  // (cleaning up), rather than killing the process with pins half made.
  let hup = (): void => {};
  const onHup = (): void => hup();
  let onStop: (sig: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<NodeJS.Signals>((resolve) => (onStop = resolve));
  process.on('SIGHUP', onHup);
  process.once('SIGINT', onStop);
  process.once('SIGTERM', onStop);
  const unlisten = (): void => {
    process.off('SIGHUP', onHup);
    process.off('SIGINT', onStop);
    process.off('SIGTERM', onStop);
  };
  let fw: AclFirewall;
  try {
    fw = await AclFirewall.attach(o.iface, opts);
  } catch (e) {
    unlisten();
    throw e;
  }

  fw.on('event', (e) => {
    if (o.json) out(JSON.stringify({ type: e.action, ...e, protocol: e.proto === null ? null : (ipProtocolName(e.proto) ?? null), ifname: o.iface }));
    else out(formatEvent(e, o.iface));
  });
  fw.on('lost', (l) => note('lost', `${l.count} events lost (the ring buffer was full)`, { count: l.count }));
  fw.on('error', (err) => process.stderr.write(`bpfkit firewall: ${describeError(err)}\n`));

  const where = `${o.iface}${o.netns ? ` (netns ${o.netns})` : ''}`;
  note(
    fw.adopted ? 'adopted' : 'attached',
    `${fw.adopted ? 'adopted the firewall pinned at ' + pin + ' on' : 'attached to'} ${where}: ${fw.rules().length} rules, default ${fw.defaultAction}${pin ? `, pinned at ${pin}` : ''}`,
    {
      iface: o.iface,
      netns: o.netns ?? null,
      ifindex: fw.ifindexes[0],
      rules: fw.rules().length,
      defaultAction: fw.defaultAction,
      generation: fw.generation,
      pin: pin ?? null,
      program: fw.program.info.id,
    },
  );

  // SIGHUP: reload, one at a time; a signal during a reload asks for one more after it
  let reloading: Promise<void> | undefined;
  let again = false;
  const reload = async (): Promise<void> => {
    do {
      again = false;
      try {
        const next = await loadRuleFile(o.rules);
        const info = await fw.setRules(next);
        note('reloaded', `reloaded ${o.rules}: ${info.rules} rules, generation ${fw.generation}`, { rules: info.rules, generation: fw.generation });
      } catch (e) {
        const why = describeError(e);
        process.stderr.write(`bpfkit firewall: ${o.rules}: kept the previous rules: ${why}\n`);
        if (o.json) out(JSON.stringify({ type: 'reload-failed', time: new Date().toISOString(), message: why, generation: fw.generation }));
      }
    } while (again);
  };
  hup = (): void => {
    if (reloading) {
      again = true;
      return;
    }
    reloading = reload().finally(() => (reloading = undefined));
  };

  // SIGINT / SIGTERM: stop. Until then the ring buffer (and this timer) keep the process alive.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    const sig = await stopped;
    hup = () => {};
    await reloading;
    if (o.keep) {
      fw.close();
      note('kept', `${sig}: left running on ${where}, pinned at ${pin} (--pin ${pin} adopts it again; rm -r ${pin} removes it)`, { signal: sig, pin });
    } else {
      if (fw.pin) fw.detach();
      else fw.close();
      note('removed', `${sig}: removed from ${where}`, { signal: sig });
    }
  } finally {
    clearInterval(keepAlive);
    unlisten();
    if (!fw.closed) fw.close();
  }
  return EXIT.ok;
}

export function registerFirewall(program: Command, run: (fn: () => Promise<ExitCode>) => Promise<void>): void {
  program
    .command('firewall')
    .description('attach an ACL firewall to an interface with rules from a file; print deny/log events; SIGHUP reloads the file')
    .requiredOption('--iface <name>', 'interface to protect')
    .requiredOption('--rules <file>', 'rule file: YAML (.yaml/.yml) or JSON (.json), a list of rules or { rules: [...] }')
    .option('--netns <name>', 'network namespace of the interface (a name under /run/netns)', nameOption())
    .addOption(new Option('--default <action>', 'verdict for packets no rule matches').choices(['allow', 'deny']).default('allow'))
    .addOption(new Option('--mode <mode>', 'XDP mode').choices(['native', 'generic', 'auto']).default('native'))
    .option('--keep', 'on SIGINT/SIGTERM leave the firewall running, pinned (at --pin or under /sys/fs/bpf/bpfkit/)')
    .option('--pin <dir>', 'pin directory on bpffs: pin the firewall there, or adopt the one already pinned there')
    .option('--event-interval <ms>', 'at most one event per flow and rule per this many ms (0: every packet; default 1000)', integerOption(0, 3_600_000))
    .option('--max-rules <n>', 'rule capacity (default 10000; sizes the kernel maps)', integerOption(1, 200_000))
    .option('--json', 'print events and notices as JSON lines')
    .addHelpText(
      'after',
      `
Events go to stdout, one line each (with --json, one JSON object with a "type": deny, log,
attached, adopted, reloaded, reload-failed, lost, removed, kept). Errors go to stderr.
Signals: SIGHUP reloads the rule file (a bad file keeps the rules in force);
SIGINT/SIGTERM remove the firewall (exit 0), or keep it pinned with --keep.
Exit codes: 0 stopped cleanly, 1 failure, 2 usage, 3 not permitted, 4 unsupported (e.g. no
native XDP on this interface: try --mode generic), 5 bad rule file.`,
    )
    .action((opts: FirewallCliOptions) => run(() => runFirewall(opts)));
}
