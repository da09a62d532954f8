/**
 * What a new user tripped over, each through the real `plugbox` bin: every answer says what
 * happened and what to do, in plugbox's one error format, never an "internal error" with a stack.
 */
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../../helpers/cli.js";

let dir: string;
const file = (name: string) => path.join(dir, name);

/** No line of the output is a stack frame outside the plug-in's own sources. */
function expectNoHostStack(text: string): void {
  expect(text).not.toContain("internal error");
  expect(text).not.toContain("node_modules");
  expect(text).not.toMatch(/^\s+at .+\/dist\/.+:\d+:\d+\)?$/m);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-newcomer-"));
  cpSync(path.join(repo, "samples/pipeline"), dir, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
  const built = await plugbox(["build", "samples/pipeline/plugins.ts", "-o", file("accounts.bundle.js")], repo);
  expect(built.code, built.stderr).toBe(0);
  const hostile = await plugbox(["build", "samples/hostile/plugin.ts", "-o", file("hostile.bundle.js")], repo);
  expect(hostile.code, hostile.stderr).toBe(0);
  writeFileSync(file("nameless.json"), JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: {} } } }));
  writeFileSync(file("nameless-target.json"), JSON.stringify({ logicalName: "account", attributes: {} }));
  writeFileSync(file("no-class.ts"), "export const prefix = \"ACC\";\nexport function numbered(name: string) { return `${prefix}-${name}`; }\n");
  writeFileSync(file("empty.ts"), "const unused = 1;\n");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("exec without --db", () => {
  it("says the system job its async step queued is not kept, and how to keep or run it; exit 0", async () => {
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json"], dir);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toMatch(/queued system job [0-9a-f-]{36}/);
    expect(exec.stderr).toContain("plugbox: warning: 1 system job was queued in the in-memory store and not kept (exec ran without --db)");
    expect(exec.stderr).toContain("--run-jobs");
    expect(exec.stderr).toContain("--db <file>");
  });

  it("--json carries the warning; --run-jobs and --db each leave nothing to warn about", async () => {
    const json = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--json"], dir);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, warnings: [expect.stringContaining("not kept")] });
    const ran = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--run-jobs"], dir);
    expect(ran.stdout).toMatch(/job [0-9a-f-]{36}: succeeded/);
    expect(ran.stderr).not.toContain("warning");
    const kept = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", file("kept.db")], dir);
    expect(kept.stderr).not.toContain("warning");
  });
});

describe("a mistyped --db", () => {
  for (const args of [["jobs", "list"], ["jobs", "show", "00000000-0000-4000-8000-000000000001"], ["jobs", "run", "--manifest", "plugbox.json"], ["data", "export"], ["data", "backup", "-o", "b.db"]]) {
    it(`${args.slice(0, 2).join(" ")} refuses a store file that does not exist and leaves none behind: exit 2, INPUT_NOT_FOUND`, async () => {
      const ran = await plugbox([...args, "--db", "plugbx.db"], dir);
      expect(ran.code, ran.stdout).toBe(2);
      expect(ran.stderr).toContain("plugbox: error [INPUT_NOT_FOUND]: the store plugbx.db does not exist (check --db;");
      expect(ran.stdout).not.toContain("no system jobs");
      expect(existsSync(file("plugbx.db"))).toBe(false);
    });
  }

  it("data import still makes a new store: that is how one starts", async () => {
    writeFileSync(file("records.json"), JSON.stringify({ account: [{ id: "00000000-0000-4000-8000-000000000001", attributes: { name: "Contoso" } }] }));
    const imported = await plugbox(["data", "import", "records.json", "--db", "new.db"], dir);
    expect(imported.code, imported.stderr).toBe(0);
    expect(existsSync(file("new.db"))).toBe(true);
  });
});

describe("exec when a step fails", () => {
  it("prints the message once, with the plug-in's own code and its stack in the TypeScript source", async () => {
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "nameless.json"], dir);
    expect(exec.code).toBe(1);
    expect(exec.stderr.split("An account needs a name.").length - 1).toBe(1);
    expect(exec.stderr).toContain("plugbox: error [PIPELINE_STEP_FAILED]: step Number new accounts failed at stage 20: An account needs a name.");
    expect(exec.stderr).toContain("inner error [PLUGIN_FAILED], thrown at:");
    expect(exec.stderr).toMatch(/^\s+at AccountNumbering\.execute \(.*samples\/pipeline\/plugins\.ts:\d+:\d+\)$/m);
    expect(exec.stderr).toContain("stage 20 sync: Number new accounts — failed (");
  });

  it("--json gives the inner code and the mapped stack", async () => {
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "nameless.json", "--json"], dir);
    const out = JSON.parse(exec.stdout) as { error: { code: string; innerCode: string; stack: string } };
    expect(out.error).toMatchObject({ code: "PIPELINE_STEP_FAILED", innerCode: "PLUGIN_FAILED" });
    expect(out.error.stack).toMatch(/plugins\.ts:\d+:\d+/);
  });
});

