/**
 * The embedded store (records, relationships, system jobs, trace logs).
 * @module
 */
export { Store, StoreError, STORE_ERRORS, storeDefaults, resolveStoreOptions, toStoreError } from "./store.js";
export type { StoreOptions, RecordRow, StoreErrorCode, StoreLease, StoreTransaction } from "./store.js";
export { SCHEMA_VERSION } from "./schema.js";
