/**
 * What a bundle reaches for: found statically (the services its code names, the URLs and hosts in
 * its source and its source map's sources) and dynamically (each plug-in type run once in the
 * sandbox against a sample context, with services that record every call and answer it without
 * touching anything: no record is written, no post is relayed, no web request leaves the worker's
 * host). With two versions of a bundle, the difference, one line each.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Bundle } from "../../runtime/bundle.js";
import type { SandboxLimits } from "../../runtime/options.js";
import type { SandboxRuntime, SandboxServices, ServiceCall } from "../../runtime/supervisor.js";
import { Entity, EntityCollection } from "../../sdk/model.js";
import { methodResponse } from "../../sdk/requests.js";
import { asMethodCall } from "../services/index.js";
import { buildContext, type Mode, type Stage } from "../pipeline/context.js";
import type { Manifest } from "../registry/manifest.js";

/** A service asked for by name: `getService("ITracingService")`. */
const GET_SERVICE = /getService\(\s*["'`](I[A-Za-z]+)["'`]\s*\)/g;
/** A call of the sandbox's global fetch (not a method called fetch). */
const GLOBAL_FETCH = /(^|[^.\w])fetch\s*\(/m;
/** Source-map paths of plugbox's SDK (`sdk/*.ts` in plugbox, `plugbox/dist/sdk/*.js` installed). */
const PLUGBOX_SDK_SOURCE = /(^|\/)(plugbox\/dist\/)?sdk\/[\w-]+\.[cm]?[jt]s$/;
const URL_LITERAL = /\bhttps?:\/\/[a-z0-9.-]+(?::\d+)?(?:\/[^\s"'`<>)\\]*)?/gi;
/** A type name no bundle exports: asking for it loads the bundle and answers with the names it does export. */
export const NO_SUCH_TYPE = "__plugboxAuditNoSuchType__";

export interface StaticCapabilities {
  /** Services the code asks for by name (getService("…")); IWebClient also when it calls the global fetch. */
  services: string[];
  /** Hosts of the URL literals in the bundle or its sources. */
  hosts: string[];
  urls: string[];
  /** Whether the bundle's source map (and its sources' text) was read. */
  sourceMap: boolean;
}

export interface TypeRun {
  type: string;
  /** The step the run imitated, or "sample context" for a type no step names. */
  as: string;
  outcome: string;
  /** service.op → how many times it was called. */
  calls: Record<string, number>;
  hostsContacted: string[];
  endpointsPosted: string[];
  cpuMs: number;
  wallMs: number;
  /** null when the isolate's heap could not be read (it reached its memory limit). */
  heapUsedBytes: number | null;
  limits: { cpuTimeMs: number; wallTimeMs: number; memoryMb: number };
}

export interface BundleCapabilities {
  bundle: string;
  exports: string[];
  static: StaticCapabilities;
  runs: TypeRun[];
}

/** The text of the bundle's source map's sources, when it has a source map with them. */
async function sourcesOf(bundle: Bundle): Promise<string[] | undefined> {
  const reference = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(bundle.source)?.[1];
  if (!reference) return undefined;
  try {
    const text = reference.startsWith("data:")
      ? Buffer.from(reference.slice(reference.indexOf(",") + 1), reference.includes(";base64,") ? "base64" : "utf8").toString("utf8")
      : await readFile(path.resolve(bundle.directory ?? ".", decodeURIComponent(reference)), "utf8");
    const map = JSON.parse(text) as { sources?: unknown; sourcesContent?: unknown };
    if (!Array.isArray(map.sourcesContent)) return undefined;
    const names = Array.isArray(map.sources) ? map.sources : [];
    // plugbox's own SDK, bundled with every plug-in, declares every service: it says nothing of this plug-in.
    return map.sourcesContent.filter((text, i): text is string => typeof text === "string" && !PLUGBOX_SDK_SOURCE.test(String(names[i] ?? "")));
  } catch {
    return undefined;
  }
}

/** What the bundle's code names: services and URLs (from the author's sources when the source map carries them, else from the bundle). */
export async function staticCapabilities(bundle: Bundle): Promise<StaticCapabilities> {
  const sources = await sourcesOf(bundle);
  const texts = sources ?? [bundle.source.replace(/\/\/# sourceMappingURL=\S+\s*$/, "")];
  const services = new Set(texts.flatMap((t) => [...t.matchAll(GET_SERVICE)].map((m) => m[1]!)));
  if (texts.some((t) => GLOBAL_FETCH.test(t))) services.add("IWebClient");
  const urls = [...new Set(texts.flatMap((t) => t.match(URL_LITERAL) ?? []))].sort();
  const hosts = [...new Set(urls.map((u) => new URL(u).hostname.toLowerCase()))].sort();
  return { services: [...services].sort(), hosts, urls, sourceMap: sources !== undefined };
}

/** Services that record every call and answer as a quiet organization would, without doing anything. */
function sampleServices(): SandboxServices & { calls: ServiceCall[] } {
  const calls: ServiceCall[] = [];
  return {
    calls,
    call: async (request) => {
      const { op, args } = asMethodCall(request);
      calls.push({ ...request, op, args });
      if (request.service === "web") {
        const url = String((request.args[0] as { url?: unknown } | undefined)?.url ?? "");
        return { status: 200, statusText: "OK (answered by plugbox audit; nothing was sent)", url, redirected: false, headers: [], bodyBase64: "" };
      }
      if (request.service === "notification") return "";
      switch (op) {
        case "create":
          return methodResponse(op, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
        case "retrieve":
          return methodResponse(op, new Entity(String(args[0] ?? "account"), String(args[1] ?? "3f2504e0-4f89-41d3-9a0c-0305e82c3301"), { name: "Sample" }));
        case "retrieveMultiple":
          return methodResponse(op, new EntityCollection([]));
        default:
          return null;
      }
    },
  };
}

/** The types a bundle exports, read from the sandbox's answer to a type it cannot have. */
export async function exportedTypes(runtime: SandboxRuntime, bundle: Bundle): Promise<{ exports: string[] } | { error: { code: string; message: string } }> {
  const report = await runtime.execute({ bundle, typeName: NO_SUCH_TYPE, context: buildContext({}), isolation: "fresh" });
  if (report.ok) return { error: { code: "SANDBOX_INTERNAL", message: `the bundle answered for a type it cannot export (${NO_SUCH_TYPE})` } };
  if (report.error.code !== "PLUGIN_TYPE_NOT_FOUND") return { error: { code: report.error.code, message: report.error.message } };
  const listed = /it exports: (.*)$/.exec(report.error.message)?.[1] ?? "";
  return { exports: listed.split(",").map((s) => s.trim()).filter((s) => /^[A-Za-z_$][\w$]*$/.test(s)) };
}

/**
 * Runs each type once (as each manifest step that uses it, or against a sample Create of an
 * account; on a captured context when one is given) and records what it did.
 */
export async function bundleCapabilities(options: {
  runtime: SandboxRuntime;
  file: string;
  bundle: Bundle;
  exports: string[];
  manifest?: Manifest;
  limits: SandboxLimits;
  /** A captured execution context (a RemoteExecutionContext) every run gets instead of the sample or the step's. */
  capturedContext?: Record<string, unknown>;
}): Promise<BundleCapabilities> {
  const { runtime, file, bundle, manifest, limits } = options;
  const registration = manifest ? [...manifest.bundles.values()].find((b) => path.resolve(b.path) === path.resolve(file)) : undefined;
  // A step naming a type the bundle does not export is a finding of its own, not a run.
  const steps = registration && manifest ? manifest.steps.filter((s) => s.handler.kind === "plugin" && s.handler.bundle === registration.name && options.exports.includes(s.handler.type)) : [];
  const plans: Array<{ type: string; as: string; message: string; entity: string; stage: Stage; mode: Mode; unsecureConfig: string | null; secureConfig: string | null }> = steps.map((s) => ({
    type: (s.handler as { type: string }).type,
    as: `step "${s.name}"`,
    message: s.message,
    entity: s.entity ?? "account",
    stage: s.stage,
    mode: s.mode,
    unsecureConfig: s.unsecureConfig,
    secureConfig: s.secureConfig,
  }));
  for (const type of options.exports) {
    if (!plans.some((p) => p.type === type)) plans.push({ type, as: "sample context", message: "Create", entity: "account", stage: 40, mode: "sync", unsecureConfig: null, secureConfig: null });
  }
  const runs: TypeRun[] = [];
  for (const plan of plans) {
    const services = sampleServices();
    const target = new Entity(plan.entity, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", { name: "Sample" });
    const report = await runtime.execute(
      {
        bundle,
        typeName: plan.type,
        context: options.capturedContext ?? buildContext({ messageName: plan.message, primaryEntityName: plan.entity, target, stage: plan.stage, mode: plan.mode }),
        unsecureConfig: plan.unsecureConfig,
        secureConfig: plan.secureConfig,
        limits,
        isolation: "fresh",
      },
      services,
    );
    const calls: Record<string, number> = {};
    for (const call of services.calls) calls[`${call.service}.${call.op}`] = (calls[`${call.service}.${call.op}`] ?? 0) + 1;
    const hostsContacted = services.calls.filter((c) => c.service === "web").map((c) => {
      try {
        return new URL(String((c.args[0] as { url?: unknown }).url)).hostname;
      } catch {
        return String((c.args[0] as { url?: unknown }).url);
      }
    });
    const endpointsPosted = services.calls.filter((c) => c.service === "notification").map((c) => String((c.args[0] as { id?: unknown } | undefined)?.id ?? c.args[0]));
    runs.push({
      type: plan.type,
      as: options.capturedContext ? `${plan.as === "sample context" ? "" : `${plan.as}, `}captured context` : plan.as,
      outcome: report.ok ? "ok" : `${report.error.code}: ${report.error.message}`,
      calls,
      hostsContacted: [...new Set(hostsContacted)].sort(),
      endpointsPosted: [...new Set(endpointsPosted)].sort(),
      cpuMs: Math.round(report.stats.cpuMs * 100) / 100,
      wallMs: Math.round(report.stats.wallMs * 100) / 100,
      heapUsedBytes: report.stats.heapUsedBytes,
      limits: { cpuTimeMs: limits.cpuTimeMs, wallTimeMs: limits.wallTimeMs, memoryMb: limits.memoryMb },
    });
  }
  return { bundle: file, exports: options.exports, static: await staticCapabilities(bundle), runs };
}

function added<T>(now: T[], before: T[]): T[] {
  return now.filter((x) => !before.includes(x));
}

/** The difference between an older and a newer version of a bundle, one line each. */
export function capabilityDiff(older: BundleCapabilities, newer: BundleCapabilities): string[] {
  const lines: string[] = [];
  const hostsOf = (c: BundleCapabilities) => [...new Set([...c.static.hosts, ...c.runs.flatMap((r) => r.hostsContacted)])];
  for (const host of added(hostsOf(newer), hostsOf(older))) lines.push(`adds access to ${host}`);
  for (const host of added(hostsOf(older), hostsOf(newer))) lines.push(`no longer names or contacts ${host}`);
  for (const service of added(newer.static.services, older.static.services)) lines.push(`now uses ${service}`);
  for (const service of added(older.static.services, newer.static.services)) lines.push(`no longer uses ${service}`);
  for (const type of added(newer.exports, older.exports)) lines.push(`exports a new plug-in type ${type}`);
  for (const type of added(older.exports, newer.exports)) lines.push(`no longer exports ${type}`);
  for (const run of newer.runs) {
    const before = older.runs.find((r) => r.type === run.type && r.as === run.as);
    if (!before) continue;
    const label = newer.runs.filter((r) => r.type === run.type).length > 1 ? `${run.type} (${run.as})` : run.type;
    for (const op of added(Object.keys(run.calls), Object.keys(before.calls))) lines.push(`${label} now calls ${op}`);
    for (const op of added(Object.keys(before.calls), Object.keys(run.calls))) lines.push(`${label} no longer calls ${op}`);
    for (const endpoint of added(run.endpointsPosted, before.endpointsPosted)) lines.push(`${label} now posts to service endpoint ${endpoint}`);
    if (before.outcome === "ok" && run.outcome !== "ok") lines.push(`${label} now fails on the sample context: ${run.outcome}`);
    if (before.outcome !== "ok" && run.outcome === "ok") lines.push(`${label} now succeeds on the sample context`);
    const ratio = (now: number, then: number) => (then > 0 ? now / then : 0);
    // Below a few ms, CPU time is noise; a ratio of 2 either way is a change worth a line.
    if (run.cpuMs >= 5 || before.cpuMs >= 5) {
      const cpu = ratio(run.cpuMs, before.cpuMs);
      if (cpu >= 2) lines.push(`${label}: CPU up ${cpu.toFixed(1)}x (${before.cpuMs} → ${run.cpuMs} ms)`);
      else if (cpu > 0 && cpu <= 0.5) lines.push(`${label}: CPU down ${(1 / cpu).toFixed(1)}x (${before.cpuMs} → ${run.cpuMs} ms)`);
    }
    if (run.heapUsedBytes !== null && before.heapUsedBytes !== null) {
      const heap = ratio(run.heapUsedBytes, before.heapUsedBytes);
      if (heap >= 2 && run.heapUsedBytes - before.heapUsedBytes > 1_048_576) lines.push(`${label}: heap up ${heap.toFixed(1)}x (${before.heapUsedBytes} → ${run.heapUsedBytes} bytes)`);
    }
  }
  return lines;
}
