/**
 * The code → exit-status table of the CLI (host/cli/exit-statuses.ts): every code an area declares
 * has a status, each family exits with its documented status, real `plugbox` failures exit with the
 * status of the code they print, and docs/errors.md says what the tables say.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_AREAS, EXIT_STATUSES, EXIT_STATUS_MEANINGS, exitStatusOf, runExitStatus, type ErrorCode } from "../../../dist/host/testing/internal.js";
import type { ErrorFamily } from "../../../dist/sdk/index.js";
import { plugbox, repo } from "../../helpers/cli.js";

/** The statuses the README and docs/errors.md promise, per family. */
const documented: Record<ErrorFamily, number> = { plugin: 1, internal: 1, usage: 2, limit: 3, isolation: 4, environment: 5 };

const declared = ERROR_AREAS.flatMap(({ area, table }) => Object.entries(table).map(([code, info]) => ({ area, code, ...info })));

describe("every declared error code has an exit status", () => {
  it("the CLI's table holds exactly the codes the areas declare, each declared once", () => {
    const codes = declared.map((d) => d.code);
    expect(new Set(codes).size, "a code declared in two areas").toBe(codes.length);
    expect(Object.keys(EXIT_STATUSES).sort()).toEqual([...codes].sort());
  });

  for (const { area, code, family } of declared) {
    it(`${code} (${area}, ${family}) exits ${documented[family]}`, () => {
      expect(EXIT_STATUSES[code as ErrorCode]).toBe(documented[family]);
      expect(exitStatusOf(code)).toBe(documented[family]);
      expect(EXIT_STATUS_MEANINGS[EXIT_STATUSES[code as ErrorCode]].families).toContain(family);
    });
  }

  it("each family exits with its documented status: plugin and internal 1, usage 2, limit 3, isolation 4, environment 5", () => {
    for (const [status, { families }] of Object.entries(EXIT_STATUS_MEANINGS)) {
      for (const family of families) expect(documented[family], family).toBe(Number(status));
    }
    expect(Object.values(EXIT_STATUS_MEANINGS).flatMap((m) => m.families).sort()).toEqual(Object.keys(documented).sort());
  });

  it("web codes: a policy refusal exits 4, a limit 3, a network failure 1, a bad policy 2", () => {
    for (const code of ["WEB_SCHEME", "WEB_USERINFO", "WEB_IP_LITERAL", "WEB_LOOPBACK", "WEB_PRIVATE_ADDRESS", "WEB_PORT", "WEB_NOT_ALLOWED", "WEB_INVALID_URL"] as const) expect(exitStatusOf(code), code).toBe(4);
    for (const code of ["WEB_TIMEOUT", "WEB_TOO_LARGE", "WEB_TOO_MANY_REDIRECTS", "WEB_TOO_MANY_REQUESTS"] as const) expect(exitStatusOf(code), code).toBe(3);
    for (const code of ["WEB_DNS", "WEB_CONNECTION_FAILED", "WEB_INVALID_REQUEST"] as const) expect(exitStatusOf(code), code).toBe(1);
    expect(exitStatusOf("WEB_POLICY_INVALID")).toBe(2);
  });

  it("a table that leaves a code out does not compile (npx tsc -p test checks the expected error)", () => {
    const { CLI_USAGE: _left, ...rest } = EXIT_STATUSES;
    // @ts-expect-error: CLI_USAGE has no exit status
    const incomplete: typeof EXIT_STATUSES = rest;
    expect(Object.keys(incomplete)).toHaveLength(Object.keys(EXIT_STATUSES).length - 1);
  });

  it("a code no area declares is a defect: exit 1", () => {
    expect(exitStatusOf("NO_SUCH_CODE")).toBe(1);
  });

  it("a run exits 0 when it passed, 4 when the plug-in tried to break an isolation rule even if it caught the error, else its error's status", () => {
    expect(runExitStatus({ ok: true, violations: [] })).toBe(0);
    expect(runExitStatus({ ok: false, error: { code: "PLUGIN_FAILED", message: "x" }, violations: ["web.fetch: refused"] })).toBe(4);
    expect(runExitStatus({ ok: false, error: { code: "SANDBOX_TIMEOUT", message: "x" }, violations: [] })).toBe(3);
  });
});

describe("real CLI failures exit with the status of the code they print", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-exit-statuses-"));
    writeFileSync(
      path.join(dir, "fixtures.js"),
      `module.exports = {
        Fails: class { execute() { const E = class extends Error { constructor(m) { super(m); this.name = "InvalidPluginExecutionError"; } }; throw new E("on hold"); } },
        Spins: class { execute() { for (;;) {} } },
        ReachesLoopback: class { async execute(sp) { await sp.getService("IWebClient").fetch("http://localhost/"); } },
      };`,
    );
    writeFileSync(path.join(dir, "empty.db"), "");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const rows: Array<{ what: string; args: string[]; code: ErrorCode; exit: number }> = [
    { what: "a plug-in's InvalidPluginExecutionError", args: ["run", "fixtures.js", "--type", "Fails"], code: "PLUGIN_FAILED", exit: 1 },
    { what: "a bundle that does not exist", args: ["run", "missing.js", "--type", "Fails"], code: "BUNDLE_NOT_FOUND", exit: 2 },
    { what: "a stage commander refuses", args: ["run", "fixtures.js", "--type", "Fails", "--stage", "30"], code: "CLI_USAGE", exit: 2 },
    { what: "a plug-in over its CPU limit", args: ["run", "fixtures.js", "--type", "Spins", "--cpu", "200"], code: "SANDBOX_CPU_LIMIT", exit: 3 },
    { what: "a plug-in reaching for localhost", args: ["run", "fixtures.js", "--type", "ReachesLoopback"], code: "WEB_LOOPBACK", exit: 4 },
    { what: "a store file truncated to nothing", args: ["jobs", "list", "--db", "empty.db"], code: "STORE_CORRUPT", exit: 5 },
  ];
  for (const row of rows) {
    it(`${row.what}: ${row.code}, exit ${row.exit}`, { timeout: 60_000 }, async () => {
      const ran = await plugbox(row.args, dir);
      expect(ran.stderr).toMatch(new RegExp(`error \\[${row.code}\\]`));
      expect(EXIT_STATUSES[row.code]).toBe(row.exit);
      expect(ran.code, ran.stderr).toBe(row.exit);
    });
  }
});

describe("docs/errors.md", () => {
  it("is what `npm run docs:errors` writes from the tables (run it after changing a table)", async () => {
    const checked = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(repo, "scripts/errors-doc.mjs"), "--check"], { cwd: repo, timeout: 30_000 }, (error, _stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
    expect(checked.stderr).toBe("");
    expect(checked.code).toBe(0);
  });
});
