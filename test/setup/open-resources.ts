/**
 * Fails a test file that leaves a sandbox runtime, a sandbox worker, a host, a broker or a job
 * process open, naming where each was created. plugbox records what it opens in the registry put
 * here on globalThis (runtime/open-resources.ts); this hook runs after the file's own afterAll hooks.
 */
import { afterAll } from "vitest";
import type { OpenResource } from "../../dist/runtime/open-resources.js";

/** The registry's key (runtime/open-resources.ts): a global symbol, so this file loads no plugbox module. */
const OPEN_RESOURCES = Symbol.for("plugbox.openResources");
const open = new Map<object, OpenResource>();
(globalThis as { [OPEN_RESOURCES]?: Map<object, OpenResource> })[OPEN_RESOURCES] = open;

/** The first frame of the stack in a test file or test helper: where the test asked for it. */
function createdAt(stack: string): string {
  const frames = stack.split("\n").slice(1).map((line) => line.trim());
  const inTests = frames.find((frame) => /\/test\/(?!setup\/)/.test(frame) && !frame.includes("node_modules"));
  return (inTests ?? frames[0] ?? "an unknown place").replace(/^at /, "").replace(/^.*\((.*)\)$/, "$1").replace(/^file:\/\//, "");
}

/** Closes what a test file left open, so that it fails alone and leaves no process behind. */
async function closeLeft(resource: object): Promise<void> {
  const { close, kill } = resource as { close?: () => Promise<void>; kill?: (signal: string) => void };
  if (typeof close === "function") await Promise.resolve(close.call(resource)).catch(() => undefined);
  else if (typeof kill === "function") kill.call(resource, "SIGKILL");
}

afterAll(async () => {
  if (open.size === 0) return;
  const left = [...open.entries()];
  open.clear();
  await Promise.all(left.map(([resource]) => closeLeft(resource)));
  const frames = (stack: string) => stack.split("\n").slice(1).map((frame) => frame.trim()).filter((frame) => !frame.includes("node_modules"));
  const lines = left.map(([, r]) => `  ${r.kind}, created at ${createdAt(r.stack)}\n${frames(r.stack).map((frame) => `      ${frame}`).join("\n")}`);
  throw new Error(`this test file left ${left.length} thing(s) open; close each (await it.close()) in its test or in an afterAll:\n${lines.join("\n")}`);
});
