/**
 * Checks that no state outlives its execution, bundle or step: what a plug-in plants in globals,
 * prototypes and intrinsics, and services it keeps for later.
 */
import { attack, codeOf, sampleContext, verdict, type ConfinementCheck } from "./probe.js";

/**
 * One plug-in that, told to plant, leaves state in every place an isolate keeps it (a global,
 * polluted prototypes, a replaced intrinsic), and otherwise reports what it finds. `variant`
 * makes a second bundle with the same code.
 */
function stateBody(variant = ""): string {
  return `${variant}
    if (ctx.sharedVariables.plant) {
      globalThis.__auditState = "planted"; Object.prototype.__auditPolluted = true; Array.prototype.__auditPolluted = true; JSON.parse = () => "hijacked";
      if (ctx.sharedVariables.fail) throw new Error("fault");
    }
    out.found = [typeof globalThis.__auditState, typeof ({}).__auditPolluted, typeof [].__auditPolluted, typeof JSON.parse("1")].join();`;
}
const CLEAN = "undefined,undefined,undefined,number";

interface StateStep {
  isolation: "fresh" | "reuse";
  key: string;
  otherBundle?: boolean;
}

function stateCheck(id: string, title: string, plant: StateStep & { fail?: boolean }, look: StateStep): ConfinementCheck {
  return {
    id,
    title,
    source: "vm2 issue #185 (contexts shared between scripts); Dataverse plug-in caching guidance",
    area: "state",
    async run(setup) {
      const tag = Math.random().toString(36).slice(2);
      const planted = await attack(setup, { body: stateBody(), isolation: plant.isolation, instanceKey: `${plant.key}-${tag}`, context: sampleContext({ sharedVariables: { plant: true, fail: plant.fail === true } }) });
      const looked = await attack(setup, { body: stateBody(look.otherBundle ? "// another bundle" : ""), isolation: look.isolation, instanceKey: `${look.key}-${tag}` });
      const found = looked.report.ok ? looked.report.changes.outputParameters.found : codeOf(looked.report);
      return verdict(`the planting execution ended ${codeOf(planted.report)}; the next found ${JSON.stringify(found)} (clean: ${CLEAN})`, [found === CLEAN ? undefined : "state survived"]);
    },
  };
}

export const stateChecks: ConfinementCheck[] = [
  stateCheck("state-fresh-between-executions", "fresh isolation: nothing one execution plants (globals, polluted prototypes, replaced intrinsics) survives into the next", { isolation: "fresh", key: "a" }, { isolation: "fresh", key: "a" }),
  stateCheck("state-reuse-between-bundles", "reuse isolation: state one bundle plants never reaches another bundle", { isolation: "reuse", key: "shared" }, { isolation: "reuse", key: "shared", otherBundle: true }),
  stateCheck("state-reuse-between-steps", "reuse isolation: two steps of the same bundle (two instance keys) share no state", { isolation: "reuse", key: "step-a" }, { isolation: "reuse", key: "step-b" }),
  stateCheck("state-reuse-dropped-after-fault", "reuse isolation: an instance that failed is dropped, with everything it planted", { isolation: "reuse", key: "faulty", fail: true }, { isolation: "reuse", key: "faulty" }),
  {
    id: "stale-service-handle",
    title: "reuse isolation: a service kept from an earlier execution is refused in the next with SANDBOX_CALL_AFTER_END",
    source: "vm2 GHSA-cchq-frgv-rjh5 (references kept across runs); plugbox issue 15",
    area: "state",
    async run(setup) {
      // One bundle (one reused instance): the first execution keeps its service, the second uses the kept one.
      const body = `if (ctx.sharedVariables.keep) { globalThis.__keptOrg = org; out.kept = true; } else { await globalThis.__keptOrg.create({ logicalName: "leak" }); }`;
      // The second execution must reach the instance the first kept: a worker replaced in between (by
      // another check's fatal allocation) moves the step's instances to another worker, so try again.
      let keep: Awaited<ReturnType<typeof attack>>;
      let use: Awaited<ReturnType<typeof attack>>;
      let attempts = 0;
      do {
        const key = `stale-${Math.random().toString(36).slice(2)}`;
        keep = await attack(setup, { body, isolation: "reuse", instanceKey: key, context: sampleContext({ sharedVariables: { keep: true } }) });
        use = await attack(setup, { body, isolation: "reuse", instanceKey: key });
      } while (!use.report.stats.isolateReused && ++attempts < 3);
      const { report, services } = use;
      return verdict(`keeping ended ${codeOf(keep.report)}; using ended ${codeOf(report)}`, [
        keep.report.ok ? undefined : "the keeping execution failed",
        codeOf(report) === "SANDBOX_CALL_AFTER_END" ? undefined : `using the kept service ended with ${codeOf(report)}`,
        services.calls.some((c) => c.op === "create") ? "the kept service's write reached the host" : undefined,
      ]);
    },
  },
];
