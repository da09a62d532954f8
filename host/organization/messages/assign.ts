import { Entity } from "../../../sdk/model.js";
import { readEntityReference } from "../arguments.js";
import type { Message } from "./message.js";

export const assign: Message = {
  name: "Assign",
  hasPreImage: true,
  async run(op, { core }) {
    const target = readEntityReference(op.inputParameters.Target, "Target");
    const assignee = readEntityReference(op.inputParameters.Assignee, "Assignee");
    await core.update(new Entity(target.logicalName, target.id, { ownerid: assignee }), op.scope.userId);
  },
};
