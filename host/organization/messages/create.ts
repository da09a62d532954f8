import { readEntity } from "../arguments.js";
import type { Message } from "./message.js";

export const create: Message = {
  name: "Create",
  target: "entity",
  sharedThroughParent: true,
  async run(op, { core }) {
    const target = readEntity(op.inputParameters.Target, "Target");
    const id = await core.create(target, op.scope.userId);
    op.inputParameters.Target = target;
    op.outputParameters.id = id;
    op.primaryId = id;
  },
};
