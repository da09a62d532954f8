import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Sandbox workers are processes of their own; two test files at a time keep this 2-core machine responsive.
    maxWorkers: 2,
  },
});
