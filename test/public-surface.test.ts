/**
 * What a user can import: the package's entries and the values each exports, listed. A name added to
 * or dropped from a public entry is a change of the API, made here on purpose.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import * as plugbox from "../dist/host/index.js";
import * as testing from "../dist/host/testing/index.js";
import { repo } from "./helpers/cli.js";

describe("the public surface", () => {
  it("package.json exports the host, the SDK, the testing API and the marked test hooks, nothing else", () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports)).toEqual([".", "./sdk", "./testing", "./testing/internal", "./package.json"]);
  });

  it('"plugbox" exports the host, one-off runs and builds, the sandbox, the broker and the errors a caller catches', () => {
    expect(Object.keys(plugbox).sort()).toEqual([
      "JobState",
      "JobStatus",
      "PlugboxError",
      "PluginExecutionError",
      "SUPPORTED_NODE_MAJORS",
      "SandboxError",
      "StepFailedError",
      "buildBundle",
      "bundleFromSource",
      "createHost",
      "createSandboxRuntime",
      "isolatedVmBinding",
      "loadBundleFile",
      "runJobsInProcesses",
      "runPlugin",
      "sandboxLimitDefaults",
      "startBroker",
    ]);
  });

  it('"plugbox/testing" exports the test host, one-off runs, predictable ids and the broker', () => {
    expect(Object.keys(testing).sort()).toEqual(["Broker", "TestHost", "runPlugin", "sequentialIds", "startBroker"]);
  });
});
