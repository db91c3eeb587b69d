import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // native addons and namespace switching do not belong in worker threads
    pool: 'forks',
    globalSetup: './test/global-setup.ts',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
    // lab names are unique per run, so test files may run in parallel
    fileParallelism: true,
  },
});
