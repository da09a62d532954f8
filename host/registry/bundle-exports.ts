/**
 * A manifest's plug-in types checked against what its bundles export, when the host loads it: a
 * `types` entry or a step naming a class the bundle does not export is refused then, with the
 * JSON path and the names the bundle does export, rather than at the step's first execution.
 *
 * The exports are read without running the bundle, by cjs-module-lexer (Node's own lexer for
 * CommonJS): `plugbox build` writes the names into the bundle as the annotation esbuild writes for
 * Node; a hand-written bundle declares them with `module.exports = { A, B }` or `exports.A = …`.
 * A bundle whose exports cannot be read that way (made by an older plugbox: rebuild it) or whose
 * file is missing (BUNDLE_NOT_FOUND at its first execution) is not checked.
 */
import { readFile } from "node:fs/promises";
import { init, parse } from "cjs-module-lexer";
import { RegistryError } from "./errors.js";
import type { Manifest } from "./manifest.js";

/** The names a CommonJS bundle's source exports, as far as they can be read without running it; undefined when none can. */
export async function readBundleExports(source: string): Promise<Set<string> | undefined> {
  await init();
  let names: string[];
  try {
    names = parse(source).exports;
  } catch {
    return undefined;
  }
  return names.length === 0 ? undefined : new Set(names);
}

/** Throws MANIFEST_INVALID when a bundle's `types`, or a step, names a class its bundle does not export. */
export async function checkBundleExports(manifest: Manifest): Promise<void> {
  const bundleNames = [...manifest.bundles.keys()];
  for (const name of bundleNames) {
    const bundle = manifest.bundles.get(name)!;
    const source = bundle.loaded?.source ?? (await readFile(bundle.path, "utf8").catch(() => undefined));
    if (source === undefined) continue;
    const exported = await readBundleExports(source);
    if (!exported) continue;
    const listed = `it exports ${[...exported].join(", ")}`;
    bundle.types?.forEach((type, i) => {
      if (!exported.has(type)) throw new RegistryError("MANIFEST_INVALID", `${manifest.source}: bundles.${name}.types[${i}]: the bundle ${bundle.path} exports no ${JSON.stringify(type)} (${listed}); fix the name or rebuild the bundle`);
    });
    manifest.steps.forEach((step, i) => {
      if (step.handler.kind !== "plugin" || step.handler.bundle !== name || exported.has(step.handler.type)) return;
      throw new RegistryError("MANIFEST_INVALID", `${manifest.source}: steps[${i}].type: the bundle ${name} (${bundle.path}) exports no ${JSON.stringify(step.handler.type)} (${listed}); fix the name or rebuild the bundle`);
    });
  }
}
