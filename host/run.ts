/**
 * Runs one plug-in once: loads its bundle, builds the context, executes it in the sandbox with
 * the host's services, and reports what happened. `plugbox run` and `plugbox/testing` use it.
 * Without an organization service of the caller's, the plug-in gets the store-backed one over a
 * `:memory:` store of its own, closed with the run.
 */
import { toPlain } from "../sdk/codec.js";
import { familyIn } from "../sdk/errors.js";
import {
  createSandboxRuntime,
  loadBundleFile,
  PluginExecutionError,
  SANDBOX_ERRORS,
  SERVICE_ERRORS,
  ServiceError,
  type Bundle,
  type ExecutionStats,
  type Isolation,
  type SandboxLimits,
  type SandboxRuntime,
} from "../runtime/index.js";
import { buildContext, type ContextInput } from "./pipeline/context.js";
import { MemoryOrganizationService } from "./pipeline/memory.js";
import type { Clock, IdSource } from "./ids.js";
import { WEB_ERRORS, type WebPolicyInput } from "./web/index.js";
import { HOST_SERVICE_ERRORS, HostServiceError } from "./services/errors.js";
import { createHostServices, webCallRecord, RecordingNotificationService, type NotificationBackend, type OrganizationBackend, type RecordedCall, type WebBackend } from "./services/index.js";

export interface RunOptions {
  /** The bundle, or the path of a bundle file made by `plugbox build`. */
  bundle: Bundle | string;
  /** The exported plug-in class to run. */
  typeName: string;
  context?: ContextInput;
  unsecureConfig?: string | null;
  secureConfig?: string | null;
  /** @default "fresh" */
  isolation?: Isolation;
  limits?: Partial<SandboxLimits>;
  /** A runtime to run in; without one, a runtime with one worker is started and closed. */
  runtime?: SandboxRuntime;
  /** @default the store-backed service over a `:memory:` store of the run's own */
  organization?: OrganizationBackend;
  notification?: NotificationBackend;
  /** The outbound web client; without one, a client with Dataverse's default policy, widened by `webPolicy`. */
  web?: WebBackend;
  /** Widens or tunes the default network policy (ignored when `web` is given). */
  webPolicy?: WebPolicyInput;
  /** Narrows the network policy to these hosts, as a bundle's manifest entry does. */
  webAllowedHosts?: readonly string[] | null;
  clock?: Clock;
  ids?: IdSource;
  signal?: AbortSignal;
}

export interface RunError {
  code: string;
  message: string;
  status?: number;
  errorCode?: number;
  stack?: string;
}

/**
 * An Entity as plain data (plugbox JSON): attribute values are JSON, typed ones as `$type` objects
 * (`{ "$type": "Money", "value": 10 }`, `{ "$type": "DateTime", "value": "2024-01-31T00:00:00.000Z" }`).
 */
export interface PlainEntity {
  $type: "Entity";
  logicalName: string;
  id: string;
  attributes: Record<string, unknown>;
  formattedValues: Record<string, string>;
  keyAttributes: Record<string, unknown>;
}

/** An EntityReference as plain data (plugbox JSON). */
export interface PlainEntityReference {
  $type: "EntityReference";
  logicalName: string;
  id: string;
  name: string | null;
  keyAttributes: Record<string, unknown>;
}

/** The writable parts of the context after execute(), as plain data (plugbox JSON). */
export interface RunChanges<Target extends PlainEntity | PlainEntityReference | null = PlainEntity | PlainEntityReference | null> {
  /** InputParameters.Target: written with the record at stages 10 and 20. */
  target: Target;
  inputParameters: Record<string, unknown>;
  outputParameters: Record<string, unknown>;
  sharedVariables: Record<string, unknown>;
}

/** What one run did; `plugbox/testing`'s `RunResult` adds the exit status `plugbox run` gives it. */
export interface PluginRun {
  ok: boolean;
  error?: RunError;
  trace: string;
  /** The writable parts of the context after execute(), as plain data (plugbox JSON); null when the plug-in failed. */
  changes: RunChanges | null;
  calls: RecordedCall[];
  /** Isolation rules the plug-in tried to break, even where it caught the error. */
  violations: string[];
  durationMs: number;
  stats: ExecutionStats;
  /** The context the plug-in received, as plain data. */
  context: Record<string, unknown>;
}

