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
import { Store } from "../store/store.js";
import { Pipeline } from "./pipeline.js";

export interface MemoryOrganizationOptions {
  runtime: SandboxRuntime;
  notification: NotificationBackend;
  clock?: Clock | undefined;
  ids?: IdSource | undefined;
}

/** A store-backed organization service over its own `:memory:` store; `close()` drops the store. */
export class MemoryOrganizationService extends OrganizationService {
  readonly #store: Store;

  private constructor(store: Store, pipeline: Pipeline) {
    super((request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> => {
      // createOrganizationService(null) acts as SYSTEM, as in a host; the empty Guid as the default user.
      const userId = caller.userId === null ? SYSTEM_USER_ID : caller.userId === EMPTY_GUID ? undefined : caller.userId;
      return pipeline.execute(request, userId === undefined ? {} : { userId }).then((result) => result.response);
    });
    this.#store = store;
  }

  static open(options: MemoryOrganizationOptions): MemoryOrganizationService {
    const store = Store.open({ path: ":memory:" });
    const pipeline = new Pipeline({
      store,
      registry: new Registry(),
      runtime: options.runtime,
      notification: options.notification,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.ids ? { ids: options.ids } : {}),
    });
    return new MemoryOrganizationService(store, pipeline);
  }

  /** Every record, by table and id, with its columns as SDK values. */
  snapshot(): Record<string, Record<string, Record<string, AttributeValue>>> {
    const out: Record<string, Record<string, Record<string, AttributeValue>>> = {};
    for (const row of this.#store.allRecords()) (out[row.entity] ??= {})[row.id] = fromPlain(row.attributes) as Record<string, AttributeValue>;
    return out;
  }

  close(): void {
    this.#store.close();
  }
}
