import { Entity, InvalidPluginExecutionError, type IPlugin, type IServiceProvider } from "plugbox/sdk";

/**
 * Calls a web service from a plug-in: on Create of an account, looks up a credit score from the
 * service whose base URL is the step's unsecure configuration, and stores it on the target.
 * The network policy decides which hosts are reachable (docs/web-client.md). What the service must
 * answer, and how to run this against a local one: README.md beside this file.
 */
export class CreditCheck implements IPlugin {
  readonly #baseUrl: string;
  constructor(unsecureConfig: string | null) {
    this.#baseUrl = unsecureConfig ?? "https://credit.example.com";
  }

  async execute(serviceProvider: IServiceProvider): Promise<void> {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const tracing = serviceProvider.getService("ITracingService");
    const web = serviceProvider.getService("IWebClient");
    const target = context.inputParameters.Target as Entity;
    const url = `${this.#baseUrl}/score?name=${encodeURIComponent(String(target.attributes.name ?? ""))}`;
    tracing.trace("GET {0}", url);
    const response = await web.fetch(url, { headers: { accept: "application/json" } });
    if (!response.ok) throw new InvalidPluginExecutionError(`The credit service answered ${response.status}.`);
    const { score } = (await response.json()) as { score: number };
    tracing.trace("score {0}", score);
    target.attributes.creditscore = score;
  }
}
