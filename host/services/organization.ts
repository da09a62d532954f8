/**
 * The organization service as the host serves it to plug-ins: a sandbox sends every method as the
 * request it stands for (sdk/requests.ts); the request is checked (everything that comes out of a
 * sandbox is untrusted) and goes to the backend's one `execute`, whose response goes back whole.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { OrganizationError } from "../organization/errors.js";
import { invalid, type CallerIdentity, type OrganizationBackend, type OrganizationRequestValue } from "../organization/arguments.js";

export {
  readColumnSet,
  readEntity,
  readEntityReference,
  readGuid,
  readLogicalName,
  type CallerIdentity,
  type OrganizationBackend,
  type OrganizationRequestValue,
  type OrganizationResponseValue,
} from "../organization/arguments.js";

export interface RecordedCall {
  service: string;
  op: string;
  userId: string | null;
  args: unknown[];
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** A sandbox's request, checked: the shim sends every method as the request it stands for. */
function readSandboxRequest(value: unknown): OrganizationRequestValue {
  const raw = value as { requestName?: unknown; parameters?: unknown } | undefined;
  if (typeof raw?.requestName !== "string" || raw.requestName === "") throw invalid("request.requestName must name a message, e.g. \"WhoAmI\"");
  const parameters = raw.parameters ?? {};
  if (!isPlainObject(parameters)) throw invalid("request.parameters must be an object");
  return { requestName: raw.requestName, parameters };
}

/** Serves one organization-service call from a sandbox: its one operation, `execute(request)`. */
export async function serveOrganization(backend: OrganizationBackend, op: string, args: unknown[], caller: CallerIdentity): Promise<unknown> {
  if (op !== "execute") throw new OrganizationError("ORG_UNSUPPORTED", `the organization service has no operation ${op}; a sandbox sends execute(request)`);
  return backend.execute(readSandboxRequest(args[0]), caller);
}
