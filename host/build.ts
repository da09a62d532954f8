/**
 * `plugbox build`: bundles a plug-in module (TypeScript or JavaScript; its exports are plug-in
 * classes) with esbuild into the format the runtime loads: one CommonJS script, no imports left,
 * with an inline source map so stack traces point at the author's sources.
 */
import { build, type BuildOptions as EsbuildOptions, type Message } from "esbuild";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
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

function describe(messages: Message[]): string {
  return messages
    .map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ${m.text}` : m.text))
    .join("\n");
}

/**
 * The names the entry module exports, from esbuild's metafile of an ESM build (a CommonJS build's
 * metafile lists none): the bundle itself carries them in `exportAnnotation`.
 */
async function exportNames(entry: string, resolution: EsbuildOptions): Promise<string[]> {
  const result = await build({ ...resolution, entryPoints: [entry], format: "esm", write: false, metafile: true, outdir: "plugbox-exports", plugins: [nodeBuiltins as never] });
  return Object.values(result.metafile.outputs).find((output) => output.entryPoint !== undefined)?.exports ?? [];
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
    const exports = await exportNames(options.entry, resolution);
    const result = await build({
      ...resolution,
      entryPoints: [options.entry],
      outfile: options.outfile,
      format: "cjs",
      // The names the bundle exports, written as the annotation esbuild writes for Node (never run):
      // a host reads them with cjs-module-lexer to check a manifest's types when it loads.
      footer: { js: exportAnnotation(exports) },
      target: "es2022",
      sourcemap: "inline",
      sourcesContent: true,
      sourceRoot: "",
      minify: options.minify ?? false,
      keepNames: true,
      legalComments: "none",
      banner: { js: "// plugbox bundle: load with `plugbox run <bundle> --type <ExportName>`" },
      plugins: [nodeBuiltins as never],
      write: options.write ?? true,
    });
    const source = options.write === false ? result.outputFiles![0]!.text : await readFile(options.outfile, "utf8");
    return { outfile: path.resolve(options.outfile), bytes: Buffer.byteLength(source), source, warnings: result.warnings.length ? describe(result.warnings).split("\n") : [] };
  } catch (error) {
    const errors = (error as { errors?: Message[] }).errors;
    if (errors?.length) throw new HostError("BUILD_FAILED", `cannot bundle ${options.entry}:\n${describe(errors)}`);
    throw new HostError("BUILD_FAILED", `cannot bundle ${options.entry}: ${(error as Error).message}`);
  }
}
