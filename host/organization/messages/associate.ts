import { OrganizationError } from "../errors.js";
import { readEntityReference, readLogicalName } from "../arguments.js";
import type { Message, MessageOperation } from "./message.js";

function readLink(p: Record<string, unknown>) {
  const target = readEntityReference(p.Target, "Target");
  const relationship = typeof p.Relationship === "string" ? p.Relationship : readLogicalName((p.Relationship as { schemaName?: unknown } | undefined)?.schemaName, "Relationship.schemaName");
  if (!Array.isArray(p.RelatedEntities)) throw new OrganizationError("ORG_INVALID_ARGUMENT", "RelatedEntities must be an array of EntityReference");
  const related = p.RelatedEntities.map((r, i) => readEntityReference(r, `RelatedEntities[${i}]`));
  return { target, relationship, related };
}

export const associate: Message = {
  name: "Associate",
  async run(op: MessageOperation, { core }) {
    const { target, relationship, related } = readLink(op.inputParameters);
    await core.associate(target, relationship, related);
  },
};

export const disassociate: Message = {
  name: "Disassociate",
  async run(op: MessageOperation, { core }) {
    const { target, relationship, related } = readLink(op.inputParameters);
    await core.disassociate(target, relationship, related);
  },
};
