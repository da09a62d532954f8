/**
 * A test-only hook: what plugbox opened and has not closed yet (sandbox runtimes, their worker
 * processes, hosts, brokers, job processes). Nothing is recorded unless a test setup has put the
 * registry on `globalThis` (test/setup/open-resources.ts does, to fail a test file that leaves one
 * open); then each is recorded with the stack of its creation until it closes.
 */
export type OpenResourceKind = "sandbox runtime" | "sandbox worker" | "host" | "test host" | "broker" | "job process";

export interface OpenResource {
  kind: OpenResourceKind;
  /** The stack where it was created. */
  stack: string;
}

/** The key of the registry on globalThis: one registry, however many copies of plugbox a test loads. */
export const OPEN_RESOURCES = Symbol.for("plugbox.openResources");

function registry(): Map<object, OpenResource> | undefined {
  return (globalThis as { [OPEN_RESOURCES]?: Map<object, OpenResource> })[OPEN_RESOURCES];
}

export function opened(resource: object, kind: OpenResourceKind): void {
  const open = registry();
  if (open) open.set(resource, { kind, stack: new Error(`${kind} opened`).stack ?? "" });
}

export function closed(resource: object): void {
  registry()?.delete(resource);
}
