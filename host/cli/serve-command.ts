/**
 * `plugbox serve`: a long-running host (pipeline, background job runner, relay) behind the HTTP API
 * of host/serve. SIGTERM or SIGINT shuts it down gracefully: no new connections, the requests in
 * flight finish (within --grace-ms), the job runner stops (its leases are released), the host
 * closes, exit 0. A second signal exits at once.
 */
import { InvalidArgumentError, type Command } from "commander";
import { startServe } from "../serve/index.js";
import { STORE_CHECK_FLAG, withHost, type CliIo, type HostFlags } from "./command-host.js";

/** What a second signal exits with: the shutdown was cut short. */
const INTERRUPTED = 130;

interface ServeFlags extends HostFlags {
  manifest: string;
  port: number;
  host: string;
  graceMs: number;
}

export function registerServeCommand(program: Command, io: CliIo): void {
  program
    .command("serve")
    .description("run a host (pipeline, system jobs, relay) behind an HTTP API: POST /execute, POST /api/data/v9.2/<entityset>, GET /health, GET /metrics")
    .requiredOption("--manifest <plugbox.json>", "the manifest of bundles, steps, tables and endpoints")
    .option("--db <path>", "the store file, made if it does not exist (default: in memory, gone when the server stops)")
    .option("--port <n>", "the port, 0 for a free one", portNumber, 8080)
    .option("--host <address>", "the address to listen on", "127.0.0.1")
    .option("--grace-ms <ms>", "how long shutdown waits for requests in flight", graceMs, 10_000)
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: ServeFlags) => {
      let stopRequested: (() => void) | undefined;
      const stop = new Promise<void>((resolve) => (stopRequested = resolve));
      let signalled = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled) process.exit(INTERRUPTED);
        signalled = true;
        io.err(`plugbox serve: ${signal}: finishing the requests in flight, then stopping (send it again to stop at once)`);
        stopRequested!();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        await withHost({ ...flags, runJobs: true }, async (host) => {
          // Closed before the host (await using runs in reverse): no request is left without its pipeline.
          await using server = await startServe({ host, port: flags.port, hostname: flags.host, shutdownGraceMs: flags.graceMs });
          io.out(`listening: ${server.url}`);
          await stop;
        });
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
      io.out("stopped");
    });
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError("expected a port number from 0 to 65535");
  return n;
}

function graceMs(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 3_600_000) throw new InvalidArgumentError("expected a whole number of milliseconds from 0 to 3600000");
  return n;
}
