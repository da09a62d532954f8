/**
 * The SQL filter subset of the broker's subscription rules, evaluated against AMQP messages.
 */
import { describe, expect, it } from "vitest";
import { compileRule, sqlAction, sqlFilter } from "../../../dist/host/testing/internal.js";

const message = (properties: Record<string, unknown>, system: Record<string, unknown> = {}) => ({ application_properties: properties, ...system });
const matches = (sql: string, m: ReturnType<typeof message>) => sqlFilter(sql, "test")(m);

describe("SQL filters", () => {
  it("compare user properties by name, with or without the user. prefix, and system properties with sys.", () => {
    const m = message({ color: "red", size: 3 }, { subject: "new", message_id: "m-1", content_type: "application/json" });
    expect(matches("color = 'red'", m)).toBe(true);
    expect(matches("user.color = 'red' AND size > 2", m)).toBe(true);
    expect(matches("sys.Label = 'new' AND sys.MessageId = 'm-1' AND sys.ContentType = 'application/json'", m)).toBe(true);
    expect(matches("size <> 3 OR color != 'red'", m)).toBe(false);
    expect(matches("[color] = 'red'", m)).toBe(true);
  });

  it("support NOT, parentheses, IN, LIKE with % and _ and ESCAPE, EXISTS and IS [NOT] NULL", () => {
    const m = message({ region: "eu-west", code: "A_1", tier: 2 });
    expect(matches("NOT (tier = 1) AND tier IN (2, 3)", m)).toBe(true);
    expect(matches("tier NOT IN (2, 3)", m)).toBe(false);
    expect(matches("region LIKE 'eu-%' AND region NOT LIKE 'us%'", m)).toBe(true);
    expect(matches("code LIKE 'A!_%' ESCAPE '!'", m)).toBe(true);
    expect(matches("code LIKE 'A__'", m)).toBe(true);
    expect(matches("EXISTS(region) AND NOT EXISTS(missing)", m)).toBe(true);
    expect(matches("missing IS NULL AND region IS NOT NULL", m)).toBe(true);
  });

  it("treat a missing property as unknown: neither it nor its negation matches", () => {
    const m = message({});
    expect(matches("missing = 1", m)).toBe(false);
    expect(matches("NOT (missing = 1)", m)).toBe(false);
    expect(matches("missing = 1 OR 1 = 1", m)).toBe(true);
  });

  it("refuse what is outside the subset with the position", () => {
    expect(() => sqlFilter("a + 1 = 2", "rule x")).toThrow(/rule x: cannot read "\+ 1 = 2" at character 3/);
    expect(() => sqlFilter("sys.Nonsense = 1", "rule x")).toThrow(/sys.Nonsense is not a system property/);
    expect(() => sqlFilter("a = 1 b", "rule x")).toThrow(/unexpected text at character 7/);
  });
});

describe("SQL actions", () => {
  it("SET and REMOVE change a copy of the message, not the original", () => {
    const original = message({ a: 1, b: 2 });
    const changed = sqlAction("SET sys.To = 'elsewhere'; SET c = 'new'; REMOVE b", "test")(original);
    expect(changed).toMatchObject({ to: "elsewhere", application_properties: { a: 1, c: "new" } });
    expect(changed.application_properties).not.toHaveProperty("b");
    expect(original).toEqual(message({ a: 1, b: 2 }));
  });
});

describe("correlation filters", () => {
  it("match when every given field and property is equal", () => {
    const rule = compileRule({ name: "c", correlation: { correlationId: "op-1", subject: "Create", properties: { tenant: "contoso" } } }, "test");
    expect(rule.matches(message({ tenant: "contoso" }, { correlation_id: "op-1", subject: "Create" }))).toBe(true);
    expect(rule.matches(message({ tenant: "fabrikam" }, { correlation_id: "op-1", subject: "Create" }))).toBe(false);
    expect(rule.matches(message({ tenant: "contoso" }, { correlation_id: "op-2", subject: "Create" }))).toBe(false);
  });
});
