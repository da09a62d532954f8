/**
 * The audit report as people and CI read it: a readable text report, one progress line per check,
 * and the stable JSON document of `plugbox audit --json` (schema in docs/audit.md).
 */
import type { AuditCheckResult, AuditReport } from "./audit.js";
import type { BundleCapabilities } from "./capabilities.js";

import { heapText } from "../run.js";
function list(values: string[]): string {
  return values.length === 0 ? "none" : values.join(", ");
}

function capabilityLines(capability: BundleCapabilities): string[] {
  const lines = [`  ${capability.bundle}: exports ${list(capability.exports)}`];
  lines.push(`    names services: ${list(capability.static.services)}; hosts: ${list(capability.static.hosts)} (from ${capability.static.sourceMap ? "its source map's sources" : "the bundle"})`);
  for (const run of capability.runs) {
    const calls = Object.entries(run.calls).map(([op, n]) => `${op} ×${n}`);
    lines.push(`    ${run.type} as ${run.as}: ${run.outcome}`);
    lines.push(`      calls ${list(calls)}; hosts contacted ${list(run.hostsContacted)}; endpoints posted to ${list(run.endpointsPosted)}`);
    lines.push(`      CPU ${run.cpuMs} ms of ${run.limits.cpuTimeMs}, wall ${run.wallMs} ms of ${run.limits.wallTimeMs}, heap ${heapText(run.heapUsedBytes)} of ${run.limits.memoryMb} MB`);
  }
  return lines;
}

/** The version of the JSON document's shape; it changes only when a field is removed or changes meaning. */
export const AUDIT_SCHEMA_VERSION = 1;

/** What `plugbox audit --json` prints. */
export function auditJson(report: AuditReport): Record<string, unknown> {
  return {
    schemaVersion: AUDIT_SCHEMA_VERSION,
    environment: report.environment,
    findings: report.findings,
    capabilities: report.capabilities,
    ...(report.diff ? { diff: report.diff } : {}),
    checks: report.checks,
    summary: report.summary,
  };
}

function mark(check: AuditCheckResult): string {
  return check.notApplicable !== undefined ? "–" : check.passed ? "✔" : "✘";
}

/** One progress line, written as each check ends. */
export function progressLine(check: AuditCheckResult, index: number, total: number): string {
  return `[${String(index).padStart(String(total).length)}/${total}] ${mark(check)} ${check.id} (${check.ms} ms)`;
}

export function summaryLine(report: AuditReport): string {
  const { passed, failed, notApplicable, findings, ms } = report.summary;
  const verdict = failed > 0 ? "the sandbox does NOT hold under this configuration" : findings > 0 ? "the sandbox holds; the inputs have findings" : "the sandbox holds under this configuration";
  return `audit: ${passed + failed} checks, ${passed} passed (${notApplicable} not applicable), ${failed} failed, ${findings} finding(s), in ${(ms / 1000).toFixed(1)} s: ${verdict}`;
}

/** The readable report: environment, warnings, findings, checks grouped by area (failures with their evidence), summary. */
export function auditText(report: AuditReport): string {
  const env = report.environment;
  const lines: string[] = [];
  const limits = env.limits;
  const policy = env.webPolicy;
  lines.push(`plugbox audit: Node ${env.node} (${env.platform}), isolated-vm ${env.isolatedVm.version} (ABI ${env.isolatedVm.abi}, ${env.isolatedVm.binding})`);
  lines.push(`sandbox: ${env.runtime.workers} worker process(es) started with ${env.runtime.workerExecArgv.join(" ")}, ${env.runtime.maxConcurrentPerWorker} execution(s) at once per worker, isolation ${env.isolation}, default realm ${env.defaultRealm}`);
  lines.push(
    `limits: wall ${limits.wallTimeMs} ms, CPU ${limits.cpuTimeMs} ms, heap ${limits.memoryMb} MB, trace ${limits.traceBytes} B, ${limits.maxHostCalls} service calls (${limits.maxConcurrentHostCalls} at once, ${limits.maxHostCallBytes} B each), result ${limits.maxResultBytes} B`,
  );
  lines.push(
    `web policy: ports ${policy.ports.join(", ")}; hosts ${policy.allowedHosts === null ? "any DNS name" : policy.allowedHosts.join(", ")}; loopback ${policy.unsafeAllowLoopback ? "ALLOWED" : "refused"}; private network ${policy.unsafeAllowPrivateNetwork ? "ALLOWED" : "refused"}; ${policy.maxRedirects} redirects; ${policy.maxRequestsPerExecution} requests per execution`,
  );
  const os = env.osConfinement;
  lines.push("operating system confinement of the workers (plugbox adds none: isolates and processes are its confinement):");
  for (const [label, fact] of [["separate OS user", os.separateUser], ["seccomp", os.seccomp], ["namespaces", os.namespaces]] as const) {
    lines.push(`  ${label}: ${fact.present ? "present" : "not present"}: ${fact.detail}`);
  }
  if (env.widenings.length > 0) {
    lines.push("warnings:");
    for (const warning of env.widenings) lines.push(`  ! ${warning}`);
  }
  if (report.findings.length > 0) {
    lines.push("findings:");
    for (const finding of report.findings) lines.push(`  ✘ ${finding.subject}: [${finding.code}] ${finding.message}`);
  }
  if (report.capabilities.length > 0) {
    lines.push("capabilities (run once each against a sample context; every service answered by the audit, nothing sent):");
    for (const capability of report.capabilities) lines.push(...capabilityLines(capability));
  }
  if (report.diff) {
    lines.push(`changes from ${report.diff.older} to ${report.diff.newer}:`);
    for (const line of report.diff.lines.length > 0 ? report.diff.lines : ["no change in what it reaches for"]) lines.push(`  ${line}`);
  }
  const areas = [...new Set(report.checks.map((c) => c.area))];
  for (const area of areas) {
    const checks = report.checks.filter((c) => c.area === area);
    lines.push(`${area} (${checks.filter((c) => c.passed).length}/${checks.length}):`);
    for (const check of checks) {
      lines.push(`  ${mark(check)} ${check.id}: ${check.title}`);
      if (!check.passed) {
        lines.push(`      evidence: ${check.evidence}`);
        lines.push(`      source: ${check.source}`);
      }
      if (check.notApplicable !== undefined) lines.push(`      not applicable: ${check.notApplicable}`);
    }
  }
  lines.push(summaryLine(report));
  return lines.join("\n");
}
