import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Fails a test file that leaves a host, sandbox runtime, worker or broker open, naming where it was made.
    setupFiles: ["test/setup/open-resources.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Sandbox workers are processes of their own; two test files at a time keep this 2-core machine responsive.
    maxWorkers: 2,
  },
});
