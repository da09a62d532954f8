// Bundles the sandbox shim with the SDK's codec into the one script each isolate evaluates first.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("../runtime/shim/shim.ts", import.meta.url).pathname],
  outfile: new URL("../dist/runtime/shim/shim.bundle.js", import.meta.url).pathname,
  bundle: true,
  format: "iife",
  platform: "neutral",
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
});
