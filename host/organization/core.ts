/**
 * The core operations (Dataverse's stage 30) over the store: what Create, Retrieve, Update,
 * Delete, Associate, Disassociate, SetState, Assign and Upsert do to the data, with the values
 * the platform sets (createdon, modifiedon, ownerid, statecode, …) and, where a table schema is
 * declared, checks of every column and its type. The pipeline calls these inside its transaction.
 */
import { ColumnSet, Entity, EntityCollection, EntityReference, EMPTY_GUID, OptionSetValue } from "../../sdk/model.js";
import { OrganizationError } from "./errors.js";
import { isGuid, type Clock, type IdSource } from "../ids.js";
import type { DataStore } from "../store/engine.js";
import type { SchemaLookup } from "../store/table-schema.js";
import { primaryIdAttribute, storedAttributes, toEntity } from "./columns.js";
import { retrieveMultiple } from "./query/index.js";

export { checkColumnName, storedAttributes, toEntity } from "./columns.js";

export interface CoreDeps {
  store: DataStore;
  clock: Clock;
  ids: IdSource;
  schemaFor: SchemaLookup;
  /** The tables a manifest declares (none: every table is known). */
  tables: ReadonlyMap<string, unknown>;
}

export class OrganizationCore {
  readonly #deps: CoreDeps;
  constructor(deps: CoreDeps) {
    this.#deps = deps;
  }

  #now(): Date {
    return this.#deps.clock.now();
  }

  #user(userId: string): EntityReference {
    return new EntityReference("systemuser", userId);
  }

  async read(entity: string, id: string): Promise<Record<string, unknown> | undefined> {
    return (await this.#deps.store.getRecord(entity, id.toLowerCase()))?.attributes;
  }

  async #mustRead(entity: string, id: string): Promise<Record<string, unknown>> {
    const row = await this.read(entity, id);
    if (!row) throw new OrganizationError("ORG_NOT_FOUND", `${entity} with id ${id} does not exist`);
    return row;
  }

  /** Creates the record; returns its id. The target gets the id and the columns the platform set. */
  async create(target: Entity, userId: string): Promise<string> {
    const schema = this.#deps.schemaFor(target.logicalName);
    const idColumn = primaryIdAttribute(target.logicalName, schema);
    const fromColumn = target.attributes[idColumn];
    let id = target.id !== EMPTY_GUID ? target.id : isGuid(fromColumn) ? fromColumn : this.#deps.ids.newId();
    id = id.toLowerCase();
    const now = this.#now();
    const platform: Record<string, unknown> = {
      [idColumn]: id,
      createdon: now,
      modifiedon: now,
      createdby: this.#user(userId),
      modifiedby: this.#user(userId),
      ownerid: target.attributes.ownerid ?? this.#user(userId),
      statecode: target.attributes.statecode ?? new OptionSetValue(0),
      statuscode: target.attributes.statuscode ?? new OptionSetValue(1),
    };
    const attributes = { ...target.attributes, ...platform };
    // The primary key says what a read before the insert would have: whether the row exists.
    if (!(await this.#deps.store.insertRecord(target.logicalName, id, storedAttributes(target.logicalName, attributes, schema)))) {
      throw new OrganizationError("ORG_DUPLICATE", `${target.logicalName} with id ${id} already exists`);
    }
    target.id = id;
    Object.assign(target.attributes, platform);
    return id;
  }

  async retrieve(entity: string, id: string, columns: ColumnSet): Promise<Entity> {
    return toEntity(entity, id.toLowerCase(), await this.#mustRead(entity, id), columns);
  }

  async update(target: Entity, userId: string): Promise<void> {
    const existing = await this.#mustRead(target.logicalName, target.id);
    const schema = this.#deps.schemaFor(target.logicalName);
    const platform = { modifiedon: this.#now(), modifiedby: this.#user(userId) };
    const changes = storedAttributes(target.logicalName, { ...target.attributes, ...platform }, schema);
    delete changes[primaryIdAttribute(target.logicalName, schema)];
    await this.#deps.store.replaceRecord(target.logicalName, target.id.toLowerCase(), { ...existing, ...changes });
    Object.assign(target.attributes, platform);
  }

  async delete(entity: string, id: string): Promise<void> {
    if (!(await this.#deps.store.deleteRecord(entity, id.toLowerCase()))) throw new OrganizationError("ORG_NOT_FOUND", `${entity} with id ${id} does not exist`);
  }

  async associate(target: EntityReference, relationship: string, related: EntityReference[]): Promise<void> {
    await this.#mustRead(target.logicalName, target.id);
    for (const other of related) {
      await this.#mustRead(other.logicalName, other.id);
      await this.#deps.store.link(relationship, target.logicalName, target.id.toLowerCase(), other.logicalName, other.id.toLowerCase());
    }
  }

  async disassociate(target: EntityReference, relationship: string, related: EntityReference[]): Promise<void> {
    for (const other of related) {
      const a = [relationship, target.logicalName, target.id.toLowerCase(), other.logicalName, other.id.toLowerCase()] as const;
      const b = [relationship, other.logicalName, other.id.toLowerCase(), target.logicalName, target.id.toLowerCase()] as const;
      if (!(await this.#deps.store.unlink(...a)) && !(await this.#deps.store.unlink(...b))) {
        throw new OrganizationError("ORG_NOT_FOUND", `${target.logicalName} ${target.id} and ${other.logicalName} ${other.id} are not associated through ${relationship}`);
      }
    }
  }

  /** Runs a query; where the manifest declares tables, one it does not declare and that holds nothing is unknown. */
  async retrieveMultiple(query: object, entity: string | null): Promise<EntityCollection> {
    const { tables, store, schemaFor } = this.#deps;
    if (entity && tables.size > 0 && !tables.has(entity) && !(await store.hasRecords(entity))) {
      throw new OrganizationError("ORG_INVALID_ARGUMENT", `there is no table ${entity}: the manifest declares ${[...tables.keys()].join(", ")} and no ${entity} record exists; declare it under tables`);
    }
    return retrieveMultiple(store, query, { schemaFor });
  }

  /** Finds the record an Upsert targets: by id, or by one of the table's alternate keys. */
  async findForUpsert(target: Entity): Promise<string | undefined> {
    if (target.id !== EMPTY_GUID) return (await this.read(target.logicalName, target.id)) ? target.id.toLowerCase() : undefined;
    const keyValues = target.keyAttributes ?? {};
    const keyColumns = Object.keys(keyValues);
    if (keyColumns.length === 0) throw new OrganizationError("ORG_INVALID_ARGUMENT", "Upsert needs a Target with an id or with keyAttributes that form an alternate key");
    const schema = this.#deps.schemaFor(target.logicalName);
    const matches = Object.values(schema?.alternateKeys ?? {}).some((cols) => cols.length === keyColumns.length && cols.every((c) => keyColumns.includes(c)));
    if (!matches) {
      throw new OrganizationError("ORG_INVALID_ARGUMENT", `${keyColumns.join(", ")} is not an alternate key of ${target.logicalName}; declare it under tables.${target.logicalName}.alternateKeys`);
    }
    const wanted = storedAttributes(target.logicalName, keyValues, schema);
    return this.#deps.store.findRecordId(target.logicalName, Object.fromEntries(keyColumns.map((c) => [c, wanted[c]])));
  }
}
