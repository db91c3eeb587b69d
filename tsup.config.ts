import { defineConfig } from 'tsup';
import type { Plugin } from 'esbuild';

/**
 * `bpfkit/lab` throws the BpfkitError of `bpfkit`, not a copy of it, so that `instanceof`
 * holds across the two entries: in dist/lab.*, lib/core/errors.js is the main bundle
 * (./index.js or ./index.cjs, which export every name of errors.ts the lab uses).
 */
const labUsesMainErrors: Plugin = {
  name: 'lab-uses-main-errors',
  setup(build) {
    const main = build.initialOptions.format === 'cjs' ? './index.cjs' : './index.js';
    build.onResolve({ filter: /\/core\/errors\.js$/ }, (args) =>
      /[\\/]lib[\\/]lab[\\/]/.test(args.importer) ? { path: main, external: true } : undefined,
    );
  },
};

export default defineConfig([
  {
    // `bpfkit` and `bpfkit/lab`
    entry: { index: 'lib/index.ts', lab: 'lib/lab/index.ts' },
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
