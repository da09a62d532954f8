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
const exitCode = await main(process.argv.slice(2));
// A command is over when main resolves. A client library may still hold a socket or a timer it did
// not release on close (the Event Hubs consumer after its broker restarted did, and the process
// outlived SIGTERM): end once what was written has reached stdout and stderr.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))));
process.exit(exitCode);
