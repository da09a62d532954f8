import { fromPlain } from "../../../sdk/codec.js";
import { Entity } from "../../../sdk/model.js";
import { OrganizationError } from "../errors.js";
import { readEntityReference } from "../arguments.js";
import type { Message } from "./message.js";

function optionValue(value: unknown, what: string): number {
  if (typeof value === "number") return value;
  const v = (value as { value?: unknown } | undefined)?.value;
  if (typeof v !== "number") throw new OrganizationError("ORG_INVALID_ARGUMENT", `${what} must be an OptionSetValue`);
  return v;
}

export const setState: Message = {
  name: "SetState",
  hasPreImage: true,
  async run(op, { core }) {
    const p = op.inputParameters;
    const moniker = readEntityReference(p.EntityMoniker, "EntityMoniker");
    const state = optionValue(p.State, "State");
    const status = optionValue(p.Status, "Status");
    const changes = { statecode: fromPlain({ $type: "OptionSetValue", value: state }) as never, statuscode: fromPlain({ $type: "OptionSetValue", value: status }) as never };
    await core.update(new Entity(moniker.logicalName, moniker.id, changes), op.scope.userId);
  },
};
