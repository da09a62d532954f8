import { OrganizationError } from "../errors.js";
import type { Message } from "./message.js";

export const retrieveMultiple: Message = {
  name: "RetrieveMultiple",
  async run(op, { core }) {
    const query = op.inputParameters.Query;
    if (typeof query !== "object" || query === null) throw new OrganizationError("ORG_INVALID_ARGUMENT", "RetrieveMultiple needs a Query: a QueryExpression, QueryByAttribute or FetchExpression");
    op.outputParameters.BusinessEntityCollection = await core.retrieveMultiple(query, op.entity);
  },
};
