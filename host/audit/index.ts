/**
 * `plugbox audit`: confinement checks shipped with plugbox, run in the host's sandbox configuration.
 * @module
 */
export { runAudit } from "./audit.js";
export type { AuditOptions, AuditReport, AuditCheckResult, AuditEnvironment, AuditFinding, OsConfinementFact } from "./audit.js";
export { confinementChecks } from "./checks.js";
export type { CheckOutcome, CheckSetup, ConfinementCheck } from "./checks.js";
export { escapeCorpus } from "./corpus.js";
export type { Technique, Expectation } from "./corpus.js";
export { auditJson, auditText, progressLine, summaryLine, AUDIT_SCHEMA_VERSION } from "./report.js";
export { capabilityDiff, staticCapabilities } from "./capabilities.js";
export type { BundleCapabilities, StaticCapabilities, TypeRun } from "./capabilities.js";
export { auditHtml } from "./html.js";
