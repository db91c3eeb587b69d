/**
 * Which programs are bpfkit's, and what `bpfkit status` can cheaply say about them:
 * the module (by program name and a map only that module's object has, or because it is
 * pinned in a firewall's pin directory), an XdpPipeline's stage order (its stage-table
 * slot, the table in force, the program array), and a few per-CPU counters, all read by
 * kernel id (BpfProgram.fromId, BpfMap.fromId).
 */
import { basename, dirname } from 'node:path';
import { struct, u32, u64 } from '../core/codecs.js';
import { CpuCounters } from '../core/maps/cpu-counters.js';
import { BpfMap, possibleCpus, type MapInfo } from '../core/maps/map.js';
import { BpfProgram } from '../core/programs/program.js';
import { ACL_STATS } from '../modules/acl/layout.js';
import { CNT_DECAP, CNT_PASS } from '../modules/decap/config.js';
import { isPermission, messageOf, type PinInfo, type RawAttachment } from './status-collect.js';

export type BpfkitModule = 'acl' | 'decap' | 'pipeline';

export interface ProgramRef {
  id: number;
  name: string;
  type: string;
  tag: string;
}

export interface StageInfo {
  position: number;
  program: ProgramRef;
  owner: 'bpfkit' | 'foreign';
  module: BpfkitModule | null;
}

export interface Attachment {
  netns: string | null;
  ifname: string;
  ifindex: number;
  hook: RawAttachment['hook'];
  mode: string;
  linkId?: number;
  program: ProgramRef;
  /** 'bpfkit': one of bpfkit's modules; 'foreign': anything else. */
  owner: 'bpfkit' | 'foreign';
  module: BpfkitModule | null;
  /** Pinned paths of this program and of the link that attaches it. */
  pins: string[];
  /** XdpPipeline root: its stages in run order. */
  stages?: StageInfo[];
  /** Packet counters summed over CPUs (pipeline, acl, decap). */
  counters?: Record<string, number>;
}

/** A module's signature: the program's name and a map its object alone has (names cut to the kernel's 15 characters). */
const SIGNATURES: { module: BpfkitModule; name: RegExp; map: string }[] = [
  { module: 'pipeline', name: /^xdp_pipeline$/, map: 'bpfkit_stages' },
  { module: 'acl', name: /^xdp_acl/, map: 'acl_stats' },
  { module: 'decap', name: /^xdp_decap$/, map: 'vni_allow' },
];
/** Files an AclFirewall pin directory holds (lib/modules/acl: prog, blobs, blob_a, blob_b, ...). */
const ACL_PIN_FILES = ['prog', 'blobs', 'blob_a', 'blob_b'];

const kernelName = (n: string): string => n.slice(0, 15);
const pipelineTable = struct('bpfkit_pipeline_table', { base: u32, count: u32 });
const counter = struct('bpfkit_counter', { packets: u64, bytes: u64 });

interface ProgramFacts {
  ref: ProgramRef;
  maps: MapInfo[];
}

/** Reads programs and their maps by id, once each. */
export class ProgramReader {
  #cache = new Map<number, ProgramFacts | null>();
  readonly #aclDirs: Set<string>;
  readonly #pins: PinInfo[];

  constructor(
    pins: PinInfo[],
    readonly warnings: string[],
  ) {
    this.#pins = pins;
    const byDir = new Map<string, Set<string>>();
    for (const p of pins) {
      const d = dirname(p.path);
      if (!byDir.has(d)) byDir.set(d, new Set());
      byDir.get(d)!.add(basename(p.path));
    }
    this.#aclDirs = new Set([...byDir].filter(([, names]) => ACL_PIN_FILES.every((n) => names.has(n))).map(([d]) => d));
  }

