/**
 * `plugbox build`: bundles a plug-in module (TypeScript or JavaScript; its exports are plug-in
 * classes) with esbuild into the format the runtime loads: one CommonJS script, no imports left,
 * with an inline source map so stack traces point at the author's sources.
 */
import type { BuildOptions as EsbuildOptions, Message } from "esbuild";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundleFromSource, type Bundle } from "../runtime/index.js";
import { HostError, UsageError } from "./errors.js";

export interface BuildOptions {
  entry: string;
  /** Where the bundle is written; its source map's paths are relative to this file. */
  outfile: string;
  /** @default true; false returns the bundle's text without writing it. */
  write?: boolean;
  /** @default false */
  minify?: boolean;
}

export interface BuildResult {
  outfile: string;
  bytes: number;
  source: string;
  warnings: string[];
  /** Every file esbuild read to make the bundle, absolute: what a cache of builds compares. */
  inputs: string[];
}

/** Node built-ins have no place in a sandboxed plug-in: importing one fails the build, naming it. */
const nodeBuiltins = {
  name: "plugbox-no-node-builtins",
  setup(b: { onResolve: (o: { filter: RegExp }, cb: (args: { path: string; importer: string }) => unknown) => void }) {
    b.onResolve({ filter: /^node:|^(fs|path|os|child_process|net|http|https|tls|dgram|dns|crypto|worker_threads|cluster|process|vm|module|stream|buffer|util|events|url|zlib|readline|perf_hooks|async_hooks|inspector|v8)(\/.*)?$/ }, (args) => ({
      errors: [
        {
          text: `"${args.path}" is a Node.js module; plug-ins run in a sandbox with no Node.js APIs. Reach the outside only through the services of serviceProvider (IOrganizationService, IServiceEndpointNotificationService, IWebClient)`,
        },
      ],
    }));
  },
};

/** The SDK of the plugbox that builds: where a plug-in's `plugbox/sdk` resolves when its project has none installed. */
const OWN_SDK = fileURLToPath(new URL("../sdk/index.js", import.meta.url));

/**
 * `plugbox/sdk` resolves as any import does, from the plug-in's folder (its project's plugbox);
 * where nothing is installed there (`npx plugbox run plugin.ts` in a bare folder, a global install),
 * to this plugbox's own SDK, the one its sandbox runs.
 */
const sdkFallback = {
  name: "plugbox-sdk-fallback",
  setup(b: {
    onResolve: (o: { filter: RegExp }, cb: (args: { path: string; importer: string; resolveDir: string; kind: string; pluginData?: unknown }) => unknown) => void;
    resolve: (path: string, options: { resolveDir: string; kind: string; pluginData: unknown }) => Promise<{ errors: unknown[]; path: string }>;
  }) {
    b.onResolve({ filter: /^plugbox\/sdk$/ }, async (args) => {
      if (args.pluginData === sdkFallback) return undefined;
      const found = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: sdkFallback });
      return found.errors.length === 0 ? { path: found.path } : { path: OWN_SDK };
    });
  },
};

function describe(messages: Message[]): string {
  return messages
    .map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ${m.text}` : m.text))
    .join("\n");
}

/** What the entry module exports: every name, and those that are classes (candidate plug-in types). */
interface EntryExports {
  names: string[];
  classes: string[];
}

/**
 * The entry module's exports, from an ESM build of it: esbuild's metafile lists the names (a
 * CommonJS build's lists none) and the output's closing `export { local as name }` block, read
 * against its top-level `var local = class` declarations (esbuild writes every bundled class so
 * with keepNames), tells which are classes. The bundle itself carries the names in `exportAnnotation`.
 */
async function entryExports(entry: string, resolution: EsbuildOptions): Promise<EntryExports> {
  const { build } = await esbuild();
  const result = await build({ ...resolution, entryPoints: [entry], format: "esm", write: false, metafile: true, keepNames: true, outdir: "plugbox-exports", plugins: [nodeBuiltins as never, sdkFallback as never] });
  const names = Object.values(result.metafile.outputs).find((output) => output.entryPoint !== undefined)?.exports ?? [];
  const text = result.outputFiles.find((file) => file.path.endsWith(".js"))?.text ?? "";
  const declaredClasses = new Set([...text.matchAll(/^(?:var|let|const)\s+([\w$]+)\s*=\s*class\b|^class\s+([\w$]+)/gm)].map((m) => m[1] ?? m[2]!));
  const exportBlock = /^export\s*\{([^}]*)\};?\s*$/m.exec(text)?.[1] ?? "";
  const classes = exportBlock
    .split(",")
    .map((part) => part.trim().split(/\s+as\s+/))
    .filter(([local]) => local !== undefined && declaredClasses.has(local))
    .map(([local, exported]) => exported ?? local!);
  return { names, classes };
}

/** A plug-in module exports its plug-in classes: one that exports none would build a bundle nothing can run. */
function assertExportsAClass(entry: string, exports: EntryExports): void {
  if (exports.classes.length > 0) return;
  const what = exports.names.length === 0 ? "nothing" : `${exports.names.join(", ")}, none of them a class`;
  throw new HostError(
    "BUILD_FAILED",
    `${entry} exports ${what}; a plug-in module exports its plug-in classes, e.g. \`export class MyPlugin implements IPlugin { execute(serviceProvider) { … } }\``,
  );
}

