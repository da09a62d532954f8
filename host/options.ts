/**
 * `HostOptions` and their resolver: the host's own options checked with the options schema
 * (runtime/schema.ts), OPTIONS_INVALID naming the path and the rule. The parts that have a resolver
 * of their own (runtime options, the web policy, the job runner's options, the manifest, the
 * organization URL, which the relay reads) are checked there; here only that each is of the right kind.
 */
import { OptionsError } from "../runtime/errors.js";
import type { createSandboxRuntime, SandboxRuntime } from "../runtime/index.js";
import { formatPath, flag, parseOptions, strictOptions, v, withDefaults } from "../runtime/schema.js";
import { isGuid, type Clock, type IdSource } from "./ids.js";
import type { JobRunnerOptions } from "./jobs/runner.js";
import { resolveJobTransportOptions, type JobTransportOptions, type ResolvedJobTransport } from "./jobs/transport-options.js";
import type { Identity } from "./organization/identity.js";
import type { SecretSource } from "./relay/index.js";
import type { Manifest } from "./registry/index.js";
import type { NotificationBackend, WebBackend } from "./services/index.js";
import { storeOptionEntries, type StoreOptions } from "./store/store.js";
import type { WebPolicyInput } from "./web/index.js";

export interface HostOptions {
  /** A manifest file, or a parsed manifest, or nothing (register steps in code). */
  manifest?: string | Manifest | Record<string, unknown>;
  /** The store's file, or ":memory:". @default ":memory:" */
  db?: string;
  /** How long a write waits while another process holds the store file, ms. @default 5000 */
  busyTimeoutMs?: number;
  /** The store's other options: `quickCheck` (check the file when it opens, default true) and `maxSizeBytes`. */
  storeOptions?: Pick<StoreOptions, "quickCheck" | "maxSizeBytes">;
  /** An existing sandbox runtime to share; otherwise the host starts and stops its own. */
  runtime?: SandboxRuntime;
  /**
   * Options of the host's own sandbox runtime. It runs on the host's `clock`; with
   * `pluginTime: "clock"` plug-ins see that clock's time and their timers wait on it.
   */
  runtimeOptions?: Parameters<typeof createSandboxRuntime>[0];
  webPolicy?: WebPolicyInput;
  web?: WebBackend;
  /** Where notification posts go. @default the relay to the manifest's service endpoints; recorded, not sent, when it declares none */
  notification?: NotificationBackend;
  /** Where service endpoints' secrets come from (`env:NAME`, `file:NAME`). @default the environment, no secrets file */
  secrets?: SecretSource;
  /** The organization's URL, sent as the Organization claim of posts. @default https://<organizationName>.plugbox.local */
  organizationUrl?: string;
  /** Run system jobs in the background as requests queue them. @default true */
  runJobs?: boolean;
  /**
   * The job runner's options, and `transport`: jobs carried over a Service Bus queue instead of found
   * by polling the store (docs/scale-out.md#jobs-over-a-service-bus-queue); with it, the store is
   * swept every `transport.sweepMs` and `pollMs` does not apply.
   */
  jobs?: Omit<JobRunnerOptions, "clock"> & { transport?: JobTransportOptions };
  /** The one clock of the host: records' and jobs' times, leases, back-off, the job runner's poll. @default systemClock */
  clock?: Clock;
  ids?: IdSource;
  identity?: Partial<Identity>;
}

export const hostOptionDefaults: Readonly<{ db: string; runJobs: boolean }> = Object.freeze({ db: ":memory:", runJobs: true });

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const objectOf = (what: string) => v.custom<Record<string, unknown>>(isObject, `must be an object of ${what}`);
const withMethods = (what: string, ...methods: string[]) =>
  v.custom<object>((value) => isObject(value) && methods.every((m) => typeof value[m] === "function"), `must be ${what} (an object with ${methods.map((m) => `${m}()`).join(" and ")})`);
const guid = v.custom<string>(isGuid, `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301"`);
const text = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));

const hostOptionsSchema = strictOptions({
  manifest: v.optional(v.union([text, objectOf("manifest entries")], "must be a manifest file's path, a parsed manifest or a manifest object")),
  db: storeOptionEntries.path,
  busyTimeoutMs: storeOptionEntries.busyTimeoutMs,
  storeOptions: v.optional(strictOptions({ quickCheck: storeOptionEntries.quickCheck, maxSizeBytes: storeOptionEntries.maxSizeBytes })),
  runtime: v.optional(withMethods("a sandbox runtime from createSandboxRuntime()", "execute", "close")),
  runtimeOptions: v.optional(objectOf("sandbox runtime options")),
  webPolicy: v.optional(objectOf("web policy options")),
  web: v.optional(withMethods("a web backend", "fetch")),
  notification: v.optional(withMethods("a notification backend", "execute")),
  secrets: v.optional(strictOptions({ env: v.optional(objectOf("name → value")), file: v.optional(text) })),
  organizationUrl: v.optional(text),
  runJobs: v.optional(flag()),
  jobs: v.optional(objectOf("job runner options")),
  clock: v.optional(withMethods("a clock", "now")),
  ids: v.optional(withMethods("an id source", "newId")),
  identity: v.optional(strictOptions({ organizationId: v.optional(guid), organizationName: v.optional(text), businessUnitId: v.optional(guid), defaultUserId: v.optional(guid) })),
});

export type ResolvedHostOptions = Readonly<HostOptions & typeof hostOptionDefaults & { jobTransport?: ResolvedJobTransport }>;

/** Fills in the defaults and checks every option; throws OPTIONS_INVALID naming the path and the rule. */
export function resolveHostOptions(input: HostOptions = {}): ResolvedHostOptions {
  parseOptions(hostOptionsSchema, input, (path, message) => new OptionsError("OPTIONS_INVALID", `${formatPath("createHost options", path)} ${message}`));
  const runtimeClock = input.runtimeOptions?.clock;
  if (input.runtimeOptions?.pluginTime === "clock" && runtimeClock !== undefined && input.clock !== undefined && runtimeClock !== input.clock) {
    throw new OptionsError(
      "OPTIONS_INVALID",
      'createHost options.runtimeOptions.clock is not the host\'s clock, and runtimeOptions.pluginTime "clock" would show plug-ins its time rather than the host\'s; leave runtimeOptions.clock out (the runtime takes the host\'s clock)',
    );
  }
  const transport = input.jobs?.transport === undefined ? undefined : resolveJobTransportOptions(input.jobs.transport, "createHost options.jobs.transport");
  if (transport && input.jobs?.pollMs !== undefined) {
    throw new OptionsError("OPTIONS_INVALID", "createHost options.jobs.pollMs does not apply with jobs.transport (messages bring the jobs); leave it out and set jobs.transport.sweepMs, how often the store is swept for jobs no message brought");
  }
  const resolved = withDefaults<HostOptions & typeof hostOptionDefaults>({ ...input, ...hostOptionDefaults }, input);
  return transport ? Object.freeze({ ...resolved, jobTransport: transport }) : resolved;
}
