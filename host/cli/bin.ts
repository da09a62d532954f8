#!/usr/bin/env node
/**
 * The `plugbox` executable. Checks the Node.js version before it loads the CLI: on a Node plugbox
 * does not support, the CLI's dependencies would fail to load with a stack trace (undici, on 18).
 * Imports nothing but the version check until the check has passed.
 */
import { assertSupportedNode } from "../../runtime/worker/ivm.js";

try {
  assertSupportedNode(process.versions.node);
} catch (error) {
  const { code, message } = error as { code: string; message: string };
  process.stderr.write(`plugbox: error [${code}]: ${message}\n`);
  process.exit(2);
}
const { main } = await import("./main.js");
process.exitCode = await main(process.argv.slice(2));