/** `0 && (exports["A"] = 0, …);`: a statement that never runs, from which cjs-module-lexer reads the export names. */
function exportAnnotation(names: readonly string[]): string {
  if (names.length === 0) return "";
  return `// The plug-in types this bundle exports, for the host that loads it:\n0 && (${names.map((name) => `exports[${JSON.stringify(name)}] = 0`).join(", ")});`;
}

export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  try {
    if (!(await stat(options.entry)).isFile()) throw new Error("not a file");
  } catch {
    throw new UsageError("INPUT_NOT_FOUND", `the entry module ${options.entry} does not exist; pass the plug-in's source file, e.g. src/plugin.ts`);
  }
  const resolution: EsbuildOptions = { bundle: true, platform: "neutral", mainFields: ["module", "main"], conditions: ["plugbox", "import", "default"], absWorkingDir: process.cwd(), logLevel: "silent" };
  try {
    const exports = await entryExports(options.entry, resolution);
    assertExportsAClass(options.entry, exports);
    const { build } = await esbuild();
    const result = await build({
      ...resolution,
      entryPoints: [options.entry],
      outfile: options.outfile,
      format: "cjs",
      // The names the bundle exports, written as the annotation esbuild writes for Node (never run):
      // a host reads them with cjs-module-lexer to check a manifest's types when it loads.
      footer: { js: exportAnnotation(exports.names) },
      target: "es2022",
      sourcemap: "inline",
      sourcesContent: true,
      sourceRoot: "",
      minify: options.minify ?? false,
      keepNames: true,
      legalComments: "none",
      banner: { js: "// plugbox bundle: load with `plugbox run <bundle> --type <ExportName>`" },
      plugins: [nodeBuiltins as never, sdkFallback as never],
      write: options.write ?? true,
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs).map((input) => path.resolve(resolution.absWorkingDir!, input));
    const source = options.write === false ? result.outputFiles![0]!.text : await readFile(options.outfile, "utf8");
    return { outfile: path.resolve(options.outfile), bytes: Buffer.byteLength(source), source, warnings: result.warnings.length ? describe(result.warnings).split("\n") : [], inputs };
  } catch (error) {
    if (error instanceof HostError) throw error;
    const errors = (error as { errors?: Message[] }).errors;
    if (errors?.length) throw new HostError("BUILD_FAILED", `cannot bundle ${options.entry}:\n${describe(errors)}`);
    throw new HostError("BUILD_FAILED", `cannot bundle ${options.entry}: ${(error as Error).message}`);
  }
}

/** A plug-in module's source files, which `buildEntry` bundles (a bundle made by `plugbox build` is a .js file). */
export const SOURCE_ENTRY = /\.(?:[cm]?ts|tsx)$/i;

/** Bundles a plug-in module (TypeScript or JavaScript) in memory and loads it as a bundle written beside it. */
export async function buildEntry(entry: string): Promise<Bundle> {
  return (await buildEntryWithInputs(entry)).bundle;
}

/** `buildEntry`, and every file esbuild read for it (absolute paths). */
export async function buildEntryWithInputs(entry: string): Promise<{ bundle: Bundle; inputs: string[] }> {
  const outfile = path.resolve(path.dirname(entry), `${path.basename(entry).replace(/\.[^.]+$/, "")}.bundle.js`);
  const built = await buildBundle({ entry, outfile, write: false });
  return { bundle: bundleFromSource(built.source, outfile, path.dirname(outfile)), inputs: built.inputs };
}

/**
 * esbuild, loaded at the first build: importing it costs a process about 40 ms, which a host whose
 * manifest names only built bundles (and every module that imports this one for its types) need not pay.
 */
function esbuild(): Promise<typeof import("esbuild")> {
  return import("esbuild");
}
