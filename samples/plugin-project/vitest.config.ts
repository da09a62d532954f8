import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // plugbox's matchers, and a check that fails a test file which leaves a host open.
    setupFiles: ["plugbox/testing/vitest"],
  },
});
