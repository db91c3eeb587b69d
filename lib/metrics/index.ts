/**
 * `bpfkit/metrics`: a prom-client collector of every module's counters (docs/metrics.md).
 * prom-client is an optional peer dependency: only this entry imports it.
 */
export { BpfkitMetrics, type BpfkitMetricsOptions, type MetricLabels } from './collector.js';
export { METRICS as BPFKIT_METRICS, type MetricDef, type MetricKind } from './catalog.js';
