/**
 * The catalogue of confinement checks `plugbox audit` runs: hostile plug-ins shipped inside plugbox,
 * each with the public advisory or technique it comes from. A failed check is a defect of the
 * sandbox under the configuration audited, never an expected outcome.
 *
 * Checks that must breach a limit run with the host's limits tightened to what they need (a CPU
 * spin under 300 ms rather than 60 s), never widened: the mechanism that stops them is the same.
 */
import { hostCallChecks, lateCallChecks, outputChecks } from "./boundary-checks.js";
import { corpusChecks } from "./corpus-checks.js";
import type { ConfinementCheck } from "./probe.js";
import { realmChecks } from "./realm-checks.js";
import { costChecks, cpuChecks, memoryChecks } from "./resource-checks.js";
import { stateChecks } from "./state-checks.js";
import { forgedCodeCheck, thrownValueChecks } from "./thrown-checks.js";
import { webChecks } from "./web-checks.js";

export { outputMismatch } from "./corpus-checks.js";
export { ROUTES_TO_FUNCTION } from "./realm-checks.js";
export { hostileValues, REALM_PRELUDE } from "./thrown-checks.js";

/** Every confinement check, in the order the audit runs them. */
export const confinementChecks: readonly ConfinementCheck[] = [
  ...corpusChecks,
  ...thrownValueChecks,
  ...realmChecks,
  ...cpuChecks,
  ...costChecks,
  ...memoryChecks,
  ...outputChecks,
  ...hostCallChecks,
  ...lateCallChecks,
  forgedCodeCheck,
  ...stateChecks,
  ...webChecks,
];

export type { CheckOutcome, CheckSetup, ConfinementCheck } from "./probe.js";
