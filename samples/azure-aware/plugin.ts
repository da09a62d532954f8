import { InvalidPluginExecutionError, type IPlugin, type IServiceProvider } from "plugbox/sdk";

/**
 * The custom Azure-aware plug-in of the Dataverse documentation, in TypeScript: it posts its
 * execution context to the service endpoint whose id is its unsecure configuration.
 *
 * Registered asynchronously, a failed post is retried by the system job, and this whole plug-in
 * runs again; so it does nothing but shape the context and post it.
 */
export class AzureAwarePlugin implements IPlugin {
  readonly #serviceEndpointId: string;

  constructor(unsecureConfig: string | null) {
    if (!unsecureConfig) throw new InvalidPluginExecutionError("Service endpoint ID should be passed as config.");
    this.#serviceEndpointId = unsecureConfig;
  }

  async execute(serviceProvider: IServiceProvider): Promise<void> {
    const tracing = serviceProvider.getService("ITracingService");
    const context = serviceProvider.getService("IPluginExecutionContext");
    const notification = serviceProvider.getService("IServiceEndpointNotificationService");

    tracing.trace("Posting the execution context.");
    context.sharedVariables.postedBy = "AzureAwarePlugin";
    try {
      const response = await notification.execute({ logicalName: "serviceendpoint", id: this.#serviceEndpointId }, context);
      if (response) tracing.trace("Response = {0}", response);
      tracing.trace("Done.");
    } catch (error) {
      tracing.trace("Exception: {0}", (error as Error).message);
      throw new InvalidPluginExecutionError(`Failed to post the context to the service endpoint: ${(error as Error).message}`);
    }
  }
}
