/**
 * What a technique of the escape corpus is, and what its plug-ins share: the records they read,
 * the helpers in scope, the host text that must never show, and the limits of those that spin.
 */
import type { SandboxLimits } from "../../../runtime/options.js";

export const ACCOUNT_ID = "6f1c3a52-0b7e-4f0e-9a55-3d2b1c0e9f11";
export const MISSING_ID = "0b5e8a2c-1d3f-4a6b-9c7d-2e4f6a8b0c1d";
/** Limits for techniques that must breach the CPU limit: the audit's runs stay short. */
export const SPIN: Partial<SandboxLimits> = Object.freeze({ cpuTimeMs: 300, wallTimeMs: 3_000 });
/** Text that would show the host (its paths, modules or processes) in what a plug-in sees. */
export const HOST_MARKERS: readonly string[] = ["/work/", "node_modules", "node:", "supervisor", "worker.js", "dist/runtime", "isolated-vm"];

/** Helpers inside the plug-in: `attempt(fn)` says what calling fn gave ("value:<type>" or "threw <Name>"). */
export const PRELUDE = `
const OWN_FUNCTION = Function;
function attempt(fn) { try { const v = fn(); return "value:" + (v === undefined ? "undefined" : typeof v); } catch (e) { return "threw " + (e && e.name); } }
async function attemptAsync(fn) { try { const v = await fn(); return "value:" + typeof v; } catch (e) { return "threw " + (e && e.name); } }
function leak(org, what) { org.create({ logicalName: "leak", attributes: { what: String(what) } }).catch(() => undefined); }
`;

/** Outputs the plug-in must leave (a RegExp matches a string output), or the codes its failure may have. */
export type Expectation = { outputs: Record<string, unknown> } | { fails: RegExp };

export interface Technique {
  id: string;
  title: string;
  /** The public advisory, issue or note the technique comes from. */
  source: string;
  /** The body of the plug-in's execute(serviceProvider); see attackBundle for what is in scope. */
  body: string;
  expect: Expectation;
  limits?: Partial<SandboxLimits>;
}

/** What attempt() gives when code names a global the isolate does not have (process, WebAssembly). */
export const REFERENCE = "threw ReferenceError";
