import { Entity, InvalidPluginExecutionError, type IPlugin, type IServiceProvider } from "plugbox/sdk";

/**
 * A first plug-in: on Create of an account, traces what it sees, sets a column on the target
 * (stage 20 writes it with the record), creates a follow-up task through the organization
 * service and passes a shared variable on to later steps.
 */
export class HelloPlugin implements IPlugin {
  constructor(private readonly greeting: string | null) {}

  async execute(serviceProvider: IServiceProvider): Promise<void> {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const tracing = serviceProvider.getService("ITracingService");
    tracing.trace("{0} of {1} at stage {2}", context.messageName, context.primaryEntityName, context.stage);

    const target = context.inputParameters.Target as Entity | undefined;
    if (!target) throw new InvalidPluginExecutionError("HelloPlugin expects a Target entity");
    const name = target.attributes.name;
    if (typeof name !== "string" || name.trim() === "") {
      throw new InvalidPluginExecutionError("An account needs a name.");
    }
    target.attributes.description = `${this.greeting ?? "Hello"}, ${name}!`;

    const service = serviceProvider.getService("IOrganizationServiceFactory").createOrganizationService(context.userId);
    const taskId = await service.create(new Entity("task", undefined, { subject: `Welcome ${name}` }));
    tracing.trace("created task %s", taskId);
    context.sharedVariables.welcomeTaskId = taskId;
  }
}
