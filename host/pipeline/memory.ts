/**
 * The organization service of a plug-in run on its own (`plugbox run`, `plugbox/testing`): the
 * store-backed one of every host, over a `:memory:` store and a registry with no steps, so a
 * plug-in's tests exercise the rules it meets in production.
 */
import { fromPlain } from "../../sdk/codec.js";
import { EMPTY_GUID, type AttributeValue } from "../../sdk/model.js";
import type { SandboxRuntime } from "../../runtime/index.js";
import type { Clock, IdSource } from "../ids.js";
import type { CallerIdentity, OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { SYSTEM_USER_ID } from "../organization/identity.js";
import { OrganizationService } from "../organization/service.js";
import { Registry } from "../registry/index.js";
import type { NotificationBackend } from "../services/notification.js";
import { Store, StoreError } from "../store/store.js";
import { Pipeline } from "./pipeline.js";

export interface MemoryOrganizationOptions {
  runtime: SandboxRuntime;
  notification: NotificationBackend;
  clock?: Clock | undefined;
  ids?: IdSource | undefined;
}

/**
 * A store-backed organization service over its own `:memory:` store, opened at the first call (a
 * run whose plug-in never calls it opens none); `close()` drops the store.
 */
export class MemoryOrganizationService extends OrganizationService {
  readonly #options: MemoryOrganizationOptions;
  #opened: { store: Store; pipeline: Pipeline } | undefined;
  #closed = false;

  private constructor(options: MemoryOrganizationOptions) {
    super((request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> => {
      // createOrganizationService(null) acts as SYSTEM, as in a host; the empty Guid as the default user.
      const userId = caller.userId === null ? SYSTEM_USER_ID : caller.userId === EMPTY_GUID ? undefined : caller.userId;
      return this.#open().pipeline.execute(request, userId === undefined ? {} : { userId }).then((result) => result.response);
    });
    this.#options = options;
  }

  static open(options: MemoryOrganizationOptions): MemoryOrganizationService {
    return new MemoryOrganizationService(options);
  }

  #open(): { store: Store; pipeline: Pipeline } {
    if (this.#opened) return this.#opened;
    if (this.#closed) throw new StoreError("STORE_CLOSED", "the store was closed");
    const { runtime, notification, clock, ids } = this.#options;
    const store = Store.open({ path: ":memory:" });
    const pipeline = new Pipeline({ store, registry: new Registry(), runtime, notification, ...(clock ? { clock } : {}), ...(ids ? { ids } : {}) });
    return (this.#opened = { store, pipeline });
  }

  /** Every record, by table and id, with its columns as SDK values. */
  snapshot(): Record<string, Record<string, Record<string, AttributeValue>>> {
    const out: Record<string, Record<string, Record<string, AttributeValue>>> = {};
    for (const row of this.#opened?.store.allRecords() ?? []) (out[row.entity] ??= {})[row.id] = fromPlain(row.attributes) as Record<string, AttributeValue>;
    return out;
  }

  close(): void {
    this.#closed = true;
    this.#opened?.store.close();
  }
}
