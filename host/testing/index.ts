/**
 * `plugbox/testing`: run plug-ins from a vitest (or any) suite with the real sandbox.
 *
 * @example
 * import { TestHost } from "plugbox/testing";
 * const host = await TestHost.create();
 * const plugin = await host.build("src/plugin.ts");
 * const result = await host.run({ bundle: plugin, typeName: "HelloPlugin", context: { target } });
 * expect(result.ok).toBe(true);
 * await host.close();
 *
 * @example
 * import { createTestHost } from "plugbox/testing";
 * await using host = await createTestHost({ manifest: "plugbox.json", seed: { account: [{ name: "Contoso" }] } });
 * const { journal } = await host.execute({ requestName: "Create", parameters: { Target: account } });
 * await host.jobs.drain();
 * expect(host.inbox.posts("account-events")).toHaveLength(1);
 * @module
 */
import path from "node:path";
import { createSandboxRuntime, type Bundle, type PluginTime, type SandboxRuntime } from "../../runtime/index.js";
import { buildEntry } from "../build.js";
import { RecordingNotificationService } from "../services/index.js";
import { MemoryOrganizationService } from "../pipeline/memory.js";
import { runPlugin as runOnce, type RunOptions } from "../run.js";
import { withExitStatus, type RunResult } from "../cli/exit-statuses.js";
import type { IdSource, Clock } from "../ids.js";
import type { WebPolicyInput } from "../web/index.js";

export interface TestHostOptions {
  /** Sandbox worker processes. @default 1 */
  workers?: number;
  ids?: IdSource;
  clock?: Clock;
  /** "clock": plug-ins see `clock`'s time and their timers wait on it (the runtime option `pluginTime`). @default "system" */
  pluginTime?: PluginTime;
  /** The outbound web policy, widened for tests (e.g. a resolver override to a local server and unsafeAllowLoopback). */
  webPolicy?: WebPolicyInput;
}

/** A sandbox runtime plus the host's services over a `:memory:` store, shared by the runs of a test suite. */
export class TestHost {
  readonly runtime: SandboxRuntime;
  /** The store-backed organization service: records created, updated or deleted by plug-ins, kept across runs (`snapshot()`). */
  readonly organization: MemoryOrganizationService;
  /** Every notification post, recorded rather than sent. */
  readonly notifications: RecordingNotificationService;
  readonly #options: TestHostOptions;

  protected constructor(runtime: SandboxRuntime, options: TestHostOptions) {
    this.runtime = runtime;
    this.#options = options;
    this.notifications = new RecordingNotificationService();
    this.organization = MemoryOrganizationService.open({ runtime, notification: this.notifications, clock: options.clock, ids: options.ids });
  }

  static async create(options: TestHostOptions = {}): Promise<TestHost> {
    const runtime = createSandboxRuntime({ workers: options.workers ?? 1, prewarmIsolates: 1, ...(options.clock ? { clock: options.clock } : {}), ...(options.pluginTime ? { pluginTime: options.pluginTime } : {}) });
    await runtime.ready;
    return new TestHost(runtime, options);
  }

  /** Bundles a plug-in module (TypeScript or JavaScript) in memory. */
  build(entry: string): Promise<Bundle> {
    return buildEntry(entry);
  }

  /** Runs a plug-in once with this host's runtime and services. */
  run(options: Omit<RunOptions, "runtime">): Promise<RunResult> {
    return runPlugin({
      organization: this.organization,
      notification: this.notifications,
      ...(this.#options.webPolicy ? { webPolicy: this.#options.webPolicy } : {}),
      ...(this.#options.ids ? { ids: this.#options.ids } : {}),
      ...(this.#options.clock ? { clock: this.#options.clock } : {}),
      ...options,
      runtime: this.runtime,
    });
  }

  async close(): Promise<void> {
    this.organization.close();
    await this.runtime.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Runs a plug-in once, as `plugbox run` does, and says what `plugbox run` would exit with. */
export async function runPlugin(options: RunOptions): Promise<RunResult> {
  return withExitStatus(await runOnce(options));
}

export type { RunOptions, RunChanges, PlainEntity, PlainEntityReference } from "../run.js";
export type { ContextInput, EntityInput, EntityReferenceInput, Stage, Mode } from "../pipeline/context.js";
/** One plug-in run described step by step, without a manifest: `forPlugin(bundle, "Type").onCreate("account").stage(20).withTarget({ name }).run()`. */
export { forPlugin } from "./for-plugin.js";
export type { PluginRunBuilder, PluginRunner, ForPluginOptions, EntityArgument, TargetOf, RunTarget, TypedRunResult } from "./for-plugin.js";
/** What changed between two snapshots of a store's records. */
export { storeDiff } from "./store-diff.js";
export type { StoreDiff, StoreDiffOptions, StoreSnapshot, StoreRecords, RecordDiff } from "./store-diff.js";
export { createTestHost } from "./test-host.js";
export type { TestPipelineHost, TestHostOptions as CreateTestHostOptions, TestStep, SeedData, TestSnapshot, TestStore, StoredRecords } from "./test-host.js";
export type { TestInbox, InboxPost, InboxReply } from "./inbox.js";
export type { JournalRequest, JournalStep, RequestResult } from "../pipeline/pipeline.js";
export type { JobOutcome } from "../jobs/runner.js";
export type { TraceRow } from "../pipeline/trace-log.js";
export type { RunResult } from "../cli/exit-statuses.js";
export { sequentialIds } from "../ids.js";
export { parseCapturedContext, type CapturedContext, type CapturedForm } from "../replay/context-input.js";
/** A clock that moves only when a test advances it (`clock.advance(ms)` or `clock.advance("2d")`): leases, back-off, TTLs, and plug-ins' time with `pluginTime: "clock"`, without sleeping. */
export { ManualClock } from "../../runtime/clock.js";
export type { Clock, ClockTimer } from "../../runtime/clock.js";
/** The local Service Bus and Event Hubs broker, to start in a suite's beforeAll and close in its afterAll. */
export { startBroker, Broker } from "../broker/broker.js";
export type { BrokerOptions, BrokerTopology } from "../broker/broker.js";
