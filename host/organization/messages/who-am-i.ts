import type { Message } from "./message.js";

export const whoAmI: Message = {
  name: "WhoAmI",
  run(op, { identity }) {
    op.outputParameters.UserId = op.scope.userId;
    op.outputParameters.BusinessUnitId = identity.businessUnitId;
    op.outputParameters.OrganizationId = identity.organizationId;
  },
};
