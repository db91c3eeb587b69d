/**
 * The public names of lib/core, listed one by one: what a user of bpfkit needs, not the
 * helpers the modules share (errnoError, invalidArgument, checkCodec, ...), which stay
 * importable from their files inside the package.
 */
export { BpfkitError, VerifierError, type BpfkitErrorCode } from './errors.js';
export {
  u8,
  u16,
  u32,
  u64,
  u64n,
  i8,
  i16,
  i32,
  i64,
  i64n,
  be16,
  be32,
  bool,
  bytes,
  cstring,
  mac,
  ipv4,
  ipv6,
  lpmKey,
  array,
  struct,
  parseIPv4,
  parseIPv6,
  formatIPv4,
  formatIPv6,
  parseCidr,
  type Codec,
  type Infer,
  type InferInput,
  type Layout,
  type LpmKey,
  type Cidr,
  type FieldSpec,
  type StructOptions,
} from './codecs.js';
export { BpfObject, type BpfObjectOptions, type GlobalValue, type ProgramSpec, type MapSpec, type GlobalSpec } from './object.js';
export {
  BpfProgram,
  XdpProgram,
  XdpLink,
  xdpActionName,
  type XdpMode,
  type XdpAction,
  type XdpAttachOptions,
  type TestRunOptions,
  type TestRunResult,
  type ProgramInfo,
} from './programs/program.js';
export { DoubleBuffer, type SwapCopy } from './maps/swap.js';
export {
  TcProgram,
  TcLink,
  tcVerdictName,
  tcVerdictCode,
  tcxAvailable,
  type TcDirection,
  type TcKind,
  type TcVerdict,
  type TcAnchor,
  type TcAttachOptions,
  type TcTestRunOptions,
  type TcTestRunContext,
  type TcTestRunResult,
  type TcLinkInfo,
  type TcxHookState,
} from './programs/tc.js';
export {
  TracingProgram,
  TracingLink,
  tracingSupport,
  kernelEnum,
  kernelHasTracepoint,
  dropReasonNamer,
  tracingSection,
  type TracingKind,
  type TracingAttachOptions,
  type TracingLinkInfo,
  type TracingSupport,
} from './programs/tracing.js';
export { BpfMap, perCpu, possibleCpus, type MapCodecs, type MapColumns, type MapInfo, type UpdateFlag } from './maps/map.js';
export {
  RingBuffer,
  type RingBufferOptions,
  type RingBufferStats,
  type RingBufferLoss,
  type RingBufferEvents,
  type RingBufferColumns,
  type RingBufferColumnArrays,
  type RingBufferNumberColumn,
} from './ringbuf.js';
export { type NetnsRef } from './net/netns.js';
export { ifIndex } from './net/interfaces.js';
