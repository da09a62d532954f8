/** A job runner's options: each declared once (range, unit, default), frozen, and checked with the options schema. */
import { OptionsError } from "../../runtime/errors.js";
import { defaultsOf, formatPath, integerEntries, optionTable, parseOptions, strictOptions, withDefaults, type OptionTable } from "../../runtime/schema.js";
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

type JobRunnerNumbers = Required<Omit<JobRunnerOptions, "clock">>;

/** Each option declared once; the schema, the defaults and `plugbox jobs run --lease-ms` read it. */
export const jobRunnerTable: OptionTable<keyof JobRunnerNumbers> = optionTable({
  leaseMs: { min: 100, max: 86_400_000, unit: "ms", default: 180_000, description: "how long a job is leased: a job whose process dies runs again once its lease runs out" },
  pollMs: { min: 1, max: 3_600_000, unit: "ms", default: 1_000, description: "how often to look for jobs when nothing wakes the runner" },
  backoffBaseMs: { min: 0, max: 3_600_000, unit: "ms", default: 1_000, description: "first retry delay; each further attempt doubles it" },
  concurrency: { min: 1, max: 1_024, unit: "jobs", default: 8, description: "jobs run at once" },
});

export const jobRunnerDefaults: Readonly<JobRunnerNumbers> = defaultsOf(jobRunnerTable);

const jobRunnerSchema = strictOptions(integerEntries(jobRunnerTable, (min, max) => `must be a whole number from ${min} to ${max}`));

/** Fills in the defaults and checks each option; throws OPTIONS_INVALID naming it (`jobs.leaseMs`) and the rule. The clock is the caller's to use. */
export function resolveJobRunnerOptions(options: JobRunnerOptions = {}, path = "jobs"): Readonly<JobRunnerNumbers> {
  const { clock: _clock, ...numbers } = options;
  const given = parseOptions(jobRunnerSchema, numbers, (at, message) => new OptionsError("OPTIONS_INVALID", `${formatPath(path, at)} ${message}`));
  return withDefaults<JobRunnerNumbers>(jobRunnerDefaults, given);
}
