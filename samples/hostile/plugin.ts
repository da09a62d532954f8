import type { IPlugin, IServiceProvider } from "plugbox/sdk";

/** Never returns: the sandbox stops it at its CPU limit (SANDBOX_CPU_LIMIT, exit code 3). */
export class EndlessLoop implements IPlugin {
  execute(serviceProvider: IServiceProvider): void {
    serviceProvider.getService("ITracingService").trace("about to spin forever");
    for (;;) {
      // spin
    }
  }
}

/** Grows the heap until its isolate's memory limit stops it (SANDBOX_MEMORY_LIMIT, exit code 3). */
export class MemoryBomb implements IPlugin {
  execute(): void {
    const hoard: number[][] = [];
    for (;;) hoard.push(new Array(10_000).fill(Math.random()));
  }
}

/** Tries to reach Node.js from inside the sandbox; there is nothing to reach (exit code 1). */
export class EscapeArtist implements IPlugin {
  execute(serviceProvider: IServiceProvider): void {
    const tracing = serviceProvider.getService("ITracingService");
    tracing.trace("typeof process = {0}, typeof require = {1}", typeof (globalThis as Record<string, unknown>).process, typeof (globalThis as Record<string, unknown>).require);
    const escape = Function("return process")() as { exit(code: number): never };
    escape.exit(0);
  }
}
