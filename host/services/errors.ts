/** Host service error codes: what the notification service and the web backends refuse. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const HOST_SERVICE_ERRORS = {
  NOTIFY_INVALID_ARGUMENT: { family: "plugin", means: "the notification service was called with a value of the wrong shape" },
  WEB_DISABLED: { family: "isolation", means: "the outbound web client is switched off for this host" },
} as const satisfies ErrorTable;

export type HostServiceErrorCode = keyof typeof HOST_SERVICE_ERRORS;

export class HostServiceError extends PlugboxError<HostServiceErrorCode> {
  static override readonly codes = codesOf(HOST_SERVICE_ERRORS);
}
