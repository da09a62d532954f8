/**
 * Plug-in bundles: a CommonJS script (what `plugbox build` makes with esbuild) whose
 * `module.exports` holds plug-in classes by name. The runtime keys each by the sha256 of its source.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { BundleError } from "./errors.js";
import { createStackMapper, withoutShimFrames, type StackMapper } from "./source-map.js";

/** Dataverse accepts plug-in assemblies of up to 16 MB; plugbox holds bundles to the same. */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

/** The prefix the worker puts before a bundle's source (kept on line 1, so lines do not shift). */
export const BUNDLE_WRAPPER_PREFIX = "(function (exports, module) {";

export class Bundle {
  readonly id: string;
  readonly filename: string;
  readonly source: string;
  readonly bytes: number;
  /** The directory of the bundle file, against which its source map's paths resolve. */
  readonly directory: string | undefined;
  /** V8 code cache made by a plugbox worker from this source. */
  cachedData: Uint8Array | undefined;
  #mapper: StackMapper | null | undefined;

  constructor(source: string, filename: string, directory?: string) {
    this.source = source;
    this.filename = filename;
    this.directory = directory;
    this.bytes = Buffer.byteLength(source);
    this.id = createHash("sha256").update(source).digest("hex");
  }

  /** Rewrites a stack from the sandbox to the author's sources, where the bundle has a source map. */
  mapStack(stack: string): string {
    if (this.#mapper === undefined) this.#mapper = createStackMapper(this.source, this.filename, BUNDLE_WRAPPER_PREFIX.length, this.directory);
    const clean = withoutShimFrames(stack);
    return this.#mapper ? this.#mapper(clean) : clean;
  }
}

/** Makes a bundle from source text. */
export function bundleFromSource(source: string, filename = "bundle.js", directory?: string): Bundle {
  if (typeof source !== "string") throw new BundleError("BUNDLE_INVALID", "a bundle's source must be a string of JavaScript");
  const bytes = Buffer.byteLength(source);
  if (bytes > MAX_BUNDLE_BYTES) {
    throw new BundleError("BUNDLE_TOO_LARGE", `the bundle ${filename} is ${bytes} bytes; bundles are limited to ${MAX_BUNDLE_BYTES} bytes (16 MB, as Dataverse limits assemblies)`);
  }
  if (source.includes("\u0000")) throw new BundleError("BUNDLE_INVALID", `${filename} is not a JavaScript bundle (it contains NUL bytes); build one with \`plugbox build <entry> -o <bundle.js>\``);
  return new Bundle(source, path.basename(filename), directory);
}

/** Reads a bundle file. Errors name the file and what to do. */
export async function loadBundleFile(file: string): Promise<Bundle> {
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new BundleError("BUNDLE_NOT_FOUND", `${file} is not a file; pass the bundle made by \`plugbox build <entry> -o <bundle.js>\``);
    size = info.size;
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError("BUNDLE_NOT_FOUND", `cannot read the bundle ${file}: it does not exist or is not readable; build one with \`plugbox build <entry> -o <bundle.js>\``);
  }
  if (size > MAX_BUNDLE_BYTES) {
    throw new BundleError("BUNDLE_TOO_LARGE", `the bundle ${file} is ${size} bytes; bundles are limited to ${MAX_BUNDLE_BYTES} bytes (16 MB, as Dataverse limits assemblies)`);
  }
  const source = await readFile(file, "utf8");
  return bundleFromSource(source, file, path.dirname(path.resolve(file)));
}
