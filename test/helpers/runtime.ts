import { afterAll, beforeAll } from "vitest";
import { asMethodCall, attackBundle, methodResponse, sampleContext } from "../../dist/host/testing/internal.js";
import { bundleFromSource, createSandboxRuntime, type SandboxRuntime, type SandboxServices, type ServiceCall } from "../../dist/host/index.js";

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

/** A minimal execution context, with overrides (the audit's sample context). */
export const context = sampleContext;

/** A services handler that records every call as it arrives (an organization call is `execute(request)`) and answers with `answer`. */
export function wireRecorder(answer: (call: ServiceCall) => unknown = () => null): SandboxServices & { calls: ServiceCall[] } {
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
 * A services handler that records every call as the method the plug-in called (an organization
 * request as the method that sends it: `create`, `retrieve`, …) and answers by method: `answer`'s
 * value is what the method returns, sent back as the response it comes from.
 */
export function recorder(answer: (call: ServiceCall) => unknown = () => null): SandboxServices & { calls: ServiceCall[] } {
  const calls: ServiceCall[] = [];
  return {
    calls,
    call: async (request) => {
      const { op, args, method } = asMethodCall(request);
      const call = { ...request, op, args };
      calls.push(call);
      const value = await answer(call);
      return method ? methodResponse(method, value) : value;
    },
  };
}

/**
 * A plug-in, exported as "Attack", whose execute() body is `body` (the audit's own hostile-plug-in
 * builder). In scope: `sp`, `ctx`, `out` (its output parameters), `trace` and `org` (an organization
 * service as SYSTEM). Module-level code goes in `prelude`.
 */
export const attackPlugin = attackBundle;
