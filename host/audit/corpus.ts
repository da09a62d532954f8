/**
 * The escape corpus: public sandbox-escape and sandbox-DoS techniques (vm2's advisories and
 * test/vm.js, isolated-vm's issues, SES's taming notes, realms-shim and safe-eval advisories), each
 * adapted to run inside a plug-in. Shipped with plugbox: `plugbox audit` runs every technique as a
 * confinement check, and test/runtime/sandbox-escape-corpus.test.ts runs the same table.
 *
 * A technique holds when the plug-in finds nothing it should not (it reports what it found in its
 * outputs), or when the execution ends with the typed error listed; in both cases nothing of the
 * host shows, no hostile write reaches the host and the runtime serves the next execution.
 *
 * Techniques that cannot apply to plugbox, and why (not checks, since there is nothing to attack):
 * - vm2's bridge bugs (CVE-2023-37903 custom inspect, GHSA-p5gc-c584-jj6v util.inspect showProxy,
 *   Buffer leaks, NodeVM require/builtin denylist gaps such as CVE-2026-47140): they need host objects
 *   inside the sandbox. plugbox passes none; an isolate has no Node built-ins, Buffer or require.
 * - Source-rewriter bypasses (vm2 CVE-2023-29199 and its transformer family): plugbox rewrites no
 *   plug-in source; it compiles the bundle as it is.
 * - isolated-vm cachedData / snapshot attacks (CVE-2022-39266): the code cache is made by a plugbox
 *   worker from the bundle's own source and never taken from outside.
 * - Node's host-side prepareStackTrace callback (vm2 issue #515): isolates have their own Error; Node's
 *   callback is never called for them.
 * - Spectre-class side channels across processes (isolated-vm README SECURITY): out of scope for a
 *   JavaScript sandbox; run workers in containers where that is in the threat model.
 */
import { intrinsicTechniques } from "./corpus/intrinsics.js";
import { promiseTechniques } from "./corpus/promises.js";
import { realmTechniques } from "./corpus/realms.js";
import { resourceTechniques } from "./corpus/resources.js";
import type { Technique } from "./corpus/technique.js";
import { valueTechniques } from "./corpus/values.js";

export { ACCOUNT_ID, MISSING_ID, SPIN, HOST_MARKERS, PRELUDE } from "./corpus/technique.js";
export type { Expectation, Technique } from "./corpus/technique.js";

export const escapeCorpus: readonly Technique[] = [...realmTechniques, ...valueTechniques, ...promiseTechniques, ...intrinsicTechniques, ...resourceTechniques];
