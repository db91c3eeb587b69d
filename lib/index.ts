/**
 * bpfkit: program the Linux datapath with eBPF from Node.js.
 * Core toolkit (lib/core) and network modules (lib/modules). The network-namespace lab
 * (lib/lab) is its own entry point, `bpfkit/lab`.
 */
export * from './core/index.js';
export * from './modules/decap.js';
export * from './modules/acl/index.js';
