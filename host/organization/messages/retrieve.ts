import { readColumnSet, readEntityReference } from "../arguments.js";
import type { Message } from "./message.js";

export const retrieve: Message = {
  name: "Retrieve",
  async run(op, { core }) {
    const target = readEntityReference(op.inputParameters.Target, "Target");
    op.outputParameters.BusinessEntity = await core.retrieve(target.logicalName, target.id, readColumnSet(op.inputParameters.ColumnSet));
  },
};
