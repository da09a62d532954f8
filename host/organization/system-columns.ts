import type { ColumnType } from "../store/table-schema.js";

/** Columns the platform maintains on every table; a table schema need not declare them. */
export const SYSTEM_COLUMN_TYPES: Readonly<Record<string, ColumnType>> = Object.freeze({
  createdon: "datetime",
  modifiedon: "datetime",
  createdby: "lookup",
  modifiedby: "lookup",
  ownerid: "lookup",
  statecode: "optionset",
  statuscode: "optionset",
  versionnumber: "number",
});
