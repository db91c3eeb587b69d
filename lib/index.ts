/**
 * bpfkit: program the Linux datapath with eBPF from Node.js.
 * Core toolkit (lib/core) and network modules (lib/modules). The network-namespace lab
 * (lib/lab) is its own entry point, `bpfkit/lab`.
 * @module bpfkit
 */
// Every name below comes from an explicit list: lib/core/index.ts, the decap line here,
// lib/modules/acl/index.ts. Internal helpers stay out; test/unit/exports.test.ts pins the result.
export * from './core/index.js';
export {
  Decapsulator,
  TUNNEL_PROTOCOLS,
  DEFAULT_TUNNEL_PORTS,
  DECAP_PASS_REASONS,
  type TunnelProtocol,
  type DecapPassReason,
  type DecapOptions,
  type DecapLimits,
  type DecapLoadOptions,
  type DecapAttachOptions,
  type DecapStageOptions,
  type DecapSettings,
  type DecapCounter,
  type DecapVniStats,
  type DecapStats,
} from './modules/decap/index.js';
export * from './route/index.js';
export * from './modules/acl/index.js';
export {
  XdpPipeline,
  PIPELINE_MAX_STAGES,
  type PipelineStage,
  type StagePosition,
  type XdpPipelineOptions,
  type PipelineStageStats,
  type PipelineStats,
} from './modules/pipeline.js';
export * from './modules/chain/index.js';
export {
  PacketTracer,
  TRACE_POINTS,
  type PacketTracerOptions,
  type PacketTracerStats,
  type PacketTracerEvents,
  type TracePoint,
  type TraceEvent,
  type TraceFilter,
  type TracePacket,
  type TraceVerdict,
  type TimelineEvent,
} from './modules/tracer/index.js';
export { toJsonLines, JsonLinesStream, type JsonLinesSource, type JsonLinesOptions, type JsonLinesStats, type JsonLinesLoss } from './export/jsonlines.js';
