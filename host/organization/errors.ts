/** Organization service error codes: what a plug-in's (or a request's) call to the organization service can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const ORGANIZATION_ERRORS = {
  ORG_INVALID_ARGUMENT: { family: "plugin", means: "a plug-in passed the organization service a value of the wrong shape" },
  ORG_NOT_FOUND: { family: "plugin", means: "the record asked for does not exist" },
  ORG_DUPLICATE: { family: "plugin", means: "a record with that id already exists" },
  ORG_UNSUPPORTED: { family: "plugin", means: "a message, query type or operator this organization service does not implement" },
} as const satisfies ErrorTable;

export type OrganizationErrorCode = keyof typeof ORGANIZATION_ERRORS;

export class OrganizationError extends PlugboxError<OrganizationErrorCode> {
  static override readonly codes = codesOf(ORGANIZATION_ERRORS);
}
