/**
 * The embedded store (records, relationships, system jobs, trace logs).
 * @module
 */
export { Store, StoreError, STORE_ERROR_CODES } from "./store.js";
export type { StoreOptions, RecordRow, StoreErrorCode } from "./store.js";
export { SCHEMA_VERSION } from "./schema.js";
