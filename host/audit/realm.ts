/**
 * What the isolate's default realm offers, found by a probe process that holds an isolate the way
 * a sandbox worker does (never the host process), and the confinement check built on it.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { ConfinementCheck } from "./probe.js";

export interface RealmProbe {
  /** What the shim's setup found: `hardened` (reached and hardened) or `unreachable`. */
  defaultRealm: "hardened" | "unreachable";
  /** What an attack on the default realm found: its removed globals' types, "own realm" or "not reached". */
  reached: string;
  isolatedVm: { version: string; binding: string; abi: string };
}

const PROBE_MAIN = fileURLToPath(new URL("./realm-probe-main.js", import.meta.url));
const SAFE_FINDINGS = ["undefined,undefined,undefined,undefined", "own realm", "not reached"];

let probing: Promise<RealmProbe> | undefined;

/** Runs the probe once per process; its answer does not change while plugbox runs. */
export function probeDefaultRealm(): Promise<RealmProbe> {
  probing ??= promisify(execFile)(process.execPath, ["--no-node-snapshot", PROBE_MAIN], { timeout: 30_000 }).then(({ stdout }) => JSON.parse(stdout) as RealmProbe);
  return probing;
}

/** The probe's answer, or what can be said without it when the probe process itself failed. */
export async function probeOrExplain(): Promise<RealmProbe & { probeError?: string }> {
  try {
    return await probeDefaultRealm();
  } catch (error) {
    const version = (createRequire(import.meta.url)("isolated-vm/package.json") as { version: string }).version;
    const probeError = error instanceof Error ? error.message : String(error);
    return { defaultRealm: "unreachable", reached: `the probe failed: ${probeError}`, isolatedVm: { version, binding: "unknown (the probe failed)", abi: process.versions.modules }, probeError };
  }
}

export const defaultRealmCheck: ConfinementCheck = {
  id: "default-realm-hardened",
  title: "the isolate's default realm, reached the way isolated-vm's copies once opened it, offers no WebAssembly, SharedArrayBuffer, Atomics or FinalizationRegistry",
  source: "plugbox issue 15 (isolated-vm copies thrown values in the default context); vm2 CVE-2023-32314",
  area: "realms",
  async run() {
    const probe = await probeOrExplain();
    const safe = SAFE_FINDINGS.includes(probe.reached);
    return { passed: safe, evidence: `setup found the default realm ${probe.defaultRealm}; the attack found ${JSON.stringify(probe.reached)}` };
  },
};
