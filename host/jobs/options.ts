/** A job runner's options: defaults, frozen, and the check of each. */
import { OptionsError } from "../../runtime/errors.js";
import type { Clock } from "../ids.js";

export interface JobRunnerOptions {
  /** How long a job is leased; past it, another runner may take the job over. @default 180000 */
  leaseMs?: number;
  /** How often to look for jobs when nothing wakes the runner, ms. @default 1000 */
  pollMs?: number;
  /** First retry delay; each further attempt doubles it. @default 1000 */
  backoffBaseMs?: number;
  /** Jobs run at once (their posts to one endpoint go out in batches). @default 8 */
  concurrency?: number;
  /** The host's clock: leases, back-off and the poll are measured and waited on with it. @default systemClock */
  clock?: Clock;
}

export const jobRunnerDefaults: Readonly<{ leaseMs: number; pollMs: number; backoffBaseMs: number; concurrency: number }> = Object.freeze({ leaseMs: 180_000, pollMs: 1_000, backoffBaseMs: 1_000, concurrency: 8 });

const jobRunnerRanges: Record<keyof typeof jobRunnerDefaults, [min: number, max: number]> = {
  leaseMs: [100, 86_400_000],
  pollMs: [1, 3_600_000],
  backoffBaseMs: [0, 3_600_000],
  concurrency: [1, 1_024],
};

/** Fills in the defaults and checks each option; throws OPTIONS_INVALID naming it (`jobs.leaseMs`) and the rule. */
export function resolveJobRunnerOptions(options: JobRunnerOptions = {}, path = "jobs"): Readonly<typeof jobRunnerDefaults> {
  const out: Record<string, number> = { ...jobRunnerDefaults };
  for (const key of Object.keys(jobRunnerRanges) as Array<keyof typeof jobRunnerDefaults>) {
    const value = options[key];
    if (value === undefined) continue;
    const [min, max] = jobRunnerRanges[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new OptionsError("OPTIONS_INVALID", `${path}.${key} must be a whole number from ${min} to ${max}; got ${JSON.stringify(value) ?? String(value)}`);
    }
    out[key] = value;
  }
  return Object.freeze(out) as Readonly<typeof jobRunnerDefaults>;
}

