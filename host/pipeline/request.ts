/** A request as the pipeline takes it, and its response as the caller gets it. */
import { isPlainObject } from "../../sdk/codec.js";
import type { OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { PipelineError } from "./errors.js";

export function readRequest(value: unknown, what = "request"): OrganizationRequestValue {
  if (!isPlainObject(value)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what} must be an object { "requestName": "Create", "parameters": { … } }`);
  const { requestName, parameters } = value as { requestName?: unknown; parameters?: unknown };
  if (typeof requestName !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(requestName)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what}.requestName must name a message, e.g. "Create"`);
  if (parameters !== undefined && !isPlainObject(parameters)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what}.parameters must be an object of request parameters`);
  return { requestName, parameters: (parameters ?? {}) as Record<string, unknown> };
}

/** What the caller gets: OutputParameters, with the pipeline-only keys renamed as the SDK names them. */
export function responseFor(message: string, outputParameters: Record<string, unknown>): OrganizationResponseValue {
  const results: Record<string, unknown> = { ...outputParameters };
  if ("BusinessEntity" in results) {
    results.Entity = results.BusinessEntity;
    delete results.BusinessEntity;
  }
  if ("BusinessEntityCollection" in results) {
    results.EntityCollection = results.BusinessEntityCollection;
    delete results.BusinessEntityCollection;
  }
  return { responseName: message, results };
}
