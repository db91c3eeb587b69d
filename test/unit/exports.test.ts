/**
 * The public surface: the values `bpfkit` and `bpfkit/lab` export (types leave no trace at
 * run time). A name added to or dropped from an entry point is an API change: it fails
 * here until this list and the CHANGELOG say so.
 */
import { describe, expect, it } from 'vitest';
import * as main from '../../lib/index.js';
import * as lab from '../../lib/lab/index.js';
import * as metrics from '../../lib/metrics/index.js';

const MAIN = [
  // lib/core
  'BpfkitError',
  'VerifierError',
  'BpfObject',
  'BpfProgram',
  'XdpProgram',
  'XdpLink',
  'xdpActionName',
  'TcProgram',
  'TcLink',
  'tcVerdictName',
  'tcVerdictCode',
  'tcxAvailable',
  'TracingProgram',
  'TracingLink',
  'tracingSupport',
  'tracingSection',
  'kernelEnum',
  'kernelHasTracepoint',
  'dropReasonNamer',
  'BpfMap',
  'perCpu',
  'possibleCpus',
  'RingBuffer',
  'DoubleBuffer',
  'ifIndex',
  'u8',
  'u16',
  'u32',
  'u64',
  'u64n',
  'i8',
  'i16',
  'i32',
  'i64',
  'i64n',
  'be16',
  'be32',
  'bool',
  'bytes',
  'cstring',
  'mac',
  'ipv4',
  'ipv6',
  'lpmKey',
  'array',
  'struct',
  'parseIPv4',
  'parseIPv6',
  'formatIPv4',
  'formatIPv6',
  'parseCidr',
  'PolicyRoute',
  'IpRoute',
  'IpRule',
  'BPFKIT_ROUTE_PROTOCOL',
  // lib/modules
  'Decapsulator',
  'TUNNEL_PROTOCOLS',
  'DEFAULT_TUNNEL_PORTS',
  'DECAP_PASS_REASONS',
  'XdpPipeline',
  'PIPELINE_MAX_STAGES',
  'ServiceChainer',
  'PacketTracer',
  'TRACE_POINTS',
  'AclFirewall',
  'ACL_MAX_RULES',
  'PROTOCOL_NUMBERS',
  'parseClassBench',
  'parseClassBenchTrace',
  // lib/export
  'toJsonLines',
  'JsonLinesStream',
];

const METRICS = ['BpfkitMetrics', 'BPFKIT_METRICS'];

const LAB = [
  'Lab',
  'LabHost',
  'UdpSink',
  'TcpListener',
  'LabProcess',
  'defaultUdpPayload',
  'LAB_NETNS_PREFIX',
  'LAB_OWNER_ALIAS_PREFIX',
  'NETNS_RUN_DIR',
  'ensureBpffs',
  'isBpffsMounted',
  'BPFFS_PATH',
  'runExitCleanup',
  'exitHookCount',
  'exitHooksInstalled',
  'registerForExit',
  'unregisterForExit',
  'findLeaks',
  'removeLeaks',
  'formatLeaks',
  'hasLeaks',
  'listLabNamespaces',
  'listRootXdp',
  'listXdp',
  'listPins',
  'pidAlive',
  'TEST_PIN_PREFIX',
];

describe('entry points', () => {
  it('bpfkit exports exactly its public values', () => {
    expect(Object.keys(main).sort()).toEqual([...MAIN].sort());
  });

  it('bpfkit/lab exports exactly the lab, and nothing of it is left in bpfkit', () => {
    expect(Object.keys(lab).sort()).toEqual([...LAB].sort());
    expect(Object.keys(main).filter((n) => n in lab)).toEqual([]);
  });

  it('bpfkit/metrics exports exactly the collector, and bpfkit none of it (prom-client is optional)', () => {
    expect(Object.keys(metrics).sort()).toEqual([...METRICS].sort());
    expect(Object.keys(main).filter((n) => n in metrics)).toEqual([]);
  });

  it('internal helpers are not exported', () => {
    for (const n of ['errnoError', 'errnoName', 'invalidArgument', 'verifierTail', 'checkCodec', 'isPerCpuType', 'packageRoot', 'bpfObjectPath', 'netnsPath']) {
      expect(n in main, n).toBe(false);
    }
  });
});
