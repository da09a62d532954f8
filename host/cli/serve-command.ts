/**
 * `plugbox serve`: a long-running host (pipeline, background job runner, relay) behind the HTTP API
 * of host/serve. SIGTERM or SIGINT shuts it down gracefully: no new connections, the requests in
 * flight finish (within --grace-ms), the job runner finishes its job and releases those it leased, the host
 * closes, exit 0. A second signal exits at once.
 */
import type { Command } from "commander";
import { startServe } from "../serve/index.js";
import { serveDefaults } from "../serve/options.js";
import { CliError } from "./errors.js";
import { derivedFlags, optionOf } from "./flags.js";
import { STORE_CHECK_FLAG, withHost, type CliIo, type HostFlags } from "./command-host.js";

/** What a second signal exits with: the shutdown was cut short. */
const INTERRUPTED = 130;

interface ServeFlags extends HostFlags {
  manifest: string;
  /** Unset: the option's default (serveTable). */
  port?: number;
  host: string;
  graceMs?: number;
}

export function registerServeCommand(program: Command, io: CliIo): void {
  const command = program
    .command("serve")
    .description("run a host (pipeline, system jobs, relay) behind an HTTP API: POST /execute, POST /api/data/v9.2/<entityset>, GET /health, GET /metrics")
    .requiredOption("--manifest <plugbox.json>", "the manifest of bundles, steps, tables and endpoints")
    .option("--db <path|url>", "the store: a file, made if it does not exist, or a PostgreSQL database shared by many hosts (postgres://user:password@host:5432/db); default: in memory, gone when the server stops")
    .option("--host <address>", "the address to listen on", serveDefaults.hostname)
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--jobs-queue <connection-string>", "carry system jobs over this Service Bus queue (competing consumers, peek-lock, dead-letter after the retry limit) instead of polling the store: a connection string ending ;EntityPath=<queue>; the store is still swept every 30 s for jobs no message brought")
    .option(...STORE_CHECK_FLAG);
  for (const flag of derivedFlags.serve) command.addOption(optionOf(flag));
  command.action(async (flags: ServeFlags) => {
    if (flags.jobsQueue !== undefined && flags.pollMs !== undefined) throw new CliError("CLI_USAGE", "--poll-ms does not apply with --jobs-queue: messages bring the jobs, and the store is swept every 30 s for those no message brought; leave --poll-ms out");
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
      await withHost({ ...flags, backgroundJobs: true }, async (host) => {
        // Closed before the host (await using runs in reverse): no request is left without its pipeline.
        await using server = await startServe({ host, hostname: flags.host, ...(flags.port === undefined ? {} : { port: flags.port }), ...(flags.graceMs === undefined ? {} : { shutdownGraceMs: flags.graceMs }) });
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

