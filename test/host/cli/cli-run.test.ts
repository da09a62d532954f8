import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../../helpers/cli.js";

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-run-"));
  for (const [entry, out] of [
    ["samples/hello/plugin.ts", "hello.js"],
    ["samples/hostile/plugin.ts", "hostile.js"],
  ] as const) {
    const built = await plugbox(["build", entry, "-o", file(out)]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/^built .* KB\)/);
  }
  writeFileSync(
    file("fixtures.js"),
    `module.exports = {
      Fails: class { execute() { const E = class extends Error { constructor(m) { super(m); this.name = "InvalidPluginExecutionError"; this.status = 0; this.errorCode = -2147220891; } }; throw new E("The account is on hold."); } },
      NoExecute: class {},
      ThrowingConstructor: class { constructor() { throw new Error("missing configuration"); } execute() {} },
      notAClass: 42,
    };`,
  );
  writeFileSync(file("garbage.js"), "this is not javascript {{{");
  writeFileSync(file("not-json.json"), "{ name: Contoso");
  writeFileSync(file("no-logical-name.json"), JSON.stringify({ attributes: { name: "x" } }));
  writeFileSync(file("uses-fs.ts"), `import { readFileSync } from "node:fs";\nexport class P { execute() { readFileSync("/etc/passwd"); } }\n`);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("plugbox build and run", () => {
  it("run: the hello sample traces, changes its target and calls the organization service; exit 0", async () => {
    const run = await plugbox(["run", file("hello.js"), "--type", "HelloPlugin", "--target", "samples/hello/account.json", "--stage", "20", "--unsecure-config", "Welcome"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^ok: HelloPlugin on Create of account \(stage 20, sync\)/);
    expect(run.stdout).toContain("  Create of account at stage 20");
    expect(run.stdout).toContain('"description":"Welcome, Contoso!"');
    expect(run.stdout).toMatch(/organization\.create\(.*"subject":"Welcome Contoso".*\) → "[0-9a-f-]{36}"/);
  });

  it("run --json: prints one object with ok, trace, changes, calls, stats and the exit code", async () => {
    const run = await plugbox(["run", file("hello.js"), "--type", "HelloPlugin", "--target", "samples/hello/account.json", "--stage", "20", "--json"]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ ok: true, exitCode: 0, changes: { target: { attributes: { description: "Hello, Contoso!" } } } });
    expect(result.trace).toContain("created task");
    expect(result.calls).toHaveLength(1);
    expect(result.stats.cpuMs).toBeGreaterThan(0);
  });

  it("run: a plug-in's InvalidPluginExecutionError exits 1 with its message", async () => {
    const run = await plugbox(["run", file("fixtures.js"), "--type", "Fails", "--json"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).error).toMatchObject({ code: "PLUGIN_FAILED", message: "The account is on hold.", status: 0 });
  });

  it("run: hostile samples are stopped with a clear message and exit 3, or fail to escape (exit 1)", async () => {
    const loop = await plugbox(["run", file("hostile.js"), "--type", "EndlessLoop", "--cpu", "500"]);
    expect(loop.code).toBe(3);
    expect(loop.stderr).toContain("error [SANDBOX_CPU_LIMIT]");
    expect(loop.stderr).toContain("about to spin forever");
    const bomb = await plugbox(["run", file("hostile.js"), "--type", "MemoryBomb", "--memory", "32"]);
    expect(bomb.code).toBe(3);
    expect(bomb.stderr).toContain("error [SANDBOX_MEMORY_LIMIT]");
    const escape = await plugbox(["run", file("hostile.js"), "--type", "EscapeArtist"]);
    expect(escape.code).toBe(1);
    expect(escape.stderr).toContain("process is not defined");
    expect(escape.stderr).toContain("typeof process = undefined");
  });

  it("run: bad input exits 2 with a message that names the problem and the fix", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["run", file("missing.js"), "--type", "X"], /BUNDLE_NOT_FOUND.*plugbox build/],
      [["run", file("garbage.js"), "--type", "X"], /BUNDLE_INVALID.*does not compile/],
      [["run", file("hello.js"), "--type", "Nope"], /PLUGIN_TYPE_NOT_FOUND.*exports: HelloPlugin/],
      [["run", file("fixtures.js"), "--type", "NoExecute"], /PLUGIN_TYPE_INVALID.*execute\(serviceProvider\)/],
      [["run", file("fixtures.js"), "--type", "notAClass"], /PLUGIN_TYPE_INVALID.*not a class/],
      [["run", file("fixtures.js"), "--type", "ThrowingConstructor"], /PLUGIN_CONSTRUCTOR_FAILED.*missing configuration/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--target", file("not-json.json")], /INPUT_INVALID_JSON.*not-json\.json/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--target", file("nowhere.json")], /INPUT_NOT_FOUND/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--target", file("no-logical-name.json")], /INPUT_INVALID_JSON.*logicalName/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--bogus"], /unknown option '--bogus'/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--stage", "30"], /expected 10 \(pre-validation\), 20 \(pre-operation\) or 40/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--mode", "async", "--stage", "20"], /asynchronous steps run only at stage 40/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--timeout", "-5"], /expected a whole number/],
      [["run", file("hello.js"), "--type", "HelloPlugin", "--memory", "2"], /CLI_USAGE.*'--memory <MB>' argument '2' is invalid\. expected a whole number from 8 to 4096/],
      [["run", file("hello.js")], /required option '-t, --type <ExportName>'/],
    ];
    for (const [args, pattern] of cases) {
      const run = await plugbox(args);
      expect(run.code, `${args.join(" ")}\n${run.stderr}`).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(pattern);
    }
  });

  it("run --json: a usage error is still one JSON object with ok false and the code", async () => {
    const run = await plugbox(["run", file("hello.js"), "--type", "Nope", "--json"]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: "PLUGIN_TYPE_NOT_FOUND" } });
  });

  it("build: a missing entry or a Node.js import exits 2 naming it", async () => {
    const missing = await plugbox(["build", file("nowhere.ts"), "-o", file("x.js")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/INPUT_NOT_FOUND/);
    const nodeImport = await plugbox(["build", file("uses-fs.ts"), "-o", file("y.js")]);
    expect(nodeImport.code).toBe(2);
    expect(nodeImport.stderr).toMatch(/BUILD_FAILED[\s\S]*"node:fs" is a Node\.js module/);
  });

  it("run: a failing plug-in's stack is mapped to its TypeScript source", async () => {
    writeFileSync(file("thrower.ts"), `export class Thrower {\n  execute(): void {\n    const value = 1;\n    throw new Error("line four " + value);\n  }\n}\n`);
    expect((await plugbox(["build", file("thrower.ts"), "-o", file("thrower.js")])).code).toBe(0);
    const run = await plugbox(["run", file("thrower.js"), "--type", "Thrower", "--json"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).error.stack).toMatch(/thrower\.ts:4:\d+/);
  });

  it("--version and --help exit 0", async () => {
    expect((await plugbox(["--version"])).code).toBe(0);
    const help = await plugbox(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("run [options] <bundle>");
  });
});
