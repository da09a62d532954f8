/**
 * PlugboxError: a stable code, details and cause, and an `instanceof` that reads the code and a
 * brand, not the prototype chain, so errors made by another copy of plugbox (another module graph,
 * another realm) still match, and each area's class matches only its own codes.
 */
import vm from "node:vm";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { PlugboxError, isPlugboxError, WireFormatError, parseRemoteExecutionContext } from "../../dist/sdk/index.js";
import {
  PluginExecutionError,
  SandboxError,
  SandboxTimeoutError,
  ServiceError,
  StoreError,
  RelayError,
  OrganizationError,
  WebError,
} from "../../dist/host/index.js";
import { sandboxError } from "../../dist/host/testing/internal.js";
import { repo } from "../helpers/cli.js";

describe("PlugboxError", () => {
  it("carries its code, details and cause, and names its class and code", () => {
    const cause = new Error("SQLITE_BUSY");
    const error = new StoreError("STORE_BUSY", "the store is held", { cause, details: { path: "a.db" } });
    expect(error).toMatchObject({ code: "STORE_BUSY", message: "the store is held", details: { path: "a.db" }, name: "StoreError [STORE_BUSY]" });
    expect(error.cause).toBe(cause);
    expect(error).toBeInstanceOf(Error);
  });

  it("an area's class matches the codes of its table and no others", () => {
    const busy = new StoreError("STORE_BUSY", "held");
    expect(busy).toBeInstanceOf(PlugboxError);
    expect(busy).toBeInstanceOf(StoreError);
    expect(busy instanceof RelayError).toBe(false);
    expect(busy instanceof OrganizationError).toBe(false);
    expect(new WebError("WEB_LOOPBACK", "no") instanceof StoreError).toBe(false);
  });

  it("a narrower class matches its own codes: a timeout rebuilt from its code is a SandboxTimeoutError, a plug-in failure a PluginExecutionError", () => {
    const timeout = sandboxError("SANDBOX_CPU_LIMIT", "over");
    expect(timeout).toBeInstanceOf(SandboxTimeoutError);
    expect(timeout).toBeInstanceOf(SandboxError);
    expect(sandboxError("SANDBOX_CLOSED", "closed") instanceof SandboxTimeoutError).toBe(false);
    const failed = sandboxError("PLUGIN_FAILED", "on hold");
    expect(failed).toBeInstanceOf(PluginExecutionError);
    expect((failed as PluginExecutionError).status).toBe(0);
    expect(new ServiceError("SERVICE_FAILED", "x") instanceof SandboxError).toBe(false);
  });

  it("an object that only looks like a plugbox error (a code and a message, no brand) is not one", () => {
    const forged = Object.assign(new Error("forged"), { code: "STORE_BUSY" });
    expect(forged instanceof PlugboxError).toBe(false);
    expect(forged instanceof StoreError).toBe(false);
    expect(isPlugboxError(forged)).toBe(false);
    expect(isPlugboxError(new StoreError("STORE_BUSY", "held"), "STORE_BUSY")).toBe(true);
    expect(isPlugboxError(new StoreError("STORE_BUSY", "held"), "STORE_FULL")).toBe(false);
  });

  it("errors made by another copy of the module (another module graph) match this copy's classes by code", async () => {
    const copy = (await import(/* @vite-ignore */ `${pathToFileURL(path.join(repo, "dist/sdk/errors.js")).href}?copy`)) as typeof import("../../dist/sdk/errors.js");
    expect(copy.PlugboxError).not.toBe(PlugboxError);
    const foreign = new copy.PlugboxError("STORE_FULL", "the disk is full");
    expect(foreign).toBeInstanceOf(PlugboxError);
    expect(foreign).toBeInstanceOf(StoreError);
    expect(foreign instanceof RelayError).toBe(false);
    expect(new StoreError("STORE_FULL", "x")).toBeInstanceOf(copy.PlugboxError);
  });

  it("errors made in another realm match this realm's classes by code", () => {
    const source = readFileSync(path.join(repo, "dist/sdk/errors.js"), "utf8").replace(/^export /gm, "");
    const realm = vm.createContext({});
    const foreign = vm.runInContext(`${source}\nnew PlugboxError("RELAY_TIMEOUT", "no answer")`, realm) as unknown;
    expect(foreign instanceof Error).toBe(false);
    expect(foreign).toBeInstanceOf(PlugboxError);
    expect(foreign).toBeInstanceOf(RelayError);
    expect(foreign instanceof StoreError).toBe(false);
  });

  it("the SDK's wire errors are PlugboxErrors with their own codes", () => {
    let thrown: unknown;
    try {
      parseRemoteExecutionContext("{ not json");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(WireFormatError);
    expect(thrown).toBeInstanceOf(PlugboxError);
    expect(thrown).toMatchObject({ code: "WIRE_INVALID" });
  });
});
