/** Registry (manifest) error codes, what reading a manifest can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const REGISTRY_ERRORS = {
  MANIFEST_NOT_FOUND: { family: "usage", means: "the manifest file does not exist or cannot be read" },
  MANIFEST_INVALID: { family: "usage", means: "the manifest is not valid JSON or breaks a rule; the message names the path and the fix" },
} as const satisfies ErrorTable;

export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

export class RegistryError extends PlugboxError<RegistryErrorCode> {
  static override readonly codes = codesOf(REGISTRY_ERRORS);
}
