import { PlugboxError } from "../../runtime/errors.js";

export const BROKER_ERROR_CODES = {
  BROKER_CONFIG_INVALID: "usage", // the broker's topology is malformed
  BROKER_PORT_IN_USE: "usage", // the port is taken by another program
  BROKER_ENTITY_NOT_FOUND: "usage", // an inspection named a queue or subscription the broker does not have
  BROKER_DATA_DIR_INVALID: "usage", // --data-dir cannot be created or opened, or holds a store this version cannot read
  BROKER_DATA_DIR_IN_USE: "usage", // another broker holds the --data-dir's store
  BROKER_STORE_FAILED: "internal", // a write to the data directory failed; the transfer or settlement it belonged to is refused
} as const;
export type BrokerErrorCode = keyof typeof BROKER_ERROR_CODES;
export class BrokerError extends PlugboxError<BrokerErrorCode> {}
