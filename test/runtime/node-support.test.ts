import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isolatedVmBinding, SUPPORTED_NODE_MAJORS } from "../../dist/host/index.js";
import { ISOLATED_VM_BINDINGS, selectBinding } from "../../dist/host/testing/internal.js";
import { plugbox, repo, type CliRun } from "../helpers/cli.js";

/** What package.json installs for each Node.js major: the README's requirements say the same. */
const expected: Record<number, { isolatedVm: string; package: string }> = {
  20: { isolatedVm: "5.0.4", package: "@plugbox/isolated-vm-5" },
  22: { isolatedVm: "6.2.0", package: "@plugbox/isolated-vm-6" },
  24: { isolatedVm: "7.0.1", package: "@plugbox/isolated-vm-7" },
  26: { isolatedVm: "7.0.1", package: "@plugbox/isolated-vm-7" },
};
const major = Number(process.versions.node.split(".")[0]);
const resolveFromIvm = createRequire(path.join(repo, "dist/runtime/worker/ivm.js")).resolve;

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-node-support-"));
  const built = await plugbox(["build", "samples/hello/plugin.ts", "-o", path.join(dir, "hello.js")]);
  expect(built.code, built.stderr).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the Node.js versions plugbox runs on", () => {
  it("supports Node.js 20, 22, 24 and 26, each with the isolated-vm made for it", () => {
    expect(SUPPORTED_NODE_MAJORS).toEqual([20, 22, 24, 26]);
    expect(Object.fromEntries(ISOLATED_VM_BINDINGS.map((b) => [b.nodeMajor, b.package]))).toEqual(
      Object.fromEntries(Object.entries(expected).map(([node, e]) => [node, e.package])),
    );
  });

  it("on this Node.js the sandbox uses the isolated-vm installed for it", () => {
    expect(isolatedVmBinding()).toEqual({ node: process.versions.node, ...expected[major] });
  });

  it("npm installed only this Node's isolated-vm: asking for another Node's says to run npm ci with that Node", () => {
    for (const { nodeMajor, package: pkg } of ISOLATED_VM_BINDINGS) {
      const version = `${nodeMajor}.0.0`;
      if (pkg === expected[major]!.package) {
        expect(selectBinding(version, resolveFromIvm)).toMatchObject({ isolatedVm: expected[major]!.isolatedVm, package: pkg });
      } else {
        expect(() => selectBinding(version, resolveFromIvm)).toThrow(
          expect.objectContaining({
            code: "SANDBOX_UNSUPPORTED_NODE",
            message: `isolated-vm for Node.js ${nodeMajor} (${pkg}) is not installed: run npm ci (or npm install) with this Node.js, ${version}`,
          }),
        );
      }
    }
  });

  it("a Node.js with no isolated-vm (18, the odd 23 and 25, a future 28) is refused in one line naming the supported versions", () => {
    for (const version of ["18.20.8", "23.11.1", "25.9.0", "28.0.0"]) {
      expect(() => selectBinding(version, resolveFromIvm)).toThrow(
        expect.objectContaining({ code: "SANDBOX_UNSUPPORTED_NODE", message: `plugbox runs on Node.js 20, 22, 24 and 26; this is Node.js ${version}` }),
      );
    }
  });

  it("plugbox --version names the Node.js and the isolated-vm the sandbox runs on", async () => {
    const run = await plugbox(["--version"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(`0.1.0 (Node.js ${process.versions.node}, isolated-vm ${expected[major]!.isolatedVm})`);
  });

  it("plugbox run --json reports the Node.js and isolated-vm the plug-in ran on", async () => {
    const run = await plugbox(["run", path.join(dir, "hello.js"), "--type", "HelloPlugin", "--target", "samples/hello/account.json", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, sandbox: { node: process.versions.node, ...expected[major] } });
  });

  describe("a checkout whose isolated-vm was installed under another Node.js", () => {
    let checkout: string;
    beforeAll(() => {
      // The same build and dependencies, without the helper packages: what this Node finds after
      // `npm ci` ran under a Node whose engines matched none of them.
      checkout = path.join(dir, "checkout");
      mkdirSync(path.join(checkout, "node_modules"), { recursive: true });
      cpSync(path.join(repo, "dist"), path.join(checkout, "dist"), { recursive: true });
      cpSync(path.join(repo, "package.json"), path.join(checkout, "package.json"));
      for (const entry of readdirSync(path.join(repo, "node_modules"))) {
        if (entry !== "@plugbox") symlinkSync(path.join(repo, "node_modules", entry), path.join(checkout, "node_modules", entry));
      }
    });
    const run = (args: string[]) =>
      new Promise<CliRun>((resolve) => {
        execFile(process.execPath, [path.join(checkout, "dist/host/cli/bin.js"), ...args], { cwd: repo, timeout: 60_000 }, (error, stdout, stderr) => {
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
        });
      });
    const missing = `isolated-vm for Node.js ${major} (${expected[major]!.package}) is not installed: run npm ci (or npm install) with this Node.js, ${process.versions.node}`;

    it("plugbox run fails at first use in one line that says to run npm ci, exit code 2", async () => {
      const result = await run(["run", path.join(dir, "hello.js"), "--type", "HelloPlugin"]);
      expect(result).toEqual({ code: 2, stdout: "", stderr: `plugbox: error [SANDBOX_UNSUPPORTED_NODE]: ${missing}\n` });
    });

    it("plugbox --version says so instead of naming an isolated-vm", async () => {
      const result = await run(["--version"]);
      expect(result).toEqual({ code: 0, stdout: `0.1.0 (${missing})\n`, stderr: "" });
    });
  });
});
