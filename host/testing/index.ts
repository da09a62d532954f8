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
 * @module
 */
import { createSandboxRuntime, type Bundle, type SandboxRuntime } from "../../runtime/index.js";
import { buildEntry } from "../build.js";
import { InMemoryOrganizationService, RecordingNotificationService } from "../services/index.js";
import { runPlugin, type RunOptions, type RunResult } from "../run.js";
import type { IdSource, Clock } from "../ids.js";
import type { WebPolicyInput } from "../web/index.js";

export interface TestHostOptions {
  /** Sandbox worker processes. @default 1 */
  workers?: number;
  ids?: IdSource;
  clock?: Clock;
  /** The outbound web policy, widened for tests (e.g. a resolver override to a local server and unsafeAllowLoopback). */
  webPolicy?: WebPolicyInput;
}

/** A sandbox runtime plus in-memory services, shared by the runs of a test suite. */
export class TestHost {
  readonly runtime: SandboxRuntime;
  /** Records created, updated or deleted by plug-ins, kept across runs. */
  readonly organization: InMemoryOrganizationService;
  /** Every notification post, recorded rather than sent. */
  readonly notifications: RecordingNotificationService;
  readonly #options: TestHostOptions;

  protected constructor(runtime: SandboxRuntime, options: TestHostOptions) {
    this.runtime = runtime;
    this.#options = options;
    this.organization = new InMemoryOrganizationService(options.ids ? { ids: options.ids } : {});
    this.notifications = new RecordingNotificationService();
  }

  static async create(options: TestHostOptions = {}): Promise<TestHost> {
    const runtime = createSandboxRuntime({ workers: options.workers ?? 1, prewarmIsolates: 1 });
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
    await this.runtime.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export { runPlugin } from "../run.js";
export type { RunOptions, RunResult } from "../run.js";
export { sequentialIds } from "../ids.js";
/** The local Service Bus and Event Hubs broker, to start in a suite's beforeAll and close in its afterAll. */
export { startBroker, Broker } from "../broker/broker.js";
export type { BrokerOptions, BrokerTopology } from "../broker/broker.js";
