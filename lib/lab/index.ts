/**
 * `bpfkit/lab`: network-namespace labs for testing eBPF programs against real kernel
 * datapaths. See {@link Lab}.
 * @module bpfkit/lab
 */
export { Lab, type LabOptions, type HostOptions } from './lab.js';
export { LabHost, type ExecOptions } from './host.js';
export { type LinkOptions, type LabEnd, type LabLink } from './links.js';
export {
  UdpSink,
  TcpListener,
  defaultUdpPayload,
  type PingOptions,
  type PingResult,
  type UdpPayload,
  type SendUdpOptions,
  type SendUdpResult,
  type UdpDatagram,
  type UdpSinkOptions,
} from './traffic.js';
export { LAB_NETNS_PREFIX, LAB_OWNER_ALIAS_PREFIX, NETNS_RUN_DIR } from './common.js';
export { LabProcess, type LabProcessExit, type LineMatcher } from './procs.js';
export { ensureBpffs, isBpffsMounted, BPFFS_PATH } from './bpffs.js';
export { runExitCleanup, exitHookCount, exitHooksInstalled, registerForExit, unregisterForExit, type SyncCleanable } from './cleanup.js';
export {
  findLeaks,
  removeLeaks,
  formatLeaks,
  hasLeaks,
  listLabNamespaces,
  listRootXdp,
  listXdp,
  listPins,
  pidAlive,
  TEST_PIN_PREFIX,
  type LabLeaks,
  type LabNamespaceInfo,
  type XdpAttachment,
  type FindLeaksOptions,
} from './leaks.js';
export { type RunResult } from './run.js';
