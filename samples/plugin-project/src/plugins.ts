import { Entity, EntityReference, InvalidPluginExecutionError, type IPlugin, type IServiceProvider } from "plugbox/sdk";

/**
 * Stage 20 (pre-operation), synchronous, on Create of account: numbers the account
 * ("ACC-CON-20260301": the prefix from the step's configuration, the name's first three letters,
 * the day it was created). The column is saved with the record.
 */
export class AccountNumbering implements IPlugin {
  readonly #prefix: string;

  constructor(unsecureConfig: string | null) {
    this.#prefix = unsecureConfig ?? "ACC";
  }

  execute(serviceProvider: IServiceProvider): void {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const target = context.inputParameters.Target as Entity;
    const name = target.attributes.name;
    if (typeof name !== "string" || name.trim() === "") throw new InvalidPluginExecutionError("An account needs a name.");
    const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    target.attributes.accountnumber = `${this.#prefix}-${name.trim().slice(0, 3).toUpperCase()}-${day}`;
    serviceProvider.getService("ITracingService").trace("numbered {0} as {1}", name, target.attributes.accountnumber);
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Stage 40 (post-operation), asynchronous, on Create of account: runs as a system job after the
 * account is saved, and creates a task to call the new account within two days.
 */
export class FollowUpTask implements IPlugin {
  async execute(serviceProvider: IServiceProvider): Promise<void> {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const created = context.postEntityImages.created;
    if (!created) throw new InvalidPluginExecutionError("FollowUpTask needs the post-image 'created'.");
    const service = serviceProvider.getService("IOrganizationServiceFactory").createOrganizationService(context.userId);
    const taskId = await service.create(
      new Entity("task", undefined, {
        subject: `Call ${String(created.attributes.name)} (${String(created.attributes.accountnumber)})`,
        scheduledend: new Date(Date.now() + 2 * DAY_MS),
        regardingobjectid: new EntityReference("account", context.primaryEntityId),
      }),
    );
    serviceProvider.getService("ITracingService").trace("follow-up task {0} for account {1}", taskId, context.primaryEntityId);
  }
}
