import { defineConfig } from "vitest/config";

/**
 * The fault suite (`npm run test:faults`): real faults injected into a running plugbox (workers and
 * brokers killed with signals, the store held by other processes, a full filesystem). One file at a
 * time: each loads the machine on purpose.
 */
export default defineConfig({
  test: {
    include: ["test/faults/**/*.fault.ts"],
    setupFiles: ["test/setup/open-resources.ts"],
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
