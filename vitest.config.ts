import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/device-scope.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Runs spawn real process trees and git repos; two cores are all CI has.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
