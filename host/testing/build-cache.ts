/**
 * Plug-in entries built once per process for every test host: a build is kept with the sha256 of
 * every file esbuild read for it, and used again while each of those files still hashes the same.
 * An edited import rebuilds; an untouched entry costs reading and hashing its inputs, not esbuild.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Bundle } from "../../runtime/index.js";
import { buildEntryWithInputs } from "../build.js";

interface CachedBuild {
  /** Input file → the sha256 of its content when it was built. */
  inputs: Map<string, string>;
  bundle: Bundle;
}

const builds = new Map<string, Promise<CachedBuild>>();

async function hashOf(file: string): Promise<string | undefined> {
  try {
    return createHash("sha256").update(await readFile(file)).digest("hex");
  } catch {
    return undefined; // a file gone since: not the same inputs
  }
}

async function unchanged(build: CachedBuild): Promise<boolean> {
  const hashes = await Promise.all([...build.inputs].map(async ([file, hash]) => (await hashOf(file)) === hash));
  return hashes.every(Boolean);
}

async function buildNow(entry: string): Promise<CachedBuild> {
  const { bundle, inputs } = await buildEntryWithInputs(entry);
  const hashes = await Promise.all(inputs.map(async (file) => [file, (await hashOf(file)) ?? ""] as const));
  return { bundle, inputs: new Map(hashes) };
}

/**
 * The bundle of a plug-in module (TypeScript or JavaScript), from this process's cache when none
 * of the files it was built from changed, else built in memory now. Build errors are not kept.
 */
export async function cachedBuild(entry: string): Promise<Bundle> {
  const key = path.resolve(entry);
  const cached = builds.get(key);
  if (cached) {
    const build = await cached.catch(() => undefined);
    if (build && (await unchanged(build))) return build.bundle;
    if (builds.get(key) !== cached) return cachedBuild(entry); // another caller rebuilt it meanwhile
  }
  const fresh = buildNow(key);
  builds.set(key, fresh);
  fresh.catch(() => {
    if (builds.get(key) === fresh) builds.delete(key);
  });
  return (await fresh).bundle;
}
