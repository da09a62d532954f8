/** ExecuteMultiple and ExecuteTransaction: requests of a batch, each in its own transaction or all in one. */
import { isPlainObject } from "../../sdk/codec.js";
import type { OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import type { StoreTransaction } from "../store/store.js";
import { PipelineError } from "./errors.js";
import { errorSummary, type Scope } from "./journal.js";
import { readRequest } from "./request.js";

/** What a batch needs of the pipeline. */
export interface BatchRunner {
  runNested(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue>;
  transactionFor(scope: Scope): Promise<StoreTransaction>;
}

function readRequests(p: Record<string, unknown>): OrganizationRequestValue[] {
  const list = p.Requests;
  if (!Array.isArray(list) || list.length === 0) throw new PipelineError("PIPELINE_INVALID_REQUEST", "Requests must be a non-empty array of { requestName, parameters }");
  if (list.length > 1000) throw new PipelineError("PIPELINE_INVALID_REQUEST", "a batch holds at most 1000 requests, as in Dataverse");
  return list.map((r, i) => readRequest(r, `Requests[${i}]`));
}

/** Each request of the batch runs in its own transaction and appears in the journal beside the batch. */
export async function executeMultiple(pipeline: BatchRunner, p: Record<string, unknown>, scope: Scope): Promise<OrganizationResponseValue> {
  const requests = readRequests(p);
  const settings = (isPlainObject(p.Settings) ? p.Settings : {}) as { ContinueOnError?: unknown; ReturnResponses?: unknown };
  const responses: Array<Record<string, unknown>> = [];
  let isFaulted = false;
  for (const [index, request] of requests.entries()) {
    try {
      const response = await isolated(pipeline, request, scope);
      if (settings.ReturnResponses === true) responses.push({ RequestIndex: index, Response: response });
    } catch (error) {
      isFaulted = true;
      responses.push({ RequestIndex: index, Fault: errorSummary(error) });
      if (settings.ContinueOnError !== true) break;
    }
  }
  return { responseName: "ExecuteMultiple", results: { IsFaulted: isFaulted, Responses: responses } };
}

/** Runs a request of a batch in its own transaction (or savepoint), not the batch's. */
async function isolated(pipeline: BatchRunner, request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue> {
  await using tx = await pipeline.transactionFor(scope);
  const response = await pipeline.runNested(request, { ...scope, inTransaction: true });
  await tx.commit();
  return response;
}

export async function executeTransaction(pipeline: BatchRunner, p: Record<string, unknown>, scope: Scope): Promise<OrganizationResponseValue> {
  const requests = readRequests(p);
  await using tx = await pipeline.transactionFor(scope);
  const responses: OrganizationResponseValue[] = [];
  for (const [index, request] of requests.entries()) {
    try {
      responses.push(await pipeline.runNested(request, { ...scope, inTransaction: true }));
    } catch (error) {
      const summary = errorSummary(error);
      throw Object.assign(new PipelineError("PIPELINE_STEP_FAILED", `ExecuteTransaction: request ${index} (${request.requestName}) failed, and every request was rolled back: ${summary.message}`, { cause: error }), {
        details: { faultedRequestIndex: index, code: summary.code },
      });
    }
  }
  await tx.commit();
  return { responseName: "ExecuteTransaction", results: { Responses: p.ReturnResponses === true ? responses : [] } };
}