/** An execution's heap for people: "1.2 MB", or "unknown" when the isolate was gone before it could be read. */
export function heapText(bytes: number | null): string {
  return bytes === null ? "unknown" : `${(bytes / 1_048_576).toFixed(1)} MB`;
}

/** Web requests reach the host only when a web backend is given; the worker serves them otherwise. */
const unreachableWeb: WebBackend = {
  fetch: async () => {
    throw new ServiceError("SERVICE_FAILED", "no web backend is configured in this host");
  },
};

/** The outbound web client when none is configured: every request is refused. */
export const disabledWeb: WebBackend = {
  fetch: async () => {
    throw new HostServiceError("WEB_DISABLED", "the outbound web client is not enabled in this host");
  },
};

export async function runPlugin(options: RunOptions): Promise<PluginRun> {
  const started = performance.now();
  const bundle = typeof options.bundle === "string" ? await loadBundleFile(options.bundle) : options.bundle;
  const context = buildContext(options.context ?? {}, { ...(options.clock ? { clock: options.clock } : {}), ...(options.ids ? { ids: options.ids } : {}) });
  const notification = options.notification ?? new RecordingNotificationService();
  // Without a web backend of its own, the worker serves web requests under the policy.
  const web = options.web ? undefined : { policy: options.webPolicy ?? {}, allowedHosts: options.webAllowedHosts ? [...options.webAllowedHosts] : null };
  const runtime = options.runtime ?? createSandboxRuntime({ workers: 1, prewarmIsolates: options.isolation === "reuse" ? 0 : 1 });
  const ownOrganization = options.organization ? undefined : MemoryOrganizationService.open({ runtime, notification, clock: options.clock, ids: options.ids });
  const services = createHostServices(
    { organization: options.organization ?? ownOrganization!, notification, web: options.web ?? unreachableWeb },
    { webAllowedHosts: options.webAllowedHosts ?? null },
  );
  try {
    const report = await runtime.execute(
      {
        bundle,
        typeName: options.typeName,
        isolation: options.isolation ?? "fresh",
        unsecureConfig: options.unsecureConfig ?? null,
        secureConfig: options.secureConfig ?? null,
        context,
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(web ? { web } : {}),
      },
      services,
    );

    // Refusals by a host service for an isolation rule (the web policy) count as attempts too.
    // (Requests the worker served and refused are in report.violations already.)
    const refused = services.calls.filter((c) => c.error && familyIn(c.error.code, WEB_ERRORS, HOST_SERVICE_ERRORS, SERVICE_ERRORS, SANDBOX_ERRORS) === "isolation").map((c) => `${c.service}.${c.op}: ${c.error!.message}`);
    services.calls.push(...report.webCalls.map(webCallRecord));
    const violations = [...report.violations, ...refused];
    const base = { trace: report.trace, calls: services.calls, violations, durationMs: performance.now() - started, stats: report.stats, context: toPlain(context) as Record<string, unknown> };
    if (report.ok) {
      const { inputParameters, outputParameters, sharedVariables } = report.changes;
      const changes = {
        target: toPlain(inputParameters.Target ?? null) as RunChanges["target"],
        inputParameters: toPlain(inputParameters) as Record<string, unknown>,
        outputParameters: toPlain(outputParameters) as Record<string, unknown>,
        sharedVariables: toPlain(sharedVariables) as Record<string, unknown>,
      };
      if (violations.length > 0) {
        const message = `the plug-in tried to break an isolation rule (and caught the error): ${violations.join("; ")}`;
        return { ok: false, error: { code: "SANDBOX_ISOLATION_VIOLATION", message }, changes, ...base };
      }
      return { ok: true, changes, ...base };
    }
    const error = report.error;
    const runError: RunError = { code: error.code, message: error.message };
    if (error instanceof PluginExecutionError && error.serviceCode !== undefined) {
      // The plug-in let a service's error escape: report the service's own code (WEB_LOOPBACK, ORG_NOT_FOUND, …).
      runError.code = error.serviceCode;
    }
    if (error instanceof PluginExecutionError) {
      runError.status = error.status;
      runError.errorCode = error.errorCode;
      if (error.pluginStack) runError.stack = error.pluginStack;
    } else if (typeof error.details?.pluginStack === "string") {
      runError.stack = error.details.pluginStack;
    }
    return { ok: false, error: runError, changes: null, ...base };
  } finally {
    ownOrganization?.close();
    if (!options.runtime) await runtime.close();
  }
}
