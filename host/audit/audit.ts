/**
 * `plugbox audit`: runs every confinement check in the sandbox configuration the host would use
 * (limits, isolation mode, web policy, from the manifest and flags) and reports the environment
 * the sandbox runs in, what is and is not confined by the operating system included.
 */
import { readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { loadBundleFile, type Bundle } from "../../runtime/bundle.js";
import { PlugboxError } from "../../runtime/errors.js";
import { resolveRuntimeOptions, type Isolation, type SandboxLimits, type SandboxRuntimeOptions } from "../../runtime/options.js";
import { createSandboxRuntime, type SandboxRuntime } from "../../runtime/supervisor.js";
import { resolveWebPolicy, webPolicyDefaults, type WebPolicy, type WebPolicyInput } from "../../runtime/web/policy.js";
import { loadManifest, type Manifest } from "../registry/manifest.js";
import { confinementChecks, type ConfinementCheck } from "./checks.js";
import { bundleCapabilities, capabilityDiff, exportedTypes, type BundleCapabilities } from "./capabilities.js";

/** No capability run may take longer than this, whatever the host's wall limit. */
const CAPABILITY_WALL_CAP_MS = 30_000;
import { probeOrExplain } from "./realm.js";

export interface AuditOptions {
  /** Bundle files to load (their load errors become findings). */
  bundles?: string[];
  /** The manifest the host would run: its bundles are loaded, its steps' isolation modes are audited. */
  manifest?: string;
  /** The web policy the host would use (the contents of `--web-policy`). @default Dataverse's rules */
  webPolicy?: WebPolicyInput;
  /** The limits the host would apply. @default the runtime's defaults */
  limits?: Partial<SandboxLimits>;
  /** The isolation mode to audit. @default `reuse` when a manifest step reuses instances, else `fresh` */
  isolation?: Isolation;
  /** Options of the sandbox runtime the host would start (workers, concurrency, …). */
  runtimeOptions?: Parameters<typeof createSandboxRuntime>[0];
  /** A captured execution context (a parsed RemoteExecutionContext): every capability run gets it instead of the sample. */
  capturedContext?: Record<string, unknown>;
  /** An older version of the (first) bundle: the report then says what changed, one line each. */
  against?: string;
  /** The checks to run. @default every confinement check */
  checks?: readonly ConfinementCheck[];
  /** Called as each check ends. */
  onProgress?: (result: AuditCheckResult, index: number, total: number) => void;
}

export interface AuditCheckResult {
  id: string;
  title: string;
  source: string;
  area: string;
  passed: boolean;
  /** Why the check could not apply under this configuration (it then counts as passed). */
  notApplicable?: string;
  evidence: string;
  ms: number;
}

/** A bundle or manifest that does not load, with the typed code the rest of plugbox gives it. */
export interface AuditFinding {
  subject: string;
  code: string;
  message: string;
}

export interface OsConfinementFact {
  present: boolean;
  detail: string;
}

export interface AuditEnvironment {
  node: string;
  platform: string;
  isolatedVm: { version: string; binding: string; abi: string };
  runtime: { workers: number; maxConcurrentPerWorker: number; workerExecArgv: string[] };
  limits: SandboxLimits;
  isolation: Isolation;
  webPolicy: WebPolicy;
  /** One warning per rule the configuration widens on purpose. */
  widenings: string[];
  /** What the shim found of the isolate's default realm: `hardened` or `unreachable`. */
  defaultRealm: string;
  osConfinement: { separateUser: OsConfinementFact; seccomp: OsConfinementFact; namespaces: OsConfinementFact };
}

export interface AuditReport {
  environment: AuditEnvironment;
  findings: AuditFinding[];
  /** What each bundle reaches for, statically and when run against a sample context. */
  capabilities: BundleCapabilities[];
  /** With `against`: how the first bundle differs from the older one, one line each. */
  diff?: { older: string; newer: string; lines: string[] };
  checks: AuditCheckResult[];
  summary: { passed: number; failed: number; notApplicable: number; findings: number; ms: number };
}

function findingOf(subject: string, error: unknown): AuditFinding {
  if (error instanceof PlugboxError) return { subject, code: error.code, message: error.message };
  return { subject, code: "SANDBOX_INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

/** Every rule the policy (or the runtime) widens, one warning each. */
export function widenings(policy: WebPolicy, runtime: SandboxRuntimeOptions): string[] {
  const out: string[] = [];
  if (policy.unsafeAllowLoopback) out.push("web: unsafeAllowLoopback is set: plug-ins can reach services on this machine through names that resolve to loopback");
  if (policy.unsafeAllowPrivateNetwork) out.push("web: unsafeAllowPrivateNetwork is set: plug-ins can reach private, link-local (cloud metadata included) and unique-local addresses");
  const extra = policy.ports.filter((p) => !webPolicyDefaults.ports.includes(p));
  if (extra.length > 0) out.push(`web: extra ports are allowed: ${extra.join(", ")}`);
  const overridden = Object.keys(policy.resolve);
  if (overridden.length > 0) out.push(`web: the resolver table answers for ${overridden.length} name(s) instead of DNS: ${overridden.slice(0, 5).join(", ")}${overridden.length > 5 ? ", …" : ""}`);
  if (runtime.unsafeKeepWebAssembly) out.push("runtime: unsafeKeepWebAssembly is set (a test-only option): plug-ins keep WebAssembly");
  return out;
}

async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Object.fromEntries(text.split("\n").map((line) => line.split(":\t") as [string, string]).filter((pair) => pair.length === 2));
}

async function namespaceOf(pid: number | "self", kind: string): Promise<string> {
  return readlink(`/proc/${pid}/ns/${kind}`);
}

/** What the operating system confines of a sandbox worker, read from /proc: plugbox itself adds nothing at this level. */
async function osConfinement(workerPid: number | undefined): Promise<AuditEnvironment["osConfinement"]> {
  const unknown = (what: string): OsConfinementFact => ({ present: false, detail: `could not be read (${what}): assume not present` });
  if (workerPid === undefined || process.platform !== "linux") {
    const why = workerPid === undefined ? "no worker is running" : `not Linux (${process.platform})`;
    return { separateUser: unknown(why), seccomp: unknown(why), namespaces: unknown(why) };
  }
  try {
    const worker = await procStatus(workerPid);
    const host = await procStatus(process.pid);
    const workerUid = (worker.Uid ?? "").split("\t")[0];
    const hostUid = (host.Uid ?? "").split("\t")[0];
    const seccompMode = worker.Seccomp ?? "unknown";
    const kinds = ["user", "pid", "net", "mnt", "ipc"];
    const separate: string[] = [];
    for (const kind of kinds) if ((await namespaceOf(workerPid, kind)) !== (await namespaceOf("self", kind))) separate.push(kind);
    return {
      separateUser: {
        present: workerUid !== hostUid,
        detail: workerUid === hostUid ? `workers run as uid ${workerUid}, the host's own user: a worker that escaped V8 could do what the host can` : `workers run as uid ${workerUid}, the host as ${hostUid}`,
      },
      seccomp: {
        present: seccompMode !== "0" && seccompMode !== "unknown",
        detail:
          seccompMode === "0"
            ? "no seccomp filter on the workers; plugbox installs none"
            : `seccomp mode ${seccompMode} on the workers, inherited from what started plugbox (a container runtime, systemd); plugbox installs none of its own`,
      },
      namespaces: {
        present: separate.length > 0,
        detail:
          separate.length === 0
            ? `workers share the host's ${kinds.join(", ")} namespaces; plugbox creates none`
            : `workers have their own ${separate.join(", ")} namespace(s), not made by plugbox`,
      },
    };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { separateUser: unknown(why), seccomp: unknown(why), namespaces: unknown(why) };
  }
}

/** Loads the manifest and reads the bundles as the host would; what does not load becomes a finding. */
async function loadInputs(options: AuditOptions): Promise<{ findings: AuditFinding[]; manifest: Manifest | undefined; bundles: Array<{ file: string; bundle: Bundle }> }> {
  const findings: AuditFinding[] = [];
  let manifest: Manifest | undefined;
  if (options.manifest) {
    try {
      manifest = await loadManifest(options.manifest);
    } catch (error) {
      findings.push(findingOf(`manifest ${options.manifest}`, error));
    }
  }
  const files = [...(options.bundles ?? []), ...(manifest ? [...manifest.bundles.values()].map((b) => b.path) : [])];
  const bundles: Array<{ file: string; bundle: Bundle }> = [];
  for (const file of new Set(files.map((f) => path.resolve(f)))) {
    try {
      bundles.push({ file, bundle: await loadBundleFile(file) });
    } catch (error) {
      findings.push(findingOf(`bundle ${file}`, error));
    }
  }
  return { findings, manifest, bundles };
}

/**
 * Loads each bundle in the sandbox as a worker does and reports what it reaches for; a bundle that
 * does not compile or load, and a manifest step naming a type its bundle does not export, become findings.
 */
async function capabilitiesOf(
  runtime: SandboxRuntime,
  bundles: Array<{ file: string; bundle: Bundle }>,
  manifest: Manifest | undefined,
  limits: SandboxLimits,
  capturedContext: Record<string, unknown> | undefined,
): Promise<{ findings: AuditFinding[]; capabilities: BundleCapabilities[] }> {
  const findings: AuditFinding[] = [];
  const capabilities: BundleCapabilities[] = [];
  const runLimits = { ...limits, wallTimeMs: Math.min(limits.wallTimeMs, CAPABILITY_WALL_CAP_MS) };
  for (const { file, bundle } of bundles) {
    const types = await exportedTypes(runtime, bundle);
    if ("error" in types) {
      findings.push({ subject: `bundle ${file}`, ...types.error });
      continue;
    }
    const registration = manifest ? [...manifest.bundles.values()].find((b) => path.resolve(b.path) === file) : undefined;
    for (const step of manifest?.steps ?? []) {
      if (step.handler.kind !== "plugin" || step.handler.bundle !== registration?.name || types.exports.includes(step.handler.type)) continue;
      findings.push({ subject: `step "${step.name}"`, code: "PLUGIN_TYPE_NOT_FOUND", message: `the bundle ${file} exports no plug-in type named "${step.handler.type}"; it exports: ${types.exports.join(", ") || "nothing"}` });
    }
    capabilities.push(await bundleCapabilities({ runtime, file, bundle, exports: types.exports, ...(manifest ? { manifest } : {}), limits: runLimits, ...(capturedContext ? { capturedContext } : {}) }));
  }
  return { findings, capabilities };
}

async function runCheck(check: ConfinementCheck, setup: Parameters<ConfinementCheck["run"]>[0]): Promise<AuditCheckResult> {
  const started = performance.now();
  let outcome;
  try {
    outcome = await check.run(setup);
  } catch (error) {
    outcome = { passed: false, evidence: `the check itself failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  return {
    id: check.id,
    title: check.title,
    source: check.source,
    area: check.area,
    passed: outcome.passed,
    ...(outcome.notApplicable ? { notApplicable: outcome.notApplicable } : {}),
    evidence: outcome.evidence,
    ms: Math.round(performance.now() - started),
  };
}

/** Runs the audit. Throws only for options that make no audit possible (an invalid web policy or limits). */
export async function runAudit(options: AuditOptions = {}): Promise<AuditReport> {
  const started = performance.now();
  const runtimeOptions = resolveRuntimeOptions({ ...(options.runtimeOptions ?? {}), ...(options.limits ? { limits: options.limits } : {}) });
  const resolvedWebPolicy = resolveWebPolicy(options.webPolicy ?? {});
  const { findings, manifest, bundles } = await loadInputs(options);
  const isolation: Isolation = options.isolation ?? (manifest?.steps.some((s) => s.isolation === "reuse") ? "reuse" : "fresh");
  const runtime: SandboxRuntime = createSandboxRuntime({ ...(options.runtimeOptions ?? {}), limits: runtimeOptions.limits });
  try {
    await runtime.ready;
    const found = await capabilitiesOf(runtime, bundles, manifest, runtimeOptions.limits, options.capturedContext);
    findings.push(...found.findings);
    let diff: AuditReport["diff"];
    if (options.against) {
      const older = await loadInputs({ bundles: [options.against] });
      findings.push(...older.findings.map((f) => ({ ...f, subject: `--against ${f.subject}` })));
      const olderFound = older.bundles.length > 0 ? await capabilitiesOf(runtime, older.bundles, undefined, runtimeOptions.limits, options.capturedContext) : undefined;
      const newer = found.capabilities[0];
      const olderCapabilities = olderFound?.capabilities[0];
      if (olderFound) findings.push(...olderFound.findings.map((f) => ({ ...f, subject: `--against ${f.subject}` })));
      if (newer && olderCapabilities) diff = { older: olderCapabilities.bundle, newer: newer.bundle, lines: capabilityDiff(olderCapabilities, newer) };
    }
    const realm = await probeOrExplain();
    const environment: AuditEnvironment = {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      isolatedVm: realm.isolatedVm,
      runtime: { workers: runtimeOptions.workers, maxConcurrentPerWorker: runtimeOptions.maxConcurrentPerWorker, workerExecArgv: ["--no-node-snapshot"] },
      limits: runtimeOptions.limits,
      isolation,
      webPolicy: resolvedWebPolicy,
      widenings: widenings(resolvedWebPolicy, runtimeOptions),
      defaultRealm: realm.probeError === undefined ? realm.defaultRealm : `unknown (${realm.probeError})`,
      osConfinement: await osConfinement(runtime.workerPids[0]),
    };
    const setup = { runtime, limits: runtimeOptions.limits, isolation, webPolicy: options.webPolicy ?? {}, resolvedWebPolicy };
    const checks = options.checks ?? confinementChecks;
    const results: AuditCheckResult[] = [];
    for (const check of checks) {
      const result = await runCheck(check, setup);
      results.push(result);
      options.onProgress?.(result, results.length, checks.length);
    }
    const failed = results.filter((r) => !r.passed).length;
    return {
      environment,
      findings,
      capabilities: found.capabilities,
      ...(diff ? { diff } : {}),
      checks: results,
      summary: {
        passed: results.length - failed,
        failed,
        notApplicable: results.filter((r) => r.notApplicable !== undefined).length,
        findings: findings.length,
        ms: Math.round(performance.now() - started),
      },
    };
  } finally {
    await runtime.close();
  }
}
