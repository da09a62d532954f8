import { afterAll, beforeAll } from "vitest";
import { bundleFromSource, createSandboxRuntime, type SandboxRuntime, type SandboxServices, type ServiceCall } from "../../dist/runtime/index.js";

/** A runtime shared by the tests of one file: started before them, closed after. */
export function useRuntime(options: Parameters<typeof createSandboxRuntime>[0] = {}): () => SandboxRuntime {
  let runtime: SandboxRuntime | undefined;
  beforeAll(async () => {
    runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 1, ...options });
    await runtime.ready;
  });
  afterAll(async () => {
    await runtime?.close();
  });
  return () => runtime!;
}

/** A bundle from CommonJS source, the format `plugbox build` produces. */
export function bundle(source: string, filename = "test-plugin.js") {
  return bundleFromSource(source, filename);
}

/** A minimal execution context, with overrides. */
export function context(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    messageName: "Create",
    primaryEntityName: "account",
    primaryEntityId: "00000000-0000-0000-0000-000000000000",
    stage: 20,
    mode: 0,
    depth: 1,
    inputParameters: {},
    outputParameters: {},
    sharedVariables: {},
    preEntityImages: {},
    postEntityImages: {},
    ...overrides,
  };
}

/** A services handler that records every call and answers with `answer`. */
export function recorder(answer: (call: ServiceCall) => unknown = () => null): SandboxServices & { calls: ServiceCall[] } {
  const calls: ServiceCall[] = [];
  return {
    calls,
    call: async (request) => {
      calls.push(request);
      return answer(request);
    },
  };
}

/**
 * A plug-in, exported as "Attack", whose execute() body is `body`. In scope: `sp` (the service
 * provider), `ctx` (the execution context), `out` (its output parameters), `trace` (the tracing
 * service) and `org` (an organization service as SYSTEM). Module-level code goes in `prelude`.
 */
export function attackPlugin(body: string, prelude = "") {
  return bundle(`${prelude}
module.exports = {
  Attack: class {
    async execute(sp) {
      const ctx = sp.getService("IPluginExecutionContext");
      const out = ctx.outputParameters;
      const trace = sp.getService("ITracingService");
      const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
      ${body}
    }
  }
};`);
}
