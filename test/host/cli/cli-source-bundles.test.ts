/**
 * A manifest may name a plug-in module's TypeScript source as a bundle: the host bundles it in
 * memory when it starts. `plugbox/sdk` resolves from the plug-in's project, or, in a folder where
 * none is installed, to the SDK of the plugbox that runs it.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../../helpers/cli.js";

let dir: string;
beforeAll(() => {
  // A bare folder: no package.json, no node_modules.
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-source-bundles-"));
  cpSync(path.join(repo, "samples/plugin-project/src"), path.join(dir, "src"), { recursive: true });
  cpSync(path.join(repo, "samples/plugin-project/plugbox.json"), path.join(dir, "plugbox.json"));
  writeFileSync(path.join(dir, "create.json"), JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: { name: "Contoso" } } } }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a manifest whose bundle is a TypeScript module", () => {
  it("exec bundles it when the host starts and runs its steps, in a folder with no plugbox installed", async () => {
    const db = path.join(dir, "store.db");
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create.json", "--db", db], dir, { PLUGBOX_SB_CONNECTION: "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=v" });
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toMatch(/stage 20 sync: Number new accounts — ok/);
    expect(exec.stdout).toMatch(/numbered Contoso as ACC-CON-\d{8}/);
  });

  it("a module that does not build is BUILD_FAILED naming the file and the error, exit 2", async () => {
    writeFileSync(path.join(dir, "broken.ts"), "export class Broken { execute( { }\n");
    writeFileSync(path.join(dir, "broken.json"), JSON.stringify({ bundles: { b: { path: "broken.ts", types: ["Broken"] } }, steps: [{ bundle: "b", type: "Broken", message: "Create", entity: "account", stage: 20 }] }));
    const exec = await plugbox(["exec", "--manifest", "broken.json", "--request", "create.json"], dir);
    expect(exec.code).toBe(2);
    expect(exec.stderr).toMatch(/error \[BUILD_FAILED\]: cannot bundle .*broken\.ts:\nbroken\.ts:2:1: Expected "\)" but found end of file/);
  });
});
