/**
 * Fails a test file that leaves something plugbox opened (a host, a test host, a sandbox runtime or
 * worker, a broker, a job process) open, naming where each was created, and closes what was left so
 * that the file fails alone and leaves no process behind. plugbox records what it opens only once
 * the registry is on `globalThis` (runtime/open-resources.ts): `watchOpenResources()` puts it there.
 */
import { fileURLToPath } from "node:url";
import path from "node:path";
import { OPEN_RESOURCES, type OpenResource, type OpenResourceKind } from "../../runtime/open-resources.js";

/** A test host holds a host, which holds a runtime, which holds workers: the outer one is named. */
const OUTERMOST_FIRST: readonly OpenResourceKind[] = ["test host", "host", "broker", "job process", "sandbox runtime", "sandbox worker"];

/**
 * plugbox's own code: its build (dist/) and, where a stack is mapped back to the sources, the folders
 * they come from. A frame there is not where the test asked for the resource.
 */
const PLUGBOX_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const OWN_FOLDERS = ["dist", "host", "runtime", "sdk"].map((folder) => path.join(PLUGBOX_ROOT, folder) + path.sep);

function ownFrame(frame: string): boolean {
  const file = frame.replace(/^at /, "").replace(/^.*\((.*)\)$/, "$1").replace(/^file:\/\//, "");
  return OWN_FOLDERS.some((folder) => file.startsWith(folder)) || file.includes("node_modules") || file.startsWith("node:") || !file.includes("/");
}

/** The stack's frames below plugbox's own: the test (or its helper) that asked, first. */
function callerFrames(stack: string): string[] {
  return stack
    .split("\n")
    .slice(1)
    .map((line) => line.trim())
    .filter((frame) => !ownFrame(frame));
}

function createdAt(stack: string): string {
  const first = callerFrames(stack)[0];
  return first === undefined ? "an unknown place" : first.replace(/^at /, "").replace(/^.*\((.*)\)$/, "$1").replace(/^file:\/\//, "");
}

async function closeLeft(resource: object): Promise<void> {
  const { close, kill } = resource as { close?: () => Promise<void>; kill?: (signal: string) => void };
  if (typeof close === "function") await Promise.resolve(close.call(resource)).catch(() => undefined);
  else if (typeof kill === "function") kill.call(resource, "SIGKILL");
}

/** Starts recording what plugbox opens (once per process); returns the registry. */
export function watchOpenResources(): Map<object, OpenResource> {
  const global = globalThis as { [OPEN_RESOURCES]?: Map<object, OpenResource> };
  return (global[OPEN_RESOURCES] ??= new Map());
}

/**
 * Closes what is still open and rejects naming each, with where it was created; resolves when
 * nothing is. For an `afterAll` hook (plugbox/testing/vitest registers one).
 */
export async function closeOpenResources(): Promise<void> {
  const open = watchOpenResources();
  if (open.size === 0) return;
  const left = [...open.entries()];
  open.clear();
  await Promise.all(left.map(([resource]) => closeLeft(resource)));
  // What a test opened together (a test host, and the host, runtime and worker inside it) is one line.
  const byPlace = new Map<string, OpenResource[]>();
  for (const [, resource] of left) byPlace.set(createdAt(resource.stack), [...(byPlace.get(createdAt(resource.stack)) ?? []), resource]);
  const lines = [...byPlace.entries()].map(([place, resources]) => {
    const [outer, ...inner] = resources.sort((a, b) => OUTERMOST_FIRST.indexOf(a.kind) - OUTERMOST_FIRST.indexOf(b.kind));
    const within = inner.length === 0 ? "" : ` (with the ${inner.map((r) => r.kind).join(", ")} it opened)`;
    return `  ${outer!.kind}${within}, created at ${place}\n${callerFrames(outer!.stack).map((frame) => `      ${frame}`).join("\n")}`;
  });
  throw new Error(`this test file left ${byPlace.size} thing(s) open; close each (await it.close(), or \`await using\`) in its test or in an afterAll:\n${lines.join("\n")}`);
}
