/**
 * bpfkit: program the Linux datapath with eBPF from Node.js.
 * Core toolkit (lib/core), network-namespace lab (lib/lab), network modules (lib/modules).
 */
export * from './core/index.js';
export * from './lab/index.js';
export * from './modules/decap/index.js';
export * from './modules/acl/index.js';
export * from './modules/pipeline.js';
export * from './modules/chain/index.js';
