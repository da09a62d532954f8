import { readEntity } from "../arguments.js";
import type { Message } from "./message.js";

export const update: Message = {
  name: "Update",
  target: "entityWithId",
  hasPreImage: true,
  sharedThroughParent: true,
  async run(op, { core }) {
    const target = readEntity(op.inputParameters.Target, "Target", true);
    await core.update(target, op.scope.userId);
    op.inputParameters.Target = target;
  },
};
