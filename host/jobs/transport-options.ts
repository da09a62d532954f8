/**
 * `jobs.transport`: system jobs carried over a Service Bus queue (service-bus-transport.ts) instead
 * of found by polling the store. Checked here, without loading the Service Bus client; the
 * connection string itself is read when the transport opens.
 */
import { OptionsError } from "../../runtime/errors.js";
import { defaultsOf, formatPath, integerEntries, optionTable, parseOptions, shown, strictOptions, v, withDefaults, type OptionTable } from "../../runtime/schema.js";

export interface JobTransportOptions {
  /** The only kind there is. */
  kind: "servicebus";
  /** The namespace's connection string (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`), or `plugbox broker`'s. */
  connectionString: string;
  /** The queue the jobs travel on. @default the connection string's EntityPath */
  queue?: string;
  /** How often each host looks in the store for ready jobs no message brought (a send that failed after the commit). @default 30000 */
  sweepMs?: number;
}

/** Each number declared once; `jobTransportDefaults` reads it. */
export const jobTransportTable: OptionTable<"sweepMs"> = optionTable({
  sweepMs: { min: 100, max: 86_400_000, unit: "ms", default: 30_000, description: "how often a host looks in the store for ready jobs that no queue message brought" },
});

export const jobTransportDefaults: Readonly<{ sweepMs: number }> = defaultsOf(jobTransportTable);

export type ResolvedJobTransport = Readonly<Required<Omit<JobTransportOptions, "queue">> & { queue?: string }>;

const text = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));

const transportSchema = strictOptions({
  kind: v.picklist(["servicebus"], (issue) => `must be "servicebus" (the only transport there is); got ${shown(issue.input)}`),
  connectionString: text,
  queue: v.optional(text),
  ...integerEntries(jobTransportTable, (min, max) => `must be a whole number from ${min} to ${max}`),
});

/**
 * Fills in the defaults and checks `jobs.transport`'s shape; throws OPTIONS_INVALID naming the path
 * (`createHost options.jobs.transport.sweepMs`) and the rule. The connection string, and the queue
 * it may name, are read with the Service Bus client when the transport opens (openJobTransport).
 */
export function resolveJobTransportOptions(input: unknown, path = "jobs.transport"): ResolvedJobTransport {
  const given = parseOptions(transportSchema, input, (at, message) => new OptionsError("OPTIONS_INVALID", `${formatPath(path, at)} ${message}`));
  return withDefaults<ResolvedJobTransport>({ ...jobTransportDefaults, ...given }, given.sweepMs === undefined ? {} : { sweepMs: given.sweepMs });
}
