/**
 * Values are checked where they enter: a typed value that breaks its type's rules is never stored,
 * whichever way it comes in, and a target id that is not a Guid never reaches a plug-in.
 */
import { describe, expect, it } from "vitest";
import { buildContext } from "../dist/host/testing/internal.js";
import { createHost } from "../dist/host/index.js";
import { Entity, Money, OptionSetValue, OptionSetValueCollection } from "../dist/sdk/index.js";

describe("validation where values enter", () => {
  it("a Money that is not a finite number, or an option set value that is not an integer, made in code, is refused by the store with the column named", async () => {
    const host = await createHost({
      manifest: { tables: { account: { columns: { name: "string", revenue: "money", industrycode: "optionset", tags: "multiselect" } } } },
      runJobs: false,
      runtimeOptions: { workers: 1, prewarmIsolates: 0, startOnFirstExecution: true },
    });
    try {
      const create = (attributes: Record<string, unknown>) => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "x", ...attributes } as never) } });
      await expect(create({ revenue: new Money("lots" as never) })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.revenue: a Money's value must be a finite number") });
      await expect(create({ revenue: new Money(Number.POSITIVE_INFINITY) })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT" });
      await expect(create({ industrycode: new OptionSetValue("seven" as never) })).rejects.toMatchObject({ message: expect.stringContaining("account.industrycode: an OptionSetValue's value must be an integer") });
      await expect(create({ tags: new OptionSetValueCollection([1, 2.5]) })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT" });
      // Without a declared table too: a Money is a number whatever the column.
      await expect(host.execute({ requestName: "Create", parameters: { Target: new Entity("contact", undefined, { budget: new Money("much" as never) }) } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT" });
      await expect(create({ revenue: new Money(10), industrycode: new OptionSetValue(7) })).resolves.toBeDefined();
      expect(host.store.allRecords()).toHaveLength(1);
    } finally {
      await host.close();
    }
  });

  it("a target whose id is not a Guid is refused before any plug-in sees it", () => {
    expect(() => buildContext({ target: new Entity("account", "not-a-guid") })).toThrow(expect.objectContaining({ code: "CONTEXT_INVALID", message: expect.stringContaining('the target\'s id must be a Guid') }));
    expect(buildContext({ target: new Entity("account", "6D81597F-0F9F-E711-8122-000D3AA2331C") }).primaryEntityId).toBe("6D81597F-0F9F-E711-8122-000D3AA2331C");
  });
});
