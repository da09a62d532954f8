import { Entity, InvalidPluginExecutionError, OperationStatus, type IPlugin, type IServiceProvider } from "plugbox/sdk";

/** Stage 20 (pre-operation) on account Create: sets a column, which is saved with the record. */
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
    target.attributes.accountnumber = `${this.#prefix}-${name.slice(0, 3).toUpperCase()}-${context.correlationId.slice(0, 4)}`;
    context.sharedVariables.numberedBy = "AccountNumbering";
    serviceProvider.getService("ITracingService").trace("numbered {0} as {1}", name, target.attributes.accountnumber);
  }
}

/** Stage 40, asynchronous, on account Create: runs as a system job after the commit and creates a follow-up task. */
export class WelcomeTask implements IPlugin {
  async execute(serviceProvider: IServiceProvider): Promise<void> {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const tracing = serviceProvider.getService("ITracingService");
    tracing.trace("system job {0} for account {1}", context.operationId, context.primaryEntityId);
    const service = serviceProvider.getService("IOrganizationServiceFactory").createOrganizationService(context.userId);
    try {
      const account = await service.retrieve("account", context.primaryEntityId, { columns: ["name", "accountnumber"] });
      await service.create(
        new Entity("task", undefined, {
          subject: `Welcome ${String(account.attributes.name)} (${String(account.attributes.accountnumber)})`,
          regardingobjectid: account.toEntityReference?.() ?? { logicalName: "account", id: account.id },
        }),
      );
    } catch (error) {
      // A transient failure: ask the asynchronous service to run this job again later.
      throw new InvalidPluginExecutionError(OperationStatus.Retry, `could not create the welcome task: ${(error as Error).message}`);
    }
  }
}
