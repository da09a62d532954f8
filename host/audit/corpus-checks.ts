/**
 * The escape corpus as confinement checks: each technique's expectation holds, nothing of the host
 * shows in what the plug-in left, no hostile write lands and the runtime serves on.
 */
import { isDeepStrictEqual } from "node:util";
import type { ExecutionReport } from "../../runtime/supervisor.js";
import { escapeCorpus } from "./corpus.js";
import { HOST_MARKERS, PRELUDE, type Expectation, type Technique } from "./corpus/technique.js";
import { attack, describeReport, leakedWrites, stillServes, verdict, type ConfinementCheck } from "./probe.js";

/** Where an execution's outputs differ from what a technique expects (a RegExp matches a string); undefined when they match. */
export function outputMismatch(actual: Record<string, unknown>, expected: Record<string, unknown>): string | undefined {
  for (const [key, want] of Object.entries(expected)) {
    const got = actual[key];
    const matches = want instanceof RegExp ? typeof got === "string" && want.test(got) : isDeepStrictEqual(got, want);
    if (!matches) return `output ${key} was ${JSON.stringify(got)}, expected ${want instanceof RegExp ? String(want) : JSON.stringify(want)}`;
  }
  return undefined;
}

function expectationProblem(report: ExecutionReport, expectation: Expectation): string | undefined {
  if ("outputs" in expectation) return report.ok ? outputMismatch(report.changes.outputParameters, expectation.outputs) : `the execution failed where it should have finished`;
  if (report.ok) return `the execution finished where it should have failed with ${String(expectation.fails)}`;
  return expectation.fails.test(report.error.code) ? undefined : `failed with ${report.error.code}, expected ${String(expectation.fails)}`;
}

/** Text that shows a host path, module or process in what the plug-in left behind. */
function hostMarkerShown(report: ExecutionReport): string | undefined {
  const shown = JSON.stringify(report.ok ? report.changes : { message: report.error.message, details: report.error.details }) + report.trace;
  const marker = HOST_MARKERS.find((m) => shown.includes(m));
  return marker === undefined ? undefined : `the plug-in saw host text ${JSON.stringify(marker)}`;
}

/** A technique of the escape corpus as a check: its expectation holds, nothing of the host shows, no hostile write lands, the runtime serves on. */
function techniqueCheck(technique: Technique): ConfinementCheck {
  return {
    id: technique.id,
    title: technique.title,
    source: technique.source,
    area: "escape corpus",
    async run(setup) {
      const { report, services } = await attack(setup, { body: technique.body, prelude: PRELUDE, ...(technique.limits ? { limits: technique.limits } : {}) });
      return verdict(describeReport(report), [
        expectationProblem(report, technique.expect),
        hostMarkerShown(report),
        leakedWrites(services).length > 0 ? `${leakedWrites(services).length} hostile write(s) reached the host` : undefined,
        await stillServes(setup),
      ]);
    },
  };
}

/** The escape corpus, one check per technique. */
export const corpusChecks: ConfinementCheck[] = escapeCorpus.map(techniqueCheck);
