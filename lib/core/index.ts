export * from './errors.js';
export * from './codecs.js';
export { BpfObject, type BpfObjectOptions, type GlobalValue, type ProgramSpec, type MapSpec, type GlobalSpec } from './object.js';
export { BpfProgram, XdpProgram, XdpLink, xdpActionName, type XdpMode, type XdpAction, type XdpAttachOptions, type TestRunOptions, type TestRunResult, type ProgramInfo } from './program.js';
export { BpfMap, perCpu, possibleCpus, isPerCpuType, type MapCodecs, type MapInfo, type UpdateFlag } from './map.js';
export { RingBuffer, type RingBufferOptions, type RingBufferStats, type RingBufferLoss, type RingBufferEvents } from './ringbuf.js';
export { bpfObjectPath, packageRoot } from './native.js';
export { netnsPath, type NetnsRef } from './netns.js';
