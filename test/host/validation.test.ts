/**
 * Values are checked where they enter: a typed value that breaks its type's rules is never stored,
 * whichever way it comes in, and a target id that is not a Guid never reaches a plug-in.
 */
import { describe, expect, it } from "vitest";
import { buildContext } from "../../dist/host/testing/internal.js";
import { createHost } from "../../dist/host/index.js";
import { Entity, Money, OptionSetValue, OptionSetValueCollection } from "../../dist/sdk/index.js";

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
      expect((await host.store.allRecords())).toHaveLength(1);
    } finally {
      await host.close();
    }
  });

  it("a target whose id is not a Guid is refused before any plug-in sees it", () => {
    expect(() => buildContext({ target: new Entity("account", "not-a-guid") })).toThrow(expect.objectContaining({ code: "CONTEXT_INVALID", message: expect.stringContaining('the target\'s id must be a Guid') }));
    expect(buildContext({ target: new Entity("account", "6D81597F-0F9F-E711-8122-000D3AA2331C") }).primaryEntityId).toBe("6D81597F-0F9F-E711-8122-000D3AA2331C");
  });
});

describe("createHost options: one schema, OPTIONS_INVALID naming the path and the rule", () => {
  const refused: Array<[string, Record<string, unknown>, string]> = [
    ["an unknown option", { dbFile: "x.db" }, "createHost options.dbFile is not an option; known options are manifest, db,"],
    ["a db that is not a path", { db: 3 }, 'createHost options.db must be a file path, ":memory:" or a postgres:// connection string; got 3'],
    ["a busy timeout that is not a whole number", { busyTimeoutMs: 2.5 }, "createHost options.busyTimeoutMs must be a whole number of milliseconds, 0 or more; got 2.5"],
    ["a store size below SQLite's smallest", { storeOptions: { maxSizeBytes: 10 } }, "createHost options.storeOptions.maxSizeBytes must be a whole number of bytes, 65536 or more; got 10"],
    ["runJobs that is not a boolean", { runJobs: "no" }, 'createHost options.runJobs must be true or false; got "no"'],
    ["a default user that is not a Guid", { identity: { defaultUserId: "admin" } }, "createHost options.identity.defaultUserId must be a Guid"],
    ["an unknown identity field", { identity: { userId: "x" } }, "createHost options.identity.userId is not an option"],
    ["a clock without now()", { clock: {} }, "createHost options.clock must be a clock (an object with now())"],
    ["an organization URL that is not a string", { organizationUrl: 42 }, "createHost options.organizationUrl must be a non-empty string"],
    ["runtime options that are not an object", { runtimeOptions: 2 }, "createHost options.runtimeOptions must be an object of sandbox runtime options"],
    ["a job runner option out of its range", { jobs: { pollMs: 0 } }, "jobs.pollMs must be a whole number from 1 to 3600000; got 0"],
    ["a job runner option that is not a whole number", { jobs: { backoffBaseMs: 1.5 } }, "jobs.backoffBaseMs must be a whole number from 0 to 3600000; got 1.5"],
    ["an unknown job runner option", { jobs: { leasMs: 5 } }, "jobs.leasMs is not an option; known options are leaseMs, pollMs, backoffBaseMs, concurrency"],
  ];

  it.each(refused)("refuses %s before anything opens", async (_what, options, says) => {
    await expect(createHost(options as never)).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining(says) });
  });
});
