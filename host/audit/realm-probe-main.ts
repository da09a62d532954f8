/**
 * A short-lived process, forked by `plugbox audit` with `--no-node-snapshot` as a sandbox worker
 * is: it creates one isolate with the real shim, as a worker does, attacks the isolate's default
 * realm the way plug-ins once reached it (a Proxy trap's arguments while isolated-vm copies a
 * thrown value) and prints what it found as one line of JSON. Isolates never live in the host.
 */
import { isolatedVmBinding, isolatedVmNativePath, SandboxIsolate } from "../../runtime/worker/ivm.js";
import { readShimSource } from "../../runtime/worker/worker.js";

/** Trusted code appended to the shim: after setup, reaches for the default realm and reports its globals. */
const PROBE = `;(() => {
  const api = globalThis.__pb_api;
  let found = "not reached";
  const reach = new Proxy(function () {}, { apply(t, s, args) {
    const F = args.constructor.constructor;
    found = F === Function ? "own realm" : F("return [typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics, typeof FinalizationRegistry].join()")();
    return "";
  } });
  Object.defineProperty(globalThis, "__pb_api", { configurable: true, value: Object.freeze({ ...api, reach() { throw { message: { toString: reach } }; }, report() { throw found; } }) });
})();`;

const created = await SandboxIsolate.create({
  memoryMb: 32,
  bridge: { __pb_call: () => "", __pb_trace: () => undefined, __pb_done: () => undefined, __pb_ending: () => undefined },
  shim: { source: readShimSource() + PROBE, filename: "shim-with-audit-probe.js" },
  api: ["reach", "report"],
});
let reached: string;
try {
  try {
    created.api.reach!.callSync([], 1_000);
  } catch {
    // Expected: the reach entry throws so that isolated-vm copies the hostile value.
  }
  try {
    reached = String(created.api.report!.callSync([], 1_000));
  } catch (error) {
    reached = error instanceof Error ? error.message : String(error);
  }
} finally {
  created.isolate.dispose();
}
process.stdout.write(
  `${JSON.stringify({ defaultRealm: created.isolate.defaultRealm, reached, isolatedVm: { version: isolatedVmBinding().isolatedVm, binding: isolatedVmNativePath(), abi: process.versions.modules } })}\n`,
);
