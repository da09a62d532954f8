/** Registry (manifest) error codes, one per line with the family that sets the CLI exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const REGISTRY_ERROR_CODES = {
  MANIFEST_NOT_FOUND: "usage", // the manifest file does not exist or cannot be read
  MANIFEST_INVALID: "usage", // the manifest is not valid JSON or breaks a rule; the message names the path and the fix
} as const satisfies Record<string, ErrorFamily>;
export type RegistryErrorCode = keyof typeof REGISTRY_ERROR_CODES;
export class RegistryError extends PlugboxError<RegistryErrorCode> {}
