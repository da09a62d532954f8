/**
 * What the options schema (valibot, runtime/schema.ts) costs at the hot boundary: an execution that
 * sets its own limits has them checked per execution (`resolveLimits` in the supervisor), against
 * the hand-written checks the schema replaced, kept here as the baseline. Also the refusal of an
 * invalid limit, and what loading valibot adds to a new process (a CLI command, a sandbox worker).
 * Rounds alternate between the schema and the baseline; the median round is reported.
 */
import { spawnSync } from "node:child_process";
import { resolveLimits, sandboxLimitDefaults, sandboxLimitRanges as limitRanges, type SandboxLimits } from "../runtime/options.js";
import type { BenchRow } from "./row.js";


/** The checks `resolveLimits` made by hand before the schema. */
function handLimits(input: Partial<SandboxLimits> | undefined, base: SandboxLimits = sandboxLimitDefaults, path = "limits"): SandboxLimits {
  if (input === undefined) return base;
  if (typeof input !== "object" || input === null) throw new Error(`${path} must be an object`);
  const known = Object.keys(limitRanges);
  for (const key of Object.keys(input)) if (!known.includes(key)) throw new Error(`${path}.${key} is not an option; known options are ${known.join(", ")}`);
  const out = { ...base };
  for (const key of known as Array<keyof SandboxLimits>) {
    const value = input[key];
    if (value === undefined) continue;
    const [min, max] = limitRanges[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) throw new Error(`${path}.${key} must be an integer from ${min} to ${max}; got ${JSON.stringify(value)}`);
    out[key] = value;
  }
  return Object.freeze(out);
}

const ROUNDS = 9;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Nanoseconds per call of `fn(input)`, the median of alternating rounds against `baseline(input)`. */
function compare(fn: (input: unknown) => unknown, baseline: (input: unknown) => unknown, input: unknown, calls: number): [number, number] {
  const time = (f: (input: unknown) => unknown) => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) {
      try {
        f(input);
      } catch {
        // the refusal is what is measured
      }
    }
    return ((performance.now() - started) * 1e6) / calls;
  };
  time(fn);
  time(baseline);
  const measured: number[] = [];
  const base: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    measured.push(time(fn));
    base.push(time(baseline));
  }
  return [median(measured), median(base)];
}

function processMs(script: string): number {
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    spawnSync(process.execPath, ["--input-type=module", "-e", script], { stdio: "ignore" });
    runs.push(performance.now() - started);
  }
  return median(runs);
}

export async function runOptionsBench(): Promise<BenchRow[]> {
  const schema = (input: unknown) => resolveLimits(input as Partial<SandboxLimits>);
  const hand = (input: unknown) => handLimits(input as Partial<SandboxLimits>);
  const [valid, validHand] = compare(schema, hand, { wallTimeMs: 5_000, memoryMb: 64 }, 200_000);
  const [invalid, invalidHand] = compare(schema, hand, { wallTimeMs: 0 }, 20_000);
  const withValibot = processMs("await import('valibot')");
  const bare = processMs("");
  return [
    { name: "limits set by an execution, checked by the schema (per execution)", value: valid, unit: "ns/call", baseline: `hand checks: ${validHand.toFixed(0)} ns/call`, ratio: valid / validHand, goal: "< 5 µs (of a reuse execution's 100+ µs)" },
    { name: "an invalid limit refused with OPTIONS_INVALID", value: invalid, unit: "ns/call", baseline: `hand checks: ${invalidHand.toFixed(0)} ns/call`, ratio: invalid / invalidHand },
    { name: "what loading valibot adds to a new process (median of 5)", value: withValibot - bare, unit: "ms", baseline: `node alone: ${bare.toFixed(0)} ms`, ratio: withValibot / bare, goal: "< 50 ms" },
  ];
}
