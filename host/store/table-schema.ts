/**
 * Optional table schemas. Where one is declared for a table, a write or a query that names an
 * unknown column is an error, and values are checked against the column's type.
 */
export type ColumnType =
  | "string"
  | "number"
  | "boolean"
  | "datetime"
  | "guid"
  | "lookup" // EntityReference
  | "optionset" // OptionSetValue
  | "money" // Money
  | "multiselect"; // OptionSetValueCollection

export interface TableSchema {
  /** The table's logical name. */
  logicalName: string;
  /** @default `${logicalName}id` */
  primaryIdAttribute?: string;
  /** The column that names a row (used in images of async steps). @default "name" */
  primaryNameAttribute?: string;
  columns: Record<string, ColumnType>;
  /** Alternate keys: key name → the columns that make it up (used by Upsert). */
  alternateKeys?: Record<string, string[]>;
}

/** Looks up the schema declared for a table, if any. */
export type SchemaLookup = (logicalName: string) => TableSchema | undefined;
