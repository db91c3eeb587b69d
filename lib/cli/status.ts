/**
 * `bpfkit status`: what this machine offers bpfkit (kernel, libbpf, bpffs, BTF features,
 * privileges) and every XDP / TC attachment in this namespace and the named ones, with
 * bpfkit's own programs recognised, pipelines' stages, counters and pins.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { Command } from 'commander';
import { native, packageRoot } from '../core/native.js';
import { possibleCpus } from '../core/maps/map.js';
import { helperSupported, kernelBtf, mapTypeSupported, VMLINUX_BTF, xdpLinkSupported } from '../core/features.js';
import { BPFFS_PATH, isBpffsMounted } from '../lab/bpffs.js';
import { EXIT, type ExitCode } from './exit.js';
import { namesOption } from './options.js';
import { isPermission, messageOf, namedNamespaces, scanNamespace, scanPins, type NamespaceScan, type PinInfo } from './status-collect.js';
import { ProgramReader, type Attachment } from './status-modules.js';

export interface KernelFacts {
  release: string;
  libbpf: string;
  possibleCpus: number;
  bpffs: string | null;
  btf: string | null;
  features: { xdpLink: boolean | null; ringbuf: boolean | null; lookupPercpuElem: boolean | null; xdpGetBuffLen: boolean | null };
  root: boolean;
}

/** The document `bpfkit status --json` prints. */
export interface StatusReport {
  bpfkit: { version: string };
  kernel: KernelFacts;
  namespaces: NamespaceScan[];
  /** null when reading them was not permitted (see `error`). */
  attachments: Attachment[] | null;
  pins: PinInfo[] | null;
  warnings: string[];
  error?: string;
}

export function kernelFacts(): KernelFacts {
  const orNull = (v: boolean | undefined): boolean | null => (v === undefined ? null : v);
  return {
    release: release(),
    libbpf: native().libbpfVersion,
    possibleCpus: possibleCpus(),
    bpffs: isBpffsMounted() ? BPFFS_PATH : null,
    btf: kernelBtf() ? VMLINUX_BTF : null,
    features: {
      xdpLink: orNull(xdpLinkSupported()),
      ringbuf: orNull(mapTypeSupported('ringbuf')),
      lookupPercpuElem: orNull(helperSupported('bpf_map_lookup_percpu_elem')),
      xdpGetBuffLen: orNull(helperSupported('bpf_xdp_get_buff_len')),
    },
    root: process.getuid?.() === 0,
  };
}

/** Reads everything; throws only on a failure other than "not permitted". */
export async function collectStatus(opts: { netns?: string[] } = {}): Promise<StatusReport> {
  const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string };
  const warnings: string[] = [];
  const report: StatusReport = { bpfkit: { version: pkg.version }, kernel: kernelFacts(), namespaces: [], attachments: null, pins: null, warnings };
  try {
    const pins = report.kernel.bpffs ? scanPins(warnings) : [];
    const reader = new ProgramReader(pins, warnings);
    const names: (string | null)[] = opts.netns ?? [null, ...namedNamespaces()];
    const attachments: Attachment[] = [];
    for (const ns of names) {
      const { scan, attachments: raw } = await scanNamespace(ns, warnings);
      report.namespaces.push(scan);
      for (const a of raw) attachments.push(reader.describe(a));
    }
    report.attachments = attachments;
    report.pins = pins;
  } catch (e) {
    if (!isPermission(e)) throw e;
    report.error = `not permitted to read BPF programs and maps: ${messageOf(e)}`;
  }
  return report;
}

const yes = (v: boolean | null): string => (v === null ? 'unknown' : v ? 'yes' : 'NO');

/** The human-readable page. */
export function formatStatus(r: StatusReport): string[] {
  const k = r.kernel;
  const lines = [
    `bpfkit      ${r.bpfkit.version}`,
    `kernel      ${k.release}`,
    `libbpf      ${k.libbpf}`,
    `cpus        ${k.possibleCpus} possible`,
    `bpffs       ${k.bpffs ? `mounted at ${k.bpffs}` : `NOT mounted (mount -t bpf bpf ${BPFFS_PATH})`}`,
    `btf         ${k.btf ?? 'NO (the feature checks below cannot answer)'}`,
    `features    xdp bpf_link ${yes(k.features.xdpLink)}, ringbuf ${yes(k.features.ringbuf)}, ` +
      `bpf_map_lookup_percpu_elem ${yes(k.features.lookupPercpuElem)}, bpf_xdp_get_buff_len ${yes(k.features.xdpGetBuffLen)}`,
    `privileges  ${k.root ? 'root' : 'not root: needs CAP_BPF + CAP_NET_ADMIN'}`,
  ];
  if (r.error) return [...lines, '', `attachments ${r.error}`];
  const atts = r.attachments ?? [];
  const nsCount = r.namespaces.length;
  lines.push('', `attachments ${atts.length} in ${nsCount} namespace${nsCount === 1 ? '' : 's'} (${atts.filter((a) => a.owner === 'bpfkit').length} bpfkit)`);
  for (const ns of r.namespaces) {
    const here = atts.filter((a) => a.netns === ns.name);
    if (!here.length && !ns.error) continue;
    lines.push(`  ${ns.name === null ? 'this namespace' : `netns ${ns.name}`}${ns.error ? `: ${ns.error}` : ''}`);
    for (const a of here) {
      const who = a.owner === 'bpfkit' ? `bpfkit ${a.module}` : 'foreign';
      lines.push(`    ${a.ifname} (${a.ifindex})  ${a.hook} ${a.mode}  prog ${a.program.id} ${a.program.name}  [${who}]`);
      if (a.stages) {
        lines.push(`      stages: ${a.stages.length ? a.stages.map((s) => `${s.position}:${s.program.name}(${s.program.id})`).join(' -> ') : 'none'}`);
      }
      if (a.counters)
        lines.push(
          `      counters: ${Object.entries(a.counters)
            .map(([n, v]) => `${n} ${v}`)
            .join(', ')}`,
        );
      for (const p of a.pins) lines.push(`      pinned: ${p}`);
    }
  }
  const pins = r.pins ?? [];
  if (pins.length) {
    lines.push('', `pins        ${pins.length} under ${BPFFS_PATH}`);
    for (const p of pins) lines.push(`  ${p.path}  ${p.kind} ${p.id}${p.name ? ` ${p.name}` : ''}${p.kind === 'link' ? ` -> prog ${p.programId}` : ''}`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines;
}

export function registerStatus(program: Command, run: (fn: () => Promise<ExitCode>) => Promise<void>): void {
  program
    .command('status')
    .description('kernel, libbpf and bpffs facts, and every XDP/TC attachment (bpfkit or foreign) in this and every named network namespace')
    .option('--json', 'print one JSON document instead of the text page')
    .option('--netns <name>', 'only this named namespace (under /run/netns; repeat for more) instead of this one and all named ones', namesOption())
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 usage, 3 not permitted to read BPF objects (facts are still printed).')
    .action((opts: { json?: boolean; netns?: string[] }) =>
      run(async () => {
        const r = await collectStatus(opts.netns ? { netns: opts.netns } : {});
        if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else process.stdout.write(`${formatStatus(r).join('\n')}\n`);
        return r.error ? EXIT.permission : EXIT.ok;
      }),
    );
}
