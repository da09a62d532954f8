/**
 * `plugbox audit` (issue 20): the whole audit runs here and must pass, since a failed confinement
 * check is a defect; a sandbox weakened on purpose (through a test-only runtime option) makes it
 * fail; a widened web policy is reported; bad input becomes findings while the checks still run;
 * the CLI prints a readable report and a documented JSON schema; each bundle's capabilities are
 * reported, and two versions of a bundle are compared.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { confinementChecks, escapeCorpus, runAudit, type AuditReport, buildContext, auditExitStatus } from "../../../dist/host/testing/internal.js";
import { createSandboxRuntime } from "../../../dist/host/index.js";
import { Entity, parseRemoteExecutionContext, serializeRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { plugbox, repo } from "../../helpers/cli.js";

const AUDIT_TIMEOUT_MS = 180_000;

function failedIds(report: AuditReport): string[] {
  return report.checks.filter((c) => !c.passed).map((c) => c.id);
}

function failures(report: AuditReport): string {
  return report.checks
    .filter((c) => !c.passed)
    .map((c) => `${c.id}: ${c.evidence}`)
    .join("\n");
}

describe("the confinement checks catalogue", () => {
  test("holds at least 40 checks, each with a unique id, a title, a source and an area, the whole escape corpus among them", () => {
    expect(confinementChecks.length).toBeGreaterThanOrEqual(40);
    const ids = confinementChecks.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const check of confinementChecks) {
      expect(check.title.length, check.id).toBeGreaterThan(20);
      expect(check.source.length, check.id).toBeGreaterThan(10);
      expect(check.area.length, check.id).toBeGreaterThan(0);
    }
    for (const technique of escapeCorpus) expect(ids).toContain(technique.id);
  });

  test("covers every class of attack issue 20 lists", () => {
    const areas = new Set(confinementChecks.map((c) => c.area));
    for (const area of ["escape corpus", "thrown values", "realms", "cpu", "memory", "output", "host calls", "calls after the end", "forged codes", "state", "web"]) expect(areas).toContain(area);
  });

  test("plug-ins cannot set the test-only unsafeKeepWebAssembly option to anything but a boolean", () => {
    expect(() => createSandboxRuntime({ unsafeKeepWebAssembly: "yes" } as never)).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.unsafeKeepWebAssembly must be true or false") }));
  });
});

describe("runAudit", () => {
  let report: AuditReport;
  const progress: string[] = [];

  beforeAll(async () => {
    report = await runAudit({ onProgress: (result, index, total) => progress.push(`${index}/${total} ${result.id}`) });
  }, AUDIT_TIMEOUT_MS);

  test("with the default configuration, every confinement check passes and the exit code is 0", () => {
    expect(failures(report)).toBe("");
    expect(report.summary).toMatchObject({ passed: confinementChecks.length, failed: 0, findings: 0 });
    expect(auditExitStatus(report)).toBe(0);
  });

  test("each check reports its id, title, source, evidence and duration, and progress is reported check by check", () => {
    for (const check of report.checks) {
      expect(check).toEqual(expect.objectContaining({ id: expect.any(String), title: expect.any(String), source: expect.any(String), passed: true, evidence: expect.any(String), ms: expect.any(Number) }));
      expect(check.evidence.length).toBeGreaterThan(0);
    }
    expect(progress).toHaveLength(confinementChecks.length);
    expect(progress.at(-1)).toBe(`${confinementChecks.length}/${confinementChecks.length} ${confinementChecks.at(-1)!.id}`);
  });

  test("the environment names Node, isolated-vm and its binding, the limits and web policy in force, a hardened default realm, and no OS confinement plugbox does not add", () => {
    const env = report.environment;
    expect(env.node).toBe(process.version);
    expect(env.isolatedVm.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(env.isolatedVm.binding).toMatch(/isolated[-_]vm.*\.node$/);
    expect(env.limits.cpuTimeMs).toBe(60_000);
    expect(env.webPolicy).toMatchObject({ ports: [80, 443], unsafeAllowLoopback: false, unsafeAllowPrivateNetwork: false });
    expect(env.widenings).toEqual([]);
    expect(env.defaultRealm).toBe("hardened");
    expect(env.osConfinement.separateUser.present).toBe(false);
    expect(env.osConfinement.separateUser.detail).toContain("uid");
    expect(env.osConfinement.namespaces.detail).toMatch(/plugbox creates none|not made by plugbox/);
  });

  test("with the default web policy, the redirect check says why it does not apply, and sends nothing", () => {
    const redirects = report.checks.find((c) => c.id === "web-redirects-to-forbidden-hosts")!;
    expect(redirects.notApplicable).toContain("refuses loopback");
    expect(report.summary.notApplicable).toBeGreaterThanOrEqual(1);
  });
});

describe("runAudit in a host's own configuration", () => {
  test("with tight limits (a 10 s wall limit, under the web client's 15 s request timeout), reuse isolation and one execution per worker, every check passes", async () => {
    const report = await runAudit({ limits: { wallTimeMs: 10_000, cpuTimeMs: 2_000, memoryMb: 64, maxHostCalls: 200 }, isolation: "reuse", runtimeOptions: { workers: 1, maxConcurrentPerWorker: 1 } });
    expect(failures(report)).toBe("");
    expect(report.environment).toMatchObject({ isolation: "reuse", limits: { wallTimeMs: 10_000, cpuTimeMs: 2_000, memoryMb: 64 }, runtime: { workers: 1, maxConcurrentPerWorker: 1 } });
    // One execution per worker: no victim can share a worker with an attacker, so that check does not apply.
    expect(report.checks.find((c) => c.id === "attack-costs-only-its-execution")!.notApplicable).toContain("maxConcurrentPerWorker is 1");
  }, AUDIT_TIMEOUT_MS);
});

describe("runAudit catches a weakened sandbox", () => {
  test("with the test-only unsafeKeepWebAssembly runtime option, the WebAssembly checks fail, the weakening is reported and the exit code is 4", async () => {
    const report = await runAudit({ runtimeOptions: { unsafeKeepWebAssembly: true } });
    expect(failedIds(report)).toEqual(["wasm-api-resurrection", "removed-globals-every-route"]);
    expect(report.checks.find((c) => c.id === "wasm-api-resurrection")!.evidence).toContain(`"object"`);
    expect(report.summary.failed).toBe(2);
    expect(auditExitStatus(report)).toBe(4);
    expect(report.environment.widenings).toEqual([expect.stringContaining("unsafeKeepWebAssembly")]);
  }, AUDIT_TIMEOUT_MS);
});

describe("runAudit under a widened web policy", () => {
  test("unsafeAllowLoopback, unsafeAllowPrivateNetwork and extra ports each give a warning; the address checks they widen say so; the redirect check runs against a local server and passes", async () => {
    const webChecks = confinementChecks.filter((c) => c.area === "web");
    const report = await runAudit({ webPolicy: { unsafeAllowLoopback: true, unsafeAllowPrivateNetwork: true, extraPorts: [8443] }, checks: webChecks });
    expect(report.environment.widenings).toEqual([
      expect.stringContaining("unsafeAllowLoopback"),
      expect.stringContaining("unsafeAllowPrivateNetwork"),
      expect.stringContaining("extra ports are allowed: 8443"),
    ]);
    expect(failures(report)).toBe("");
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId["web-resolved-loopback"]!.notApplicable).toContain("unsafeAllowLoopback");
    expect(byId["web-resolved-private"]!.notApplicable).toContain("unsafeAllowPrivateNetwork");
    expect(byId["web-resolved-multicast"]!.notApplicable).toBeUndefined();
    const redirects = byId["web-redirects-to-forbidden-hosts"]!;
    expect(redirects.notApplicable).toBeUndefined();
    expect(redirects.evidence).toContain("WEB_TOO_MANY_REDIRECTS");
    expect(redirects.evidence).toContain("WEB_IP_LITERAL");
  }, AUDIT_TIMEOUT_MS);
});

describe("runAudit with bad input", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-audit-"));
    writeFileSync(path.join(dir, "broken.js"), "module.exports = {");
    writeFileSync(path.join(dir, "plugbox.json"), JSON.stringify({ bundles: { b: { path: "missing.js" } }, steps: [{ bundle: "b", type: "T", message: "Create", entity: "account", stage: 25 }] }));
    writeFileSync(path.join(dir, "good.json"), JSON.stringify({ bundles: { b: { path: "broken.js" } }, steps: [{ bundle: "b", type: "T", message: "Create", entity: "account", stage: 20, isolation: "reuse" }] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a missing bundle and a manifest with errors are findings with their typed codes; the checks still run and pass; the exit code is the findings' (2)", async () => {
    const report = await runAudit({ bundles: [path.join(dir, "absent.js")], manifest: path.join(dir, "plugbox.json"), checks: confinementChecks.slice(0, 3) });
    expect(report.findings).toEqual([
      expect.objectContaining({ subject: expect.stringContaining("manifest"), code: "MANIFEST_INVALID" }),
      expect.objectContaining({ subject: expect.stringContaining("absent.js"), code: "BUNDLE_NOT_FOUND" }),
    ]);
    expect(report.checks).toHaveLength(3);
    expect(report.summary).toMatchObject({ passed: 3, failed: 0, findings: 2 });
    expect(auditExitStatus(report)).toBe(2);
  });

  test("a manifest's bundle that does not compile is a BUNDLE_INVALID finding, and a step that reuses instances makes the audit run in reuse isolation", async () => {
    const report = await runAudit({ manifest: path.join(dir, "good.json"), checks: confinementChecks.slice(0, 1) });
    expect(report.findings).toEqual([expect.objectContaining({ subject: expect.stringContaining("broken.js"), code: "BUNDLE_INVALID" })]);
    expect(report.environment.isolation).toBe("reuse");
    expect(report.checks[0]!.passed).toBe(true);
  });
});

describe("plugbox audit (the CLI)", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-audit-cli-"));
    const built = await plugbox(["build", path.join(repo, "samples/azure-aware/plugin.ts"), "-o", file("azure-aware.bundle.js")]);
    expect(built.code, built.stderr).toBe(0);
    copyFileSync(path.join(repo, "samples/azure-aware/plugbox.json"), file("plugbox.json"));
    writeFileSync(file("wide.json"), JSON.stringify({ unsafeAllowLoopback: true, extraPorts: [8443] }));
    writeFileSync(file("bad-policy.json"), JSON.stringify({ unsafeAllowLoopback: "yes" }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("on the azure-aware sample it prints the environment, every check by area and a summary line, shows progress on stderr, and exits 0", async () => {
    const run = await plugbox(["audit", "--manifest", file("plugbox.json"), file("azure-aware.bundle.js")]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^plugbox audit: Node v\d+/);
    expect(run.stdout).toContain("default realm hardened");
    expect(run.stdout).toContain("separate OS user: not present");
    expect(run.stdout).toContain("✔ ctor-chain-global:");
    expect(run.stdout).toContain(`AzureAwarePlugin as step "Post new accounts to Service Bus": ok`);
    expect(run.stdout).toContain("calls notification.execute ×1; hosts contacted none; endpoints posted to c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80");
    expect(run.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^audit: ${confinementChecks.length} checks, ${confinementChecks.length} passed \\(1 not applicable\\), 0 failed, 0 finding\\(s\\), in [\\d.]+ s: the sandbox holds under this configuration$`));
    const progress = run.stderr.trim().split("\n").filter((line) => /^\[\s*\d+\/\d+\]/.test(line));
    expect(progress).toHaveLength(confinementChecks.length);
  });

  test("--json prints the documented schema (and --html writes the same report as a self-contained page); a widened web policy gives warnings; a missing bundle is a finding with its code and the exit code 2, and every check still runs", async () => {
    const run = await plugbox(["audit", "--json", "--html", file("report.html"), "--web-policy", file("wide.json"), file("absent.bundle.js")]);
    expect(run.code, run.stderr).toBe(2);
    const document = JSON.parse(run.stdout) as Record<string, unknown> & AuditReport;
    expect(Object.keys(document)).toEqual(["schemaVersion", "environment", "findings", "capabilities", "checks", "summary"]);
    expect(document.capabilities).toEqual([]);
    expect(document.schemaVersion).toBe(1);
    expect(Object.keys(document.environment)).toEqual(["node", "platform", "isolatedVm", "runtime", "limits", "isolation", "webPolicy", "widenings", "defaultRealm", "osConfinement"]);
    expect(document.environment.widenings).toEqual([expect.stringContaining("unsafeAllowLoopback"), expect.stringContaining("extra ports are allowed: 8443")]);
    expect(document.findings).toEqual([{ subject: expect.stringContaining("absent.bundle.js"), code: "BUNDLE_NOT_FOUND", message: expect.any(String) }]);
    expect(document.checks).toHaveLength(confinementChecks.length);
    for (const check of document.checks) expect(Object.keys(check).filter((k) => k !== "notApplicable")).toEqual(["id", "title", "source", "area", "passed", "evidence", "ms"]);
    expect(document.summary).toEqual({ passed: confinementChecks.length, failed: 0, notApplicable: expect.any(Number), findings: 1, ms: expect.any(Number) });
    const html = readFileSync(file("report.html"), "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain(`audit: ${confinementChecks.length} checks, ${confinementChecks.length} passed`);
    expect(html).toContain("unsafeAllowLoopback is set");
    expect(html).toContain("BUNDLE_NOT_FOUND");
    for (const check of document.checks) expect(html).toContain(`<td>${check.id}</td>`);
    // Self-contained: no script, nothing loaded from elsewhere.
    expect(html).not.toMatch(/<script|<link|\bsrc=/i);
  });

  test("limits out of range are a usage error naming the limit: OPTIONS_INVALID and exit 2", async () => {
    writeFileSync(file("bad-limits.json"), JSON.stringify({ memoryMb: 2 }));
    const run = await plugbox(["audit", "--limits", file("bad-limits.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("OPTIONS_INVALID");
    expect(run.stderr).toContain("limits.memoryMb");
  });

  test("an invalid web policy is a usage error: WEB_POLICY_INVALID and exit 2", async () => {
    const run = await plugbox(["audit", "--web-policy", file("bad-policy.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("WEB_POLICY_INVALID");
  });
});

describe("capabilities: what a bundle reaches for", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  /** Two versions of one plug-in: the second adds a web call, a post to a service endpoint and more CPU. */
  const version = (extra: string, spinMs: number) => `
module.exports = {
  Orders: class {
    async execute(sp) {
      const trace = sp.getService("ITracingService");
      const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
      const account = await org.retrieve("account", "6f1c3a52-0b7e-4f0e-9a55-3d2b1c0e9f11", ["name"]);
      trace.trace("account {0}", account.attributes.name);
      const end = Date.now() + ${spinMs}; while (Date.now() < end);
      ${extra}
    }
  }
};`;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-audit-caps-"));
    writeFileSync(file("orders-1.js"), version("", 10));
    writeFileSync(
      file("orders-2.js"),
      version(
        `const response = await fetch("https://api.example.com/orders?since=today");
         sp.getService("IServiceEndpointNotificationService").execute({ logicalName: "serviceendpoint", id: "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80" }, sp.getService("IPluginExecutionContext"));
         trace.trace("status {0}", response.status);`,
        60,
      ),
    );
    writeFileSync(file("plugbox.json"), JSON.stringify({ bundles: { o: { path: "orders-2.js" } }, steps: [{ name: "orders on update", bundle: "o", type: "Orders", message: "Update", entity: "account", stage: 20 }, { bundle: "o", type: "Refunds", message: "Create", entity: "account", stage: 20 }] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a bundle's report names the services and hosts its code names, and what its type did when run: calls, hosts contacted, endpoints posted to, time and memory against the limits", async () => {
    const report = await runAudit({ bundles: [file("orders-2.js")], checks: [] });
    expect(report.capabilities).toHaveLength(1);
    const [capability] = report.capabilities;
    expect(capability).toMatchObject({ exports: ["Orders"], static: { services: ["IOrganizationServiceFactory", "IPluginExecutionContext", "IServiceEndpointNotificationService", "ITracingService", "IWebClient"], hosts: ["api.example.com"], urls: ["https://api.example.com/orders?since=today"], sourceMap: false } });
    expect(capability!.runs).toEqual([
      expect.objectContaining({
        type: "Orders",
        as: "sample context",
        outcome: "ok",
        calls: { "organization.retrieve": 1, "web.fetch": 1, "notification.execute": 1 },
        hostsContacted: ["api.example.com"],
        endpointsPosted: ["c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80"],
        limits: { cpuTimeMs: 60_000, wallTimeMs: 30_000, memoryMb: 128 },
      }),
    ]);
    expect(capability!.runs[0]!.cpuMs).toBeGreaterThan(0);
    expect(capability!.runs[0]!.heapUsedBytes).toBeGreaterThan(0);
  });

  test("--against: two versions of a bundle differ by one line per change (a new host, a new service, a new call, more CPU)", async () => {
    const report = await runAudit({ bundles: [file("orders-2.js")], against: file("orders-1.js"), checks: [] });
    expect(report.diff?.older).toBe(file("orders-1.js"));
    expect(report.diff?.newer).toBe(file("orders-2.js"));
    const lines = report.diff!.lines;
    expect(lines).toContain("adds access to api.example.com");
    expect(lines).toContain("now uses IServiceEndpointNotificationService");
    expect(lines).toContain("now uses IWebClient");
    expect(lines).toContain("Orders now calls web.fetch");
    expect(lines).toContain("Orders now calls notification.execute");
    expect(lines).toContain("Orders now posts to service endpoint c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80");
    expect(lines.find((line) => line.startsWith("Orders: CPU up "))).toMatch(/^Orders: CPU up \d+\.\dx \(/);
    const back = await runAudit({ bundles: [file("orders-1.js")], against: file("orders-2.js"), checks: [] });
    expect(back.diff!.lines).toContain("no longer names or contacts api.example.com");
  });

  test("a manifest step naming a type its bundle does not export is a PLUGIN_TYPE_NOT_FOUND finding; the steps that resolve run as their steps", async () => {
    const report = await runAudit({ manifest: file("plugbox.json"), checks: [] });
    expect(report.findings).toEqual([expect.objectContaining({ code: "PLUGIN_TYPE_NOT_FOUND", message: expect.stringContaining(`no plug-in type named "Refunds"; it exports: Orders`) })]);
    expect(report.capabilities[0]!.runs).toEqual([expect.objectContaining({ type: "Orders", as: `step "orders on update"`, outcome: "ok" })]);
    expect(auditExitStatus(report)).toBe(2);
  });

  test("with a captured RemoteExecutionContext, each type runs on it instead of the sample context", async () => {
    writeFileSync(
      file("needs-update.js"),
      `module.exports = { OnUpdate: class { async execute(sp) {
        const ctx = sp.getService("IPluginExecutionContext");
        if (ctx.messageName !== "Update" || ctx.primaryEntityName !== "contact") throw new Error("expected an Update of a contact, got " + ctx.messageName + " of " + ctx.primaryEntityName);
      } } };`,
    );
    const captured = serializeRemoteExecutionContext(buildContext({ messageName: "Update", target: new Entity("contact", "0b5e8a2c-1d3f-4a6b-9c7d-2e4f6a8b0c1d", { fullname: "Ada" }), stage: 40, mode: "async" }));
    const onSample = await runAudit({ bundles: [file("needs-update.js")], checks: [] });
    expect(onSample.capabilities[0]!.runs[0]!.outcome).toContain("expected an Update of a contact, got Create of account");
    const onCaptured = await runAudit({ bundles: [file("needs-update.js")], capturedContext: parseRemoteExecutionContext(captured) as unknown as Record<string, unknown>, checks: [] });
    expect(onCaptured.capabilities[0]!.runs).toEqual([expect.objectContaining({ type: "OnUpdate", as: "captured context", outcome: "ok" })]);
  });

  test("plugbox audit --context with a file that is not a RemoteExecutionContext is a usage error (exit 2)", async () => {
    writeFileSync(file("not-a-context.json"), "[1, 2");
    const run = await plugbox(["audit", "--context", file("not-a-context.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("INPUT_INVALID_JSON");
  });

  test("plugbox audit --against without a bundle to compare is a usage error (exit 2)", async () => {
    const run = await plugbox(["audit", "--against", file("orders-1.js")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("CLI_USAGE");
  });
});
