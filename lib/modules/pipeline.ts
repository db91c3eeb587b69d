/**
 * XdpPipeline: several XDP stages on one interface, in a defined order, without
 * libxdp's dispatcher (it needs freplace, which many kernels refuse).
 *
 * The root program (bpf/pipeline.bpf.c) is what the interface runs. It reads the stage
 * table once per packet and tail-calls the first stage; each stage ends with
 * bpfkit_pipeline_next() (bpf/include/bpfkit_pipeline.h), which continues with the next
 * stage on XDP_PASS and ends the walk on any other verdict.
 *
 * Changes (setStages, add, remove, reorder) are atomic: the program array has two
 * halves, the new chain is written into the idle half and the stage table flips to it
 * through a DoubleBuffer (lib/core/maps/swap.ts). A packet walks the whole old chain or the
 * whole new one, never a mix; after the flip's grace period the old half is cleared.
 *
 * ```ts
 * const pipe = await XdpPipeline.attach('eth0');
 * const decap = await Decapsulator.attach(pipe, { protocols: ['vxlan'] });     // stage 0
 * const fw = await AclFirewall.attach(pipe, { rules });                         // stage 1
 * await pipe.reorder(['acl', 'decap']);
 * console.log(pipe.stats());
 * ```
 */
import { BpfkitError, invalidArgument } from '../core/errors.js';
import { struct, u32, u64 } from '../core/codecs.js';
import type { BpfMap } from '../core/maps/map.js';
import { ifIndex } from '../core/net/interfaces.js';
import { bpfObjectPath } from '../core/paths.js';
import { checkInterface, netnsPath, type NetnsRef } from '../core/net/netns.js';
import { BpfObject, type BpfObjectOptions } from '../core/object.js';
import { XdpProgram, type TestRunOptions, type TestRunResult, type XdpAction, type XdpLink, type XdpMode } from '../core/programs/program.js';
import { DoubleBuffer } from '../core/maps/swap.js';

/** Mirrors BPFKIT_PIPELINE_MAX_STAGES in bpf/include/bpfkit_pipeline.h. */
export const PIPELINE_MAX_STAGES = 8;
const VERDICTS: readonly XdpAction[] = ['aborted', 'drop', 'pass', 'tx', 'redirect'];
const STAGE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A program to run as a stage, under a name unique in its pipeline. */
export interface PipelineStage {
  /** The stage's name: 1-64 of [A-Za-z0-9_.:-]. */
  readonly name: string;
  /** Loaded with {@link XdpPipeline.stageOptions} (so it shares the pipeline's maps). */
  readonly program: XdpProgram;
}

/** Where add() puts a stage: before or after a named stage, or at an index; default last. */
export interface StagePosition {
  /** Put the stage just before the stage of this name. */
  before?: string;
  /** Put the stage just after the stage of this name. */
  after?: string;
  /** Put the stage at this position (0 first). */
  index?: number;
}

/** Options of {@link XdpPipeline.attach}. */
export interface XdpPipelineOptions {
  /** XDP mode of the root program: 'native' (default), 'generic' or 'auto'. */
  mode?: XdpMode;
  /** Network namespace of the interface (name under /run/netns, a path or an open fd). */
  netns?: NetnsRef;
}

/** Counters of one stage position (see {@link XdpPipeline.stats}). */
export interface PipelineStageStats {
  /** Name of the stage now at this position. */
  name: string;
  /** The position (0 first). */
  position: number;
  /** Packets whose walk ended at this stage, by verdict ('pass' = passed the last stage). */
  ended: Record<XdpAction, bigint>;
}

/** Counters of a pipeline (see {@link XdpPipeline.stats}). */
export interface PipelineStats {
  /** Packets into the root program. */
  packets: bigint;
  /** Packets passed with no stage to run (empty pipeline). */
  empty: bigint;
  /** Per stage position in the current chain (positions count across changes). */
  stages: PipelineStageStats[];
}

