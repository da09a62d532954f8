/**
 * The escape corpus of public sandbox-escape and sandbox-DoS techniques, each adapted to run inside
 * a plug-in, run as tests. The table, each technique with its source, lives in host/audit/corpus/ by
 * attack class, and host/audit/corpus.ts assembles it and says which techniques cannot apply to
 * plugbox and why: `plugbox audit` ships and runs the same table. A technique passes when the
 * plug-in finds nothing it should not (it reports what it found in its outputs), or when the
 * execution ends with the typed error listed, and the runtime serves the next execution.
 */
import { describe, expect, test } from "vitest";
import { ACCOUNT_ID, escapeCorpus as corpus, HOST_MARKERS, MISSING_ID, PRELUDE, type Technique } from "../../dist/host/testing/internal.js";
import type { ExecutionReport, ServiceCall } from "../../dist/host/index.js";
import { Entity } from "../../dist/sdk/index.js";
import { attackPlugin, context, recorder, useRuntime } from "../helpers/runtime.js";

/** Retrieves answer an account; a retrieveMultiple for { huge } answers 1 MB; everything else a missing record. */
function services() {
  return recorder((call: ServiceCall) => {
    if (call.op === "retrieve") {
      if (call.args[1] === MISSING_ID) throw Object.assign(new Error("account with id " + MISSING_ID + " does not exist"), {});
      return new Entity("account", ACCOUNT_ID, { name: "Contoso" });
    }
    if (call.op === "retrieveMultiple") return "x".repeat(1024 * 1024);
    if (call.op === "create") return ACCOUNT_ID;
    return null;
  });
}

/** A technique's expected outputs, a RegExp standing for any string it matches. */
function expectedOutputs(technique: Technique): Record<string, unknown> {
  if (!("outputs" in technique.expect)) return {};
  return Object.fromEntries(Object.entries(technique.expect.outputs).map(([key, value]) => [key, value instanceof RegExp ? expect.stringMatching(value) : value]));
}

function describeReport(report: ExecutionReport): string {
  return report.ok ? `ok ${JSON.stringify(report.changes.outputParameters)}` : `${report.error.code}: ${report.error.message}`;
}

/** Runs every technique against a runtime with these options. */
function runCorpus(options: Parameters<typeof useRuntime>[0]): void {
  const runtime = useRuntime({ killGraceMs: 500, ...options });

  test.each(corpus.map((t) => [`${t.id} (${t.source})`, t] as const))("%s", async (_title, technique) => {
    const calls = services();
    const report = await runtime().execute(
      { bundle: attackPlugin(technique.body, PRELUDE), typeName: "Attack", context: context(), ...(technique.limits ? { limits: technique.limits } : {}) },
      calls,
    );
    if ("outputs" in technique.expect) {
      expect(report.ok, describeReport(report)).toBe(true);
      if (report.ok) expect(report.changes.outputParameters).toMatchObject(expectedOutputs(technique));
    } else {
      expect(report.ok, describeReport(report)).toBe(false);
      if (!report.ok) expect(report.error.code).toMatch(technique.expect.fails);
    }
    // Whatever happened, nothing of the host showed, no hostile write reached it, and the runtime serves on.
    const shown = JSON.stringify(report.ok ? report.changes : { message: report.error.message, details: report.error.details }) + report.trace;
    for (const marker of HOST_MARKERS) expect(shown).not.toContain(marker);
    expect(calls.calls.filter((c) => c.op === "create" && (c.args[0] as Entity).logicalName === "leak")).toEqual([]);
    const healthy = await runtime().execute({ bundle: attackPlugin(`out.ok = true;`), typeName: "Attack", context: context() });
    expect(healthy.ok, describeReport(healthy)).toBe(true);
  });
}

describe("sandbox escape corpus: public techniques adapted to plug-ins", () => {
  runCorpus({});

  test("the corpus holds at least 45 techniques, each with a source", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(45);
    for (const technique of corpus) expect(technique.source.length).toBeGreaterThan(10);
  });
});

// With pluginTime "clock" the shim replaces Date and the supervisor keeps the plug-in's timers:
// the same techniques hold against that shape of the sandbox too.
describe('sandbox escape corpus with pluginTime "clock"', () => {
  runCorpus({ pluginTime: "clock" });
});
