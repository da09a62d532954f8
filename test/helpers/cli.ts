import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repo = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const bin = path.join(repo, "dist/host/cli/bin.js");

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `plugbox` bin in a child process; `input`, when given, is its standard input (then closed). */
export function plugbox(args: string[], cwd = repo, env: Record<string, string> = {}, input?: string): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], { cwd, timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

export { bin };
