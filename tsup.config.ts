import { defineConfig } from 'tsup';
import type { Plugin } from 'esbuild';

/**
 * `bpfkit/lab` and `bpfkit/metrics` throw the BpfkitError of `bpfkit`, not a copy of it, so
 * that `instanceof` holds across the entries: in dist/lab.* and dist/metrics.*,
 * lib/core/errors.js is the main bundle (./index.js or ./index.cjs, which export every
 * name of errors.ts they use). lib/metrics imports only types from the modules, so no
 * other part of the library is bundled twice.
 */
const labUsesMainErrors: Plugin = {
  name: 'lab-uses-main-errors',
  setup(build) {
    const main = build.initialOptions.format === 'cjs' ? './index.cjs' : './index.js';
    build.onResolve({ filter: /\/core\/errors\.js$/ }, (args) =>
      /[\\/]lib[\\/](lab|metrics)[\\/]/.test(args.importer) ? { path: main, external: true } : undefined,
    );
  },
};

export default defineConfig([
  {
    // `bpfkit`, `bpfkit/lab` and `bpfkit/metrics` (prom-client, a peer dependency, stays external)
    entry: { index: 'lib/index.ts', lab: 'lib/lab/index.ts', metrics: 'lib/metrics/index.ts' },
    format: ['esm', 'cjs'],
    splitting: false,
    esbuildPlugins: [labUsesMainErrors],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    shims: true,
  },
  {
    entry: { cli: 'lib/cli/index.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
