/**
 * The plug-ins of the scale-out benchmark, bundled with buildBundle: a synchronous stage-20 step
 * that numbers an account, and an asynchronous stage-40 step (a system job each) that reads what
 * the Create left in its context and traces it. Neither queries the store.
 */
import type { Entity, IPlugin, IServiceProvider } from "../sdk/index.js";

export class ScaleNumbering implements IPlugin {
  execute(serviceProvider: IServiceProvider): void {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const target = context.inputParameters.Target as Entity;
    target.attributes.accountnumber = `ACC-${String(target.attributes.name).slice(0, 3).toUpperCase()}`;
  }
}

export class ScaleFollowUp implements IPlugin {
  execute(serviceProvider: IServiceProvider): void {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const target = context.inputParameters.Target as Entity;
    serviceProvider.getService("ITracingService").trace("account {0} numbered {1}", context.primaryEntityId, String(target.attributes.accountnumber));
  }
}
