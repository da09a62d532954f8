/**
 * What a user can import: the package's entries and the values each exports, listed. A name added to
 * or dropped from a public entry is a change of the API, made here on purpose.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import * as plugbox from "../../dist/host/index.js";
import * as testing from "../../dist/host/testing/index.js";
import * as testingVitest from "../../dist/host/testing/vitest.js";
import { repo } from "../helpers/cli.js";

describe("the public surface", () => {
  it("package.json exports the host, the SDK, the testing API, its vitest matchers and the marked test hooks, nothing else", () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports)).toEqual([".", "./sdk", "./testing", "./testing/vitest", "./testing/internal", "./package.json"]);
  });

  it('"plugbox" exports the host, one-off runs and builds, the sandbox, the broker, the system clock and one error class per area (instanceof holds per code)', () => {
    expect(Object.keys(plugbox).sort()).toEqual([
      "BrokerError",
      "BundleError",
      "CliError",
      "HostError",
      "HostServiceError",
      "JobError",
      "JobState",
      "JobStatus",
      "OptionsError",
      "OrganizationError",
      "PipelineError",
      "PlugboxError",
      "PluginExecutionError",
      "RegistryError",
      "RelayError",
      "ReplayError",
      "SUPPORTED_NODE_MAJORS",
      "SandboxCrashError",
      "SandboxError",
      "SandboxIsolationError",
      "SandboxLimitError",
      "SandboxMemoryError",
      "SandboxTimeoutError",
      "ServeError",
      "ServiceError",
      "StepFailedError",
      "StoreError",
      "UsageError",
      "WebError",
      "buildBundle",
      "bundleFromSource",
      "createHost",
      "createSandboxRuntime",
      "isPlugboxError",
      "isolatedVmBinding",
      "loadBundleFile",
      "runJobsInProcesses",
      "runPlugin",
      "sandboxLimitDefaults",
      "startBroker",
      "startServe",
      "systemClock",
    ]);
  });

  it('"plugbox/testing" exports the test hosts (one plug-in, the whole pipeline), one-off runs and their builder, store diffs, predictable ids, the manual clock, the broker and the reader of captured contexts', () => {
    expect(Object.keys(testing).sort()).toEqual(["Broker", "ManualClock", "TestHost", "createTestHost", "forPlugin", "parseCapturedContext", "runPlugin", "sequentialIds", "startBroker", "storeDiff"]);
  });

  it('"plugbox/testing/vitest" registers its matchers when imported, and exports the journal as text', () => {
    expect(Object.keys(testingVitest)).toEqual(["journalText"]);
    expect(expect(() => undefined)).toHaveProperty("toHaveRunStep");
  });
});
