export { PacketTracer, type PacketTracerOptions, type PacketTracerStats, type PacketTracerEvents } from './tracer.js';
export { TRACE_POINTS, type TracePoint, type TraceEvent } from './layout.js';
export { type TraceFilter } from './filter.js';
export { type TracePacket, type TraceVerdict, type TimelineEvent } from './timeline.js';
