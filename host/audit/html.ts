/**
 * The audit report as one self-contained HTML page (`plugbox audit --html <file>`): inline styles,
 * no script, nothing fetched, every value escaped, so it can be archived by CI and opened anywhere.
 */
import type { AuditReport } from "./audit.js";
import { heapText } from "../run.js";
import { summaryLine } from "./report.js";

function escape(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function rows(pairs: Array<[string, unknown]>): string {
  return pairs.map(([key, value]) => `<tr><th>${escape(key)}</th><td>${escape(typeof value === "string" ? value : JSON.stringify(value))}</td></tr>`).join("");
}

function section(title: string, body: string): string {
  return `<section><h2>${escape(title)}</h2>${body}</section>`;
}

function items(values: string[], className = ""): string {
  return `<ul${className ? ` class="${className}"` : ""}>${values.map((v) => `<li>${escape(v)}</li>`).join("")}</ul>`;
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1f24}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa;white-space:nowrap}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}.na{color:#6e7781}.warn li{color:#9a6700}.summary{font-weight:600;padding:.6rem;border:1px solid #d0d7de}
td.evidence{font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}`;

export function auditHtml(report: AuditReport): string {
  const env = report.environment;
  const parts: string[] = [];
  parts.push(`<p class="summary ${report.summary.failed > 0 ? "fail" : "pass"}">${escape(summaryLine(report))}</p>`);
  parts.push(
    section(
      "Environment",
      `<table>${rows([
        ["Node", `${env.node} (${env.platform})`],
        ["isolated-vm", `${env.isolatedVm.version}, ABI ${env.isolatedVm.abi}, ${env.isolatedVm.binding}`],
        ["Workers", env.runtime],
        ["Isolation", env.isolation],
        ["Default realm", env.defaultRealm],
        ["Limits", env.limits],
        ["Web policy", env.webPolicy],
        ["Separate OS user", `${env.osConfinement.separateUser.present ? "present" : "not present"}: ${env.osConfinement.separateUser.detail}`],
        ["seccomp", `${env.osConfinement.seccomp.present ? "present" : "not present"}: ${env.osConfinement.seccomp.detail}`],
        ["Namespaces", `${env.osConfinement.namespaces.present ? "present" : "not present"}: ${env.osConfinement.namespaces.detail}`],
      ])}</table>`,
    ),
  );
  if (env.widenings.length > 0) parts.push(section("Warnings", items(env.widenings, "warn")));
  if (report.findings.length > 0) parts.push(section("Findings", items(report.findings.map((f) => `${f.subject}: [${f.code}] ${f.message}`))));
  for (const capability of report.capabilities) {
    const runs = capability.runs
      .map(
        (run) =>
          `<tr><td>${escape(run.type)}</td><td>${escape(run.as)}</td><td>${escape(run.outcome)}</td><td>${escape(Object.entries(run.calls).map(([op, n]) => `${op} ×${n}`).join(", ") || "none")}</td><td>${escape(run.hostsContacted.join(", ") || "none")}</td><td>${escape(run.endpointsPosted.join(", ") || "none")}</td><td>${escape(`${run.cpuMs} / ${run.limits.cpuTimeMs} ms CPU, ${run.wallMs} / ${run.limits.wallTimeMs} ms wall, ${heapText(run.heapUsedBytes)} / ${run.limits.memoryMb} MB`)}</td></tr>`,
      )
      .join("");
    parts.push(
      section(
        `Capabilities of ${capability.bundle}`,
        `<table>${rows([
          ["Exports", capability.exports.join(", ") || "nothing"],
          ["Services named", capability.static.services.join(", ") || "none"],
          ["Hosts named", capability.static.hosts.join(", ") || "none"],
          ["Read from", capability.static.sourceMap ? "its source map's sources" : "the bundle"],
        ])}</table><table><tr><th>Type</th><th>Run as</th><th>Outcome</th><th>Calls</th><th>Hosts contacted</th><th>Endpoints posted to</th><th>Time and memory</th></tr>${runs}</table>`,
      ),
    );
  }
  if (report.diff) parts.push(section(`Changes from ${report.diff.older} to ${report.diff.newer}`, items(report.diff.lines.length > 0 ? report.diff.lines : ["no change in what it reaches for"])));
  const checks = report.checks
    .map((c) => {
      const [mark, className] = c.notApplicable !== undefined ? ["not applicable", "na"] : c.passed ? ["passed", "pass"] : ["FAILED", "fail"];
      return `<tr><td>${escape(c.area)}</td><td class="${className}">${mark}</td><td>${escape(c.id)}</td><td>${escape(c.title)}</td><td>${escape(c.source)}</td><td class="evidence">${escape(c.notApplicable ?? c.evidence)}</td><td>${c.ms}</td></tr>`;
    })
    .join("");
  parts.push(section("Confinement checks", `<table><tr><th>Area</th><th>Result</th><th>Id</th><th>Check</th><th>Source</th><th>Evidence</th><th>ms</th></tr>${checks}</table>`));
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>plugbox audit</title><style>${STYLE}</style></head><body><h1>plugbox audit</h1>${parts.join("")}</body></html>\n`;
}