const tableCodec = struct('bpfkit_pipeline_table', { base: u32, count: u32 });
const cursorCodec = struct('bpfkit_pipeline_cursor', { next: u32, end: u32, base: u32, scratch: u32 });

/** Validates a whole chain before anything is written. */
function checkChain(stages: readonly PipelineStage[]): PipelineStage[] {
  if (!Array.isArray(stages)) invalidArgument('stages', 'must be an array of { name, program }');
  if (stages.length > PIPELINE_MAX_STAGES) invalidArgument('stages', `at most ${PIPELINE_MAX_STAGES} stages, got ${stages.length}`);
  const seen = new Set<string>();
  stages.forEach((s, i) => {
    const field = `stages[${i}]`;
    if (s === null || typeof s !== 'object') invalidArgument(field, 'must be { name, program }');
    if (typeof s.name !== 'string' || !STAGE_NAME.test(s.name))
      invalidArgument(`${field}.name`, `must be 1-64 of [A-Za-z0-9_.:-], got ${JSON.stringify(s.name)}`);
    if (seen.has(s.name)) invalidArgument(`${field}.name`, `'${s.name}' is already a stage of this pipeline`);
    seen.add(s.name);
    if (!(s.program instanceof XdpProgram)) invalidArgument(`${field}.program`, 'must be a loaded XdpProgram');
    if (s.program.closed) invalidArgument(`${field}.program`, `program '${s.program.name}' is closed`);
  });
  return [...stages];
}

/** The index add() inserts at. */
function position(chain: readonly PipelineStage[], where: StagePosition): number {
  const given = ['before', 'after', 'index'].filter((k) => (where as Record<string, unknown>)[k] !== undefined);
  if (given.length > 1) invalidArgument(given[1]!, `give one of before, after, index; got ${given.join(' and ')}`);
  const find = (name: string, field: string): number => {
    const i = chain.findIndex((s) => s.name === name);
    if (i < 0) invalidArgument(field, `no stage named '${name}' (stages: ${chain.map((s) => s.name).join(', ') || 'none'})`);
    return i;
  };
  if (where.before !== undefined) return find(where.before, 'before');
  if (where.after !== undefined) return find(where.after, 'after') + 1;
  if (where.index !== undefined) {
    if (!Number.isInteger(where.index) || where.index < 0 || where.index > chain.length)
      invalidArgument('index', `must be 0..${chain.length}, got ${where.index}`);
    return where.index;
  }
  return chain.length;
}

interface Parts {
  obj: BpfObject;
  root: XdpProgram;
  stages: BpfMap<number, number>;
  cursor: BpfMap<number, unknown[], number, unknown>;
  stats: BpfMap<number, bigint[], number, bigint[] | bigint>;
  rootStats: BpfMap<number, bigint[], number, bigint[] | bigint>;
  slot: BpfMap<number, number>;
  tables: [BpfMap<number, { base: number; count: number }>, BpfMap<number, { base: number; count: number }>];
  swap: DoubleBuffer<BpfMap<number, { base: number; count: number }>>;
}

/**
 * Several XDP programs (stages) on one interface, run in a defined order and changed
 * atomically: a packet walks the whole old chain or the whole new one. Modules join as
 * stages by attaching to the pipeline (`AclFirewall.attach(pipe, ...)`); your own programs
 * through {@link XdpPipeline.stageOptions} and {@link XdpPipeline.add}. See docs/pipeline.md.
 */
export class XdpPipeline {
  #p: Parts | undefined;
  #link: XdpLink | undefined;
  #chain: PipelineStage[] = [];
  /** Index of the interface the root program is attached to (undefined after load()). */
  readonly ifindex: number | undefined;
  /** Path of the interface's namespace (undefined: the process's own). */
  readonly netns: string | undefined;

  private constructor(p: Parts, where: { ifindex?: number; netns?: string }) {
    this.#p = p;
    this.ifindex = where.ifindex;
    this.netns = where.netns;
  }

