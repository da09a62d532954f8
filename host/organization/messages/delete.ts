import { readEntityReference } from "../arguments.js";
import type { Message } from "./message.js";

export const deleteMessage: Message = {
  name: "Delete",
  hasPreImage: true,
  hasPostImage: false,
  sharedThroughParent: true,
  async run(op, { core }) {
    const target = readEntityReference(op.inputParameters.Target, "Target");
    await core.delete(target.logicalName, target.id);
  },
};
