import { defineConfig } from "vitest/config";

/**
 * The conformance run of the Azure SDK for JS's published samples (not part of `npm test`, since the
 * samples cannot be committed here): started by scripts/azure-sdk-samples.mjs, which checks the
 * samples' folder first (docs/broker.md).
 */
export default defineConfig({
  test: {
    include: ["test/conformance/**/*.conformance.ts"],
    setupFiles: ["test/setup/open-resources.ts"],
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