  facts(id: number): ProgramFacts | null {
    if (this.#cache.has(id)) return this.#cache.get(id)!;
    let f: ProgramFacts | null = null;
    try {
      const p = BpfProgram.fromId(id);
      try {
        const i = p.info;
        const maps: MapInfo[] = [];
        for (const m of p.mapIds()) {
          try {
            maps.push(BpfMap.infoById(m));
          } catch {
            /* map freed meanwhile */
          }
        }
        f = { ref: { id: i.id, name: i.name, type: i.type, tag: i.tag }, maps };
      } finally {
        p.close();
      }
    } catch (e) {
      if (isPermission(e)) throw e;
      this.warnings.push(`program id ${id}: ${messageOf(e)}`);
    }
    this.#cache.set(id, f);
    return f;
  }

  /** The bpfkit module a program belongs to, or null for a foreign one. */
  moduleOf(f: ProgramFacts): BpfkitModule | null {
    for (const s of SIGNATURES) {
      if (s.name.test(f.ref.name) && f.maps.some((m) => m.name === kernelName(s.map))) return s.module;
    }
    // pinned as the program of a firewall's pin directory
    if (this.#pins.some((p) => p.kind === 'program' && p.id === f.ref.id && basename(p.path) === 'prog' && this.#aclDirs.has(dirname(p.path)))) return 'acl';
    return null;
  }

  /** Pinned paths of the program and of links that run it (on this interface). */
  pinsOf(programId: number, ifindex: number): string[] {
    return this.#pins
      .filter(
        (p) =>
          (p.kind === 'program' && p.id === programId) ||
          (p.kind === 'link' && p.programId === programId && (p.ifindex === undefined || p.ifindex === ifindex)),
      )
      .map((p) => p.path);
  }

  /** Full description of one attachment. */
  describe(a: RawAttachment): Attachment {
    const f = this.facts(a.programId);
    const ref = f?.ref ?? { id: a.programId, name: '?', type: '?', tag: '?' };
    const module = f ? this.moduleOf(f) : null;
    const out: Attachment = {
      netns: a.netns,
      ifname: a.ifname,
      ifindex: a.ifindex,
      hook: a.hook,
      mode: a.mode,
      ...(a.linkId !== undefined ? { linkId: a.linkId } : {}),
      program: ref,
      owner: module ? 'bpfkit' : 'foreign',
      module,
      pins: this.pinsOf(a.programId, a.ifindex),
    };
    if (f && module === 'pipeline') {
      const stages = this.#stages(f);
      if (stages) out.stages = stages;
    }
    if (f && module) {
      const c = this.#counters(f, module);
      if (c) out.counters = c;
    }
    return out;
  }

  #map(f: ProgramFacts, name: string): MapInfo | undefined {
    return f.maps.find((m) => m.name === kernelName(name));
  }

  /** An XdpPipeline's stages: slot -> table in force -> program array entries base..base+count-1. */
  #stages(f: ProgramFacts): StageInfo[] | undefined {
    const slot = this.#map(f, 'pipeline_table');
    const progs = this.#map(f, 'bpfkit_stages');
    if (!slot || !progs) return undefined;
    try {
      const tableId = readOnce(BpfMap.fromId(slot.id, { key: u32, value: u32 }), 0);
      if (!tableId) return [];
      const t = readOnce(BpfMap.fromId(tableId, { key: u32, value: pipelineTable }), 0);
      if (!t) return [];
      const array = BpfMap.fromId(progs.id, { key: u32, value: u32 });
      const ids: number[] = [];
      try {
        for (let i = 0; i < t.count && i < progs.maxEntries; i++) ids.push(array.get(t.base + i) ?? 0);
      } finally {
        array.close();
      }
      const out: StageInfo[] = [];
      for (const [i, id] of ids.entries()) {
        if (!id) continue;
        const sf = this.facts(id);
        const module = sf ? this.moduleOf(sf) : null;
        out.push({ position: i, program: sf?.ref ?? { id, name: '?', type: '?', tag: '?' }, owner: module ? 'bpfkit' : 'foreign', module });
      }
      return out;
    } catch (e) {
      if (isPermission(e)) throw e;
      this.warnings.push(`pipeline program ${f.ref.id}: stages not read: ${messageOf(e)}`);
      return undefined;
    }
  }

  /** Packets by counter name, summed over CPUs. */
  #counters(f: ProgramFacts, module: BpfkitModule): Record<string, number> | undefined {
    const read = (name: string, value: typeof u64 | typeof counter, slots: [string, number][]): Record<string, number> | undefined => {
      const info = this.#map(f, name);
      if (!info) return undefined;
      try {
        const m = BpfMap.fromId(info.id, { key: u32, value: value as typeof u64 });
        try {
          const out: Record<string, number> = {};
          if (info.type === 'array' && value === counter) {
            // a plain array used as a per-CPU one (the Decapsulator's): CPU c's slot s at c x slots + s
            const cpu = new CpuCounters(m, possibleCpus());
            for (const [label, slot] of slots) out[label] = Number(cpu.read(slot).packets);
            return out;
          }
          for (const [label, slot] of slots) {
            const per = m.get(slot) as unknown as (bigint | { packets: bigint })[] | undefined;
            out[label] = Number((per ?? []).reduce<bigint>((s, v) => s + (typeof v === 'bigint' ? v : v.packets), 0n));
          }
          return out;
        } finally {
          m.close();
        }
      } catch (e) {
        if (isPermission(e)) throw e;
        return undefined; // counters are a bonus: a map of another layout is skipped
      }
    };
    switch (module) {
      case 'pipeline':
        return read('pipeline_root_stats', u64, [
          ['packets', 0],
          ['empty', 1],
        ]);
      case 'acl':
        return read(
          'acl_stats',
          counter,
          ACL_STATS.map((n, i) => [n, i]),
        );
      case 'decap':
        return read('counters', counter, [
          ['decapsulated', CNT_DECAP],
          ['passed', CNT_PASS],
        ]);
    }
  }
}

/** One lookup, then the map is closed. */
function readOnce<V>(m: BpfMap<number, V>, key: number): V | undefined {
  try {
    return m.get(key);
  } finally {
    m.close();
  }
}
