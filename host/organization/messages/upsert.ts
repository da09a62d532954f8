import { EntityReference } from "../../../sdk/model.js";
import { readEntity } from "../arguments.js";
import type { Message } from "./message.js";

/** An Upsert is a Create or an Update, with the steps of the one it performs (inside this transaction). */
export const upsert: Message = {
  name: "Upsert",
  target: "entity",
  hasPreImage: true,
  async run(op, { core, nested }) {
    const target = readEntity(op.inputParameters.Target, "Target");
    const existing = await core.findForUpsert(target);
    const keys = target.keyAttributes ?? {};
    if (existing) {
      target.id = existing;
      for (const column of Object.keys(keys)) delete target.attributes[column]; // the key identifies the record; it does not change it
    } else {
      for (const [column, value] of Object.entries(keys)) if (!(column in target.attributes)) target.attributes[column] = value;
    }
    const response = await nested({ requestName: existing ? "Update" : "Create", parameters: { Target: target } }, op);
    const id = existing ?? (response.results.id as string);
    op.outputParameters.RecordCreated = !existing;
    op.primaryId = id;
    op.outputParameters.Target = new EntityReference(target.logicalName, id);
  },
};
