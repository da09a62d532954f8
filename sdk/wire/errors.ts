/** Wire format error codes: what reading or writing a RemoteExecutionContext can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../errors.js";

export const WIRE_ERRORS = {
  WIRE_INVALID: { family: "usage", means: "the context is not valid JSON or Text XML, or not a RemoteExecutionContext; the message says where" },
  WIRE_FORMAT_UNSUPPORTED: { family: "usage", means: "Binary XML (MessageFormat 1), or a value or format this version of plugbox does not read or write; use JSON" },
} as const satisfies ErrorTable;

export type WireErrorCode = keyof typeof WIRE_ERRORS;

export class WireFormatError extends PlugboxError<WireErrorCode> {
  static override readonly codes = codesOf(WIRE_ERRORS);
}
