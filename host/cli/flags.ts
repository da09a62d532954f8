/**
 * CLI flags derived from the option tables (`OptionTable`, runtime/schema.ts): each flag reads the
 * one declaration of its option, so its help names the real default and range, and a value the
 * option's schema refuses is refused as the flag's (CLI_USAGE, exit 2, naming the flag and the range).
 */
import { InvalidArgumentError, Option } from "commander";
import { sandboxLimitTable, type SandboxLimits } from "../../runtime/options.js";
import { integerEntry, v, type IntegerOption, type OptionTable } from "../../runtime/schema.js";
import { jobProcessesTable } from "../job-processes.js";
import { jobRunnerTable } from "../jobs/options.js";
import { serveTable } from "../serve/options.js";

/** The help line's tail of an entry: ` (ms, default: 120000, from 1 to 3600000)`. */
export function rangeText(entry: IntegerOption, shownDefault = entry.default): string {
  return ` (${entry.unit}, default: ${shownDefault}, from ${entry.min} to ${entry.max})`;
}

/**
 * The flag of `table[key]`, such as `flagFor(sandboxLimitTable, "memoryMb", "--memory <MB>")`. It
 * sets no value when not given (the option's own default applies where it is resolved); `cliDefault`
 * is for a command whose flag stands for another default (`jobs run --processes` is 1: in this process).
 */
export function flagFor<K extends string>(table: OptionTable<K>, key: K, flags: string, cliDefault?: number): Option {
  const entry = table[key];
  const schema = integerEntry(entry);
  return new Option(flags, `${entry.description}${rangeText(entry, cliDefault)}`).argParser((value: string) => {
    const n = /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!v.is(schema, n)) throw new InvalidArgumentError(`expected a whole number from ${entry.min} to ${entry.max} (${entry.unit})`);
    return n;
  });
}

/** A flag read from an option table: the command it belongs to, its flag, and its table entry. */
export interface DerivedFlag<K extends string = string> {
  flags: string;
  table: OptionTable<K>;
  key: K;
  cliDefault?: number;
}

const derived = <K extends string>(table: OptionTable<K>, key: K, flags: string, cliDefault?: number): DerivedFlag => ({ flags, table: table as OptionTable, key, ...(cliDefault === undefined ? {} : { cliDefault }) });

/** Every sandbox limit has a flag of `plugbox run`: the mapped type makes a new limit without one a compile error. */
const limitFlags: { [K in keyof SandboxLimits]: string } = {
  wallTimeMs: "--timeout <ms>",
  cpuTimeMs: "--cpu <ms>",
  memoryMb: "--memory <MB>",
  traceBytes: "--trace-bytes <n>",
  maxHostCalls: "--max-calls <n>",
  maxConcurrentHostCalls: "--max-concurrent-calls <n>",
  maxHostCallBytes: "--max-call-bytes <n>",
  maxResultBytes: "--max-result-bytes <n>",
};

/** `jobs run` without --processes runs the jobs in this process. */
export const IN_THIS_PROCESS = 1;

/** Every flag derived from an option table, by the command that has it. */
export const derivedFlags: Readonly<Record<"run" | "jobs run" | "serve", readonly DerivedFlag[]>> = {
  run: (Object.entries(limitFlags) as Array<[keyof SandboxLimits, string]>).map(([key, flags]) => derived(sandboxLimitTable, key, flags)),
  "jobs run": [derived(jobProcessesTable, "processes", "--processes <n>", IN_THIS_PROCESS), derived(jobRunnerTable, "leaseMs", "--lease-ms <ms>")],
  serve: [
    derived(serveTable, "port", "--port <n>"),
    derived(serveTable, "shutdownGraceMs", "--grace-ms <ms>"),
    derived(jobRunnerTable, "leaseMs", "--lease-ms <ms>"),
    derived(jobRunnerTable, "pollMs", "--poll-ms <ms>"),
  ],
};

export const optionOf = (flag: DerivedFlag): Option => flagFor(flag.table, flag.key, flag.flags, flag.cliDefault);
