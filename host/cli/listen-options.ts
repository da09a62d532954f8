/** What `plugbox listen` checks of its flags before it makes a client. */
import { InvalidArgumentError } from "commander";
import { CliError } from "./errors.js";

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("expected a whole number, 1 or more");
  return n;
}

/**
 * The namespace's endpoint, once the connection string has what both Azure clients need: an
 * sb:// Endpoint and either a key (SharedAccessKeyName with SharedAccessKey) or a SharedAccessSignature.
 * The clients' own refusals are stack traces from inside them.
 */
export function checkConnectionString(connectionString: string): string {
  const parts = new Map(
    connectionString
      .split(";")
      .filter((part) => part.includes("="))
      .map((part) => [part.slice(0, part.indexOf("=")).trim().toLowerCase(), part.slice(part.indexOf("=") + 1).trim()] as const),
  );
  const endpoint = parts.get("endpoint");
  const keyed = Boolean(parts.get("sharedaccesskeyname")) && Boolean(parts.get("sharedaccesskey"));
  if (!endpoint?.startsWith("sb://") || !(keyed || parts.get("sharedaccesssignature"))) {
    const missing = !endpoint?.startsWith("sb://") ? "an Endpoint=sb://<host>" : parts.get("sharedaccesskeyname") ? "the SharedAccessKey that goes with SharedAccessKeyName" : "a SharedAccessKeyName and SharedAccessKey (or a SharedAccessSignature)";
    throw new CliError("CLI_USAGE", `--connection-string is malformed: it lacks ${missing}; it reads Endpoint=sb://<host>;SharedAccessKeyName=…;SharedAccessKey=… (\`plugbox broker\` prints one)`);
  }
  return endpoint;
}

/** An Azure client that refuses the connection string as it is made: a usage error in one line. */
export function refusedAsUsage<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    throw new CliError("CLI_USAGE", `--connection-string was refused: ${String((error as Error).message ?? error).split("\n")[0]}`);
  }
}
