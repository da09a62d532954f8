/** Broker error codes: what starting, configuring and inspecting the local broker can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const BROKER_ERRORS = {
  BROKER_CONFIG_INVALID: { family: "usage", means: "the broker's topology is malformed" },
  BROKER_PORT_IN_USE: { family: "usage", means: "the port is taken by another program" },
  BROKER_ENTITY_NOT_FOUND: { family: "usage", means: "an inspection named a queue or subscription the broker does not have" },
  BROKER_DATA_DIR_INVALID: { family: "usage", means: "--data-dir cannot be created or opened, or holds a store this version cannot read" },
  BROKER_DATA_DIR_IN_USE: { family: "usage", means: "another broker holds the --data-dir's store" },
  BROKER_STORE_FAILED: { family: "internal", means: "a write to the data directory failed; the transfer or settlement it belonged to is refused" },
} as const satisfies ErrorTable;

export type BrokerErrorCode = keyof typeof BROKER_ERRORS;

export class BrokerError extends PlugboxError<BrokerErrorCode> {
  static override readonly codes = codesOf(BROKER_ERRORS);
}