  /** Loads the root program without attaching it (for testRun). */
  static async load(): Promise<XdpPipeline> {
    return new XdpPipeline(await loadParts(), {});
  }

  /** Loads the root program and attaches it to `iface` (an empty pipeline passes everything). */
  static async attach(iface: string | number, opts: XdpPipelineOptions = {}): Promise<XdpPipeline> {
    checkInterface(iface, 'iface');
    for (const k of Object.keys(opts)) if (k !== 'mode' && k !== 'netns') invalidArgument(k, `unknown option '${k}' (options: mode, netns)`);
    const ns = netnsPath(opts.netns);
    const ifindex = ifIndex(iface, { netns: ns }); // ERR_NO_SUCH_INTERFACE before anything is loaded
    const parts = await loadParts();
    const pipe = new XdpPipeline(parts, { ifindex, ...(ns ? { netns: ns } : {}) });
    try {
      pipe.#link = parts.root.attach(iface, { mode: opts.mode ?? 'native', ...(ns ? { netns: ns } : {}) });
    } catch (e) {
      pipe.close();
      throw e;
    }
    return pipe;
  }

  /**
   * Options for opening a stage's BpfObject: its pipeline maps are replaced by this
   * pipeline's and it is told it is a stage. Merge them into your own options.
   */
  stageOptions(): Required<Pick<BpfObjectOptions, 'maps' | 'globals'>> {
    const p = this.#parts();
    return {
      maps: {
        bpfkit_stages: { reuse: p.stages },
        bpfkit_pipeline_cursor: { reuse: p.cursor },
        bpfkit_pipeline_stats: { reuse: p.stats },
      },
      globals: { bpfkit_pipeline_stage: 1 },
    };
  }

  /** Stage names in walk order. */
  get stages(): string[] {
    return this.#chain.map((s) => s.name);
  }
  /** The root program (what the interface runs). */
  get program(): XdpProgram {
    return this.#parts().root;
  }
  /** The root program's XDP link (undefined after load()). */
  get link(): XdpLink | undefined {
    return this.#link;
  }
  /** True once closed. */
  get closed(): boolean {
    return this.#p === undefined;
  }

