/**
 * parseCapturedContext (plugbox/testing, and `plugbox replay`): a RemoteExecutionContext captured
 * elsewhere, here the Dataverse documentation's example (an asynchronous Update of a contact, with a
 * parent context, a dated operation and no RequestId), reaches a plug-in as it was captured, from
 * Dataverse JSON or a `listen --json` line alike. (Text XML bodies: test/host/cli/cli-replay.test.ts.)
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestHost, parseCapturedContext } from "../../../dist/host/testing/index.js";
import type { Bundle } from "../../../dist/host/index.js";
import { parseRemoteExecutionContext, serializeRemoteExecutionContext, toPlain } from "../../../dist/sdk/index.js";
import { repo } from "../../helpers/cli.js";

const exampleA = readFileSync(new URL("../../fixtures/wire/example-a.json", import.meta.url), "utf8");
const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";

/** The context as plain data, with the shared variable the azure-aware plug-in adds before it posts. */
function expected(): Record<string, unknown> {
  const plain = toPlain(parseRemoteExecutionContext(exampleA)) as Record<string, unknown>;
  return { ...plain, sharedVariables: { ...(plain.sharedVariables as object), postedBy: "AzureAwarePlugin" } };
}

/** The members of `context` the example has: plugbox posts two more (the users' Azure AD object ids), which the 2017 example predates. */
function asInExample(context: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(expected()).map((key) => [key, context[key]]));
}

describe("parseCapturedContext", () => {
  let host: TestHost;
  let plugin: Bundle;
  beforeAll(async () => {
    host = await TestHost.create();
    plugin = await host.build(`${repo}/samples/azure-aware/plugin.ts`);
  });
  afterAll(async () => {
    await host.close();
  });

  /** Runs the azure-aware sample on the context read from `text`; returns what it posted, as Dataverse would read it. */
  async function replayed(text: string): Promise<Record<string, unknown>> {
    const before = host.notifications.posts.length;
    const result = await host.run({ bundle: plugin, typeName: "AzureAwarePlugin", unsecureConfig: ENDPOINT, context: parseCapturedContext(text).context });
    expect(result.ok, JSON.stringify(result.error)).toBe(true);
    const posts = host.notifications.posts.slice(before);
    expect(posts).toHaveLength(1);
    return toPlain(parseRemoteExecutionContext(serializeRemoteExecutionContext(posts[0]!.context))) as Record<string, unknown>;
  }

  it("Dataverse JSON: the plug-in gets the documented Update of a contact at stage 40, async, its ids, users, images, parent context and operation", async () => {
    const captured = parseCapturedContext(exampleA);
    expect(captured.form).toBe("json");
    expect(captured.context).toMatchObject({ messageName: "Update", primaryEntityName: "contact", stage: 40, mode: "async", depth: 1 });
    const posted = await replayed(exampleA);
    expect(posted).toMatchObject({ messageName: "Update", primaryEntityName: "contact", primaryEntityId: "6d81597f-0f9f-e711-8122-000d3aa2331c", isolationMode: 1, requestId: null });
    expect(posted.parentContext).toMatchObject({ messageName: "Update", stage: 30 });
    expect(asInExample(posted)).toEqual(expected());
  });

  it("a `listen --json` line of the same context, or its context member alone, reaches the plug-in the same", async () => {
    const plain = toPlain(parseRemoteExecutionContext(exampleA));
    const line = JSON.stringify({ messageId: "m-1", contentType: "application/json", properties: {}, context: plain });
    expect(parseCapturedContext(line)).toMatchObject({ form: "listen", messageId: "m-1" });
    expect(asInExample(await replayed(line))).toEqual(expected());
    expect(parseCapturedContext(JSON.stringify(plain)).form).toBe("plugbox");
    expect(asInExample(await replayed(JSON.stringify(plain)))).toEqual(expected());
  });

  it("refuses what is no context with REPLAY_NOT_A_CONTEXT, naming where it was read", () => {
    expect(() => parseCapturedContext('{"name":"Contoso"}', "the body of hook 7")).toThrow(expect.objectContaining({ code: "REPLAY_NOT_A_CONTEXT", message: expect.stringMatching(/^the body of hook 7 holds JSON that is not an execution context/) }));
  });
});
