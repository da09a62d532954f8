/**
 * `--inspect[=port]` and `--inspect-brk[=port]`: debug a plug-in with Chrome DevTools or VS Code.
 * The flags turn on the sandbox runtime's debug mode (its `inspector` option), which nothing else
 * in the CLI, no manifest and no plug-in can reach.
 */
import { InvalidArgumentError } from "commander";
import { DEFAULT_INSPECTOR_PORT, type InspectorOptions } from "../../runtime/index.js";

export interface InspectFlags {
  /** true for the bare flag, or the port. */
  inspect?: true | number;
  inspectBrk?: true | number;
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65_535) throw new InvalidArgumentError("expected a port from 0 to 65535 (0 picks a free one)");
  return n;
}

/** `.option(...INSPECT_FLAG)`: true for the bare flag, or the port. */
export const INSPECT_FLAG = ["--inspect [port]", `let a debugger (chrome://inspect, VS Code) attach to the plug-in on 127.0.0.1:port (default ${DEFAULT_INSPECTOR_PORT}; 0 picks a free one)`, port] as const;
export const INSPECT_BRK_FLAG = ["--inspect-brk [port]", "as --inspect, and wait for the debugger to attach before the plug-in runs", port] as const;

/** The runtime's inspector option for these flags, telling the user where to attach (on stderr); undefined without them. */
export function inspectorFromFlags(flags: InspectFlags, err: (text: string) => void): InspectorOptions | undefined {
  const given = flags.inspectBrk ?? flags.inspect;
  if (given === undefined) return undefined;
  const wait = flags.inspectBrk !== undefined;
  return {
    port: given === true ? DEFAULT_INSPECTOR_PORT : given,
    wait,
    onListening: ({ url, devtoolsFrontendUrl }) => {
      err(`Debugger listening on ${url}; open chrome://inspect (or attach VS Code to 127.0.0.1:${new URL(url).port})`);
      err(`  DevTools: ${devtoolsFrontendUrl}`);
      err("  debug mode: the wall-clock and CPU limits stop while the plug-in is paused; service calls keep their own limits");
      if (wait) err("Waiting for the debugger to attach and run the plug-in…");
    },
  };
}