  /** Replaces the whole chain atomically. */
  setStages(stages: readonly PipelineStage[]): Promise<void> {
    const p = this.#parts();
    return p.swap.serial(() => this.#install(checkChain(stages)));
  }

  /** Adds a stage (default: last) atomically. */
  add(stage: PipelineStage, where: StagePosition = {}): Promise<void> {
    const p = this.#parts();
    return p.swap.serial(() => {
      const chain = [...this.#chain];
      chain.splice(position(chain, where), 0, stage);
      return this.#install(checkChain(chain));
    });
  }

  /** Removes a stage by name atomically; false if there is none. */
  remove(name: string): Promise<boolean> {
    const p = this.#parts();
    return p.swap.serial(async () => {
      const chain = this.#chain.filter((s) => s.name !== name);
      if (chain.length === this.#chain.length) return false;
      await this.#install(chain);
      return true;
    });
  }

  /** Puts the stages in this order (the same names, each once) atomically. */
  reorder(names: readonly string[]): Promise<void> {
    const p = this.#parts();
    return p.swap.serial(() => {
      const byName = new Map(this.#chain.map((s) => [s.name, s]));
      if (!Array.isArray(names) || names.length !== byName.size || new Set(names).size !== names.length || names.some((n) => !byName.has(n))) {
        invalidArgument('names', `must name the stages ${JSON.stringify(this.stages)} each once, got ${JSON.stringify(names)}`);
      }
      return this.#install(names.map((n) => byName.get(n)!));
    });
  }

  /**
   * Writes `chain` into the idle half of the program array, flips the stage table to it,
   * then (after the grace period the flip waited for) clears the old half.
   */
  async #install(chain: PipelineStage[]): Promise<void> {
    const p = this.#parts();
    const half = p.swap.idleIndex;
    const base = half * PIPELINE_MAX_STAGES;
    try {
      // the idle half: no packet reads it until the flip
      for (let i = 0; i < PIPELINE_MAX_STAGES; i++) {
        const s = chain[i];
        if (s) p.stages.set(base + i, s.program.fd);
        else p.stages.delete(base + i);
      }
      p.swap.idle.set(0, { base, count: chain.length });
      await p.swap.flip();
    } catch (e) {
      for (let i = 0; i < PIPELINE_MAX_STAGES; i++) p.stages.delete(base + i);
      if (e instanceof BpfkitError && e.code === 'ERR_INVALID_ARGUMENT' && e.syscall) {
        throw new BpfkitError(
          'ERR_INVALID_ARGUMENT',
          `the kernel refused a stage program in the pipeline's program array (a stage must be an XDP program loaded like the root, e.g. with the same frags support): ${e.message}`,
          { cause: e, field: 'stages' },
        );
      }
      throw e;
    }
    this.#chain = chain;
    const oldBase = p.swap.idleIndex * PIPELINE_MAX_STAGES;
    for (let i = 0; i < PIPELINE_MAX_STAGES; i++) p.stages.delete(oldBase + i);
  }

  /** Counters summed over CPUs. */
  stats(): PipelineStats {
    const p = this.#parts();
    const sum = (v: bigint[] | undefined): bigint => (v ?? []).reduce((a, b) => a + b, 0n);
    const stages = this.#chain.map((s, i): PipelineStageStats => {
      const ended = {} as Record<XdpAction, bigint>;
      VERDICTS.forEach((v, k) => (ended[v] = sum(p.stats.get(i * VERDICTS.length + k))));
      return { name: s.name, position: i, ended };
    });
    return { packets: sum(p.rootStats.get(0)), empty: sum(p.rootStats.get(1)), stages };
  }

  /** Runs the root (and so the chain) on one frame with BPF_PROG_TEST_RUN. */
  testRun(frame: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
    return this.#parts().root.testRun(frame, opts);
  }

  /** Detaches the root and releases the pipeline's maps. Stages are their owners' to close. Idempotent. */
  close(): void {
    this.#link?.close();
    this.#link = undefined;
    const p = this.#p;
    this.#p = undefined;
    if (!p) return;
    for (const m of [p.root, p.stages, p.cursor, p.stats, p.rootStats, p.slot, ...p.tables]) m.close();
    p.obj.close();
    this.#chain = [];
  }
  /** Same as `close()`: for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #parts(): Parts {
    if (!this.#p) throw new BpfkitError('ERR_CLOSED', 'XdpPipeline is closed');
    return this.#p;
  }
}

async function loadParts(): Promise<Parts> {
  const obj = await BpfObject.load(bpfObjectPath('pipeline'), { name: 'pipeline' });
  const opened: { close(): void }[] = [];
  const keep = <T extends { close(): void }>(x: T): T => (opened.push(x), x);
  try {
    const slot = keep(obj.map('pipeline_table', { key: u32, value: u32 }));
    const tables: Parts['tables'] = [
      keep(obj.map('pipeline_table_a', { key: u32, value: tableCodec })),
      keep(obj.map('pipeline_table_b', { key: u32, value: tableCodec })),
    ];
    return {
      obj,
      root: keep(obj.xdpProgram('xdp_pipeline')),
      stages: keep(obj.map('bpfkit_stages', { key: u32, value: u32 })),
      cursor: keep(obj.perCpuMap('bpfkit_pipeline_cursor', { key: u32, value: cursorCodec })) as Parts['cursor'],
      stats: keep(obj.perCpuMap('bpfkit_pipeline_stats', { key: u32, value: u64 })),
      rootStats: keep(obj.perCpuMap('pipeline_root_stats', { key: u32, value: u64 })),
      slot,
      tables,
      // the static initialiser points the slot at table a (copy 0), which is empty
      swap: new DoubleBuffer(slot, tables, 0),
    };
  } catch (e) {
    for (const o of opened) o.close();
    obj.close();
    throw e;
  }
}
