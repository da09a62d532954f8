/**
 * The store (records, relationships, system jobs, trace logs): embedded SQLite or PostgreSQL, behind one interface.
 * @module
 */
export { Store, StoreError, STORE_ERRORS, storeDefaults, resolveStoreOptions, toStoreError } from "./store.js";
export type { StoreOptions, RecordRow, StoreErrorCode, StoreLease, StoreTransaction, DataStore, StoreEngine } from "./store.js";
export { openStore, isPostgresUrl } from "./open.js";
export { PostgresStore } from "./postgres/store.js";
export { SCHEMA_VERSION } from "./schema.js";