describe("run and build", () => {
  it("run takes a plug-in's .ts source and bundles it first, with stacks in that source", async () => {
    const run = await plugbox(["run", "samples/pipeline/plugins.ts", "--type", "AccountNumbering", "--target", file("nameless-target.json"), "--stage", "20"], repo);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error [PLUGIN_FAILED]: An account needs a name.");
    expect(run.stderr).toMatch(/at AccountNumbering\.execute \(.*samples\/pipeline\/plugins\.ts:\d+:\d+\)/);
    expect(run.stderr).not.toContain("BUNDLE_INVALID");
  });

  it("run of an ES module .js (not a bundle) says to bundle it: exit 2, BUNDLE_INVALID", async () => {
    writeFileSync(file("esm.js"), "export class Plugin { execute() {} }\n");
    const run = await plugbox(["run", "esm.js", "--type", "Plugin"], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("error [BUNDLE_INVALID]: the bundle esm.js does not compile: Unexpected token 'export'");
    expect(run.stderr).toContain("it is an ES module, not a bundle: bundle it with `plugbox build <module> -o <bundle.js>`");
  });

  it("build refuses a module that exports no class, naming the module and what it exports: exit 2, BUILD_FAILED", async () => {
    const built = await plugbox(["build", "no-class.ts", "-o", "no-class.bundle.js"], dir);
    expect(built.code).toBe(2);
    expect(built.stderr).toContain("plugbox: error [BUILD_FAILED]: no-class.ts exports numbered, prefix, none of them a class; a plug-in module exports its plug-in classes");
    expect(existsSync(file("no-class.bundle.js"))).toBe(false);
    const empty = await plugbox(["build", "empty.ts", "-o", "empty.bundle.js"], dir);
    expect(empty.stderr).toContain("plugbox: error [BUILD_FAILED]: empty.ts exports nothing;");
  });

  it("run of MemoryBomb reports the heap as unknown (V8 disposed of the isolate at its limit), not 0.0 MB", async () => {
    const run = await plugbox(["run", "hostile.bundle.js", "--type", "MemoryBomb", "--memory", "64"], dir);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("error [SANDBOX_MEMORY_LIMIT]");
    expect(run.stderr).toContain("heap unknown,");
    expect(run.stderr).not.toContain("heap 0.0 MB");
    const json = await plugbox(["run", "hostile.bundle.js", "--type", "MemoryBomb", "--memory", "64", "--json"], dir);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, stats: { heapUsedBytes: null } });
  });
});

describe("listen", () => {
  for (const [what, connectionString, says] of [
    ["no key", "Endpoint=sb://localhost:5672;", "it lacks a SharedAccessKeyName and SharedAccessKey"],
    ["a key name without its key", "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey", "it lacks the SharedAccessKey that goes with SharedAccessKeyName"],
    ["no sb:// endpoint", "SharedAccessKeyName=k;SharedAccessKey=v", "it lacks an Endpoint=sb://<host>"],
  ] as const) {
    for (const entity of [["--queue", "q"], ["--event-hub", "h"]]) {
      it(`a connection string with ${what} (${entity[0]}) is one usage error line: exit 2, CLI_USAGE`, async () => {
        const ran = await plugbox(["listen", "--connection-string", connectionString, ...entity, "--timeout", "1000"], dir);
        expect(ran.code).toBe(2);
        expect(ran.stderr.trim().split("\n")).toEqual([expect.stringContaining(`plugbox: error [CLI_USAGE]: --connection-string is malformed: ${says}`)]);
        expectNoHostStack(ran.stderr);
      });
    }
  }

  it("--timeout and --max must be whole numbers", async () => {
    const ran = await plugbox(["listen", "--connection-string", "Endpoint=sb://localhost:5672;SharedAccessKeyName=k;SharedAccessKey=v", "--queue", "q", "--timeout", "soon"], dir);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("plugbox: error [CLI_USAGE]: option '--timeout <ms>' argument 'soon' is invalid. expected a whole number, 1 or more");
  });
});

describe("help and usage errors", () => {
  it("every jobs and data subcommand says what it does", async () => {
    for (const [group, subcommands] of [["jobs", ["list", "show", "retry", "cancel", "run"]], ["data", ["import", "export", "backup", "restore"]]] as const) {
      const help = await plugbox([group, "--help"]);
      expect(help.code).toBe(0);
      for (const sub of subcommands) {
        const line = help.stdout.split("\n").find((l) => l.trimStart().startsWith(`${sub} `));
        expect(line, `${group} ${sub}`).toBeDefined();
        expect(line!.replace(/^\s*\S+(\s+\[options\])?(\s+<\w+>)?/, "").trim(), `${group} ${sub} has a description`).not.toBe("");
      }
    }
    const list = await plugbox(["jobs", "list", "--help"]);
    expect(list.stdout).toContain("--db <path>       the store file (it must exist)");
  });

  it("commander's refusals print in plugbox's format with exit 2: plugbox: error [CLI_USAGE]: …", async () => {
    for (const args of [["jobs", "lis"], ["run"], ["exec", "--manifest"], ["build", "x.ts", "--bogus"]]) {
      const ran = await plugbox(args, dir);
      expect(ran.code, args.join(" ")).toBe(2);
      expect(ran.stderr, args.join(" ")).toMatch(/^plugbox: error \[CLI_USAGE\]: /);
      expect(ran.stderr).not.toMatch(/^error:/m);
    }
  });
});
