/** Opens the store a `db` names: a PostgreSQL connection string, else a SQLite file or ":memory:". */
import type { DataStore } from "./engine.js";
import type { StoreOptions } from "./options.js";
import { isPostgresUrl, PostgresStore } from "./postgres/store.js";
import { Store } from "./store.js";

export { isPostgresUrl } from "./postgres/store.js";

export async function openStore(options: StoreOptions = {}): Promise<DataStore> {
  return options.path !== undefined && isPostgresUrl(options.path) ? PostgresStore.open(options) : Store.open(options);
}
