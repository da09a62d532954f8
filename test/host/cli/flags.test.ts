/**
 * The CLI flags derived from the option tables (host/cli/flags.ts): each flag's help names the
 * default and the range its table declares, a value out of that range exits 2 with CLI_USAGE naming
 * the flag and the range, and the flag refuses exactly what the option's schema refuses.
 */
import { describe, expect, it } from "vitest";
import { runJobsInProcesses } from "../../../dist/host/index.js";
import { derivedFlags, optionOf, resolveJobRunnerOptions, resolveLimits, resolveServeOptions, type DerivedFlag } from "../../../dist/host/testing/internal.js";
import { plugbox } from "../../helpers/cli.js";

/** The arguments a command needs besides the flag, so that only the flag can be refused. */
const commands: Record<keyof typeof derivedFlags, string[]> = {
  run: ["run", "nowhere.js", "--type", "Nope"],
  "jobs run": ["jobs", "run", "--manifest", "nowhere.json", "--db", "nowhere.db"],
  serve: ["serve", "--manifest", "nowhere.json"],
};

/** Whether the option's schema takes `value`, through the resolver that reads the option. */
async function schemaTakes(flag: DerivedFlag, value: number): Promise<boolean> {
  const refused = (error: unknown) => {
    const { code, message } = error as { code: string; message: string };
    if (code === "OPTIONS_INVALID" || (code === "JOB_PROCESSES_INVALID" && message.includes("number of job processes"))) return false;
    throw error;
  };
  try {
    if (flag.table === derivedFlags.run[0]!.table) resolveLimits({ [flag.key]: value });
    else if (flag.key === "processes") await runJobsInProcesses({ manifest: {}, db: ":memory:", processes: value }).catch((error: unknown) => {
      if (!(error as Error).message.includes(":memory:")) throw error;
    });
    else if (flag.table === derivedFlags.serve[0]!.table) resolveServeOptions({ [flag.key]: value });
    else resolveJobRunnerOptions({ [flag.key]: value });
    return true;
  } catch (error) {
    return refused(error);
  }
}

function flagTakes(flag: DerivedFlag, text: string): boolean {
  try {
    optionOf(flag).parseArg!(text, undefined);
    return true;
  } catch (error) {
    expect((error as { code?: string }).code).toBe("commander.invalidArgument");
    return false;
  }
}

/** A flag's entry in `--help`: its line and the lines its description wraps onto. */
function helpEntry(help: string, flags: string): string {
  const lines = help.split("\n");
  const at = lines.findIndex((line) => line.trimStart().startsWith(`${flags} `));
  expect(at, `${flags} in the help`).toBeGreaterThanOrEqual(0);
  const indent = lines[at]!.search(/\S/);
  const rest = lines.slice(at + 1);
  const end = rest.findIndex((line) => line.search(/\S/) <= indent + 2);
  return [lines[at]!, ...rest.slice(0, end === -1 ? rest.length : end)].map((line) => line.trim()).join(" ");
}

describe.each(Object.entries(derivedFlags) as Array<[keyof typeof derivedFlags, readonly DerivedFlag[]]>)("plugbox %s: the flags derived from option tables", (command, flags) => {
  it("has flags to walk", () => {
    expect(flags.length).toBeGreaterThan(0);
  });

  it("--help names each flag's default and range from its table", async () => {
    const help = await plugbox([...commands[command].slice(0, command.split(" ").length), "--help"]);
    expect(help.code, help.stderr).toBe(0);
    for (const flag of flags) {
      const entry = flag.table[flag.key]!;
      const text = helpEntry(help.stdout, flag.flags);
      expect(text, flag.flags).toContain(entry.description);
      expect(text, flag.flags).toContain(`(${entry.unit}, default: ${flag.cliDefault ?? entry.default}, from ${entry.min} to ${entry.max})`);
    }
  });

  it.each(flags.map((flag) => [flag.flags, flag] as const))("%s: a value out of its range exits 2 with CLI_USAGE naming the flag and the range", async (_, flag) => {
    const { min, max, unit } = flag.table[flag.key]!;
    const values = [min - 1, max + 1];
    const runs = await Promise.all(values.map((value) => plugbox([...commands[command], flag.flags.split(" ")[0]!, String(value)])));
    for (const [i, ran] of runs.entries()) {
      const value = values[i]!;
      expect(ran.code, ran.stderr).toBe(2);
      expect(ran.stderr).toContain(`plugbox: error [CLI_USAGE]: option '${flag.flags}' argument '${value}' is invalid. expected a whole number from ${min} to ${max} (${unit})`);
    }
  });

  it.each(flags.map((flag) => [flag.flags, flag] as const))("%s: the flag refuses exactly what the option's schema refuses", async (_, flag) => {
    const { min, max } = flag.table[flag.key]!;
    const values = [min - 1, min, min + 1, Math.floor((min + max) / 2), max - 1, max, max + 1];
    for (const value of values) {
      const schema = await schemaTakes(flag, value);
      expect(flagTakes(flag, String(value)), `${flag.flags} ${value}`).toBe(schema);
      expect(schema, `${flag.flags} ${value}`).toBe(value >= min && value <= max);
    }
    expect(await schemaTakes(flag, min + 0.5)).toBe(false);
    for (const text of [String(min + 0.5), "ten", "", `${max}x`, "1e3"]) expect(flagTakes(flag, text), `${flag.flags} ${JSON.stringify(text)}`).toBe(false);
  });
});
