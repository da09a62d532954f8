/**
 * plugbox JSON: SDK values as text and back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { decode, encode, Entity, EntityReference, fromPlain, Money, OptionSetValue, toPlain } from "../../dist/sdk/index.js";

describe("plugbox JSON", () => {
  const account = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", {
    name: "Contoso",
    revenue: new Money(10.5),
    industry: new OptionSetValue(3),
    parent: new EntityReference("account", "0b3bd1d6-9f2d-4b1c-9a5e-000000000001"),
    founded: new Date("2001-02-03T04:05:06.000Z"),
    tags: ["a", new OptionSetValue(1)],
  });

  it("round-trips typed values, nested in objects and arrays, through encode and decode", () => {
    const back = decode(encode({ target: account, list: [account.attributes.parent] })) as { target: Entity; list: EntityReference[] };
    expect(back.target).toBeInstanceOf(Entity);
    expect(back.target.attributes.revenue).toBeInstanceOf(Money);
    expect(back.target.attributes.founded).toEqual(new Date("2001-02-03T04:05:06.000Z"));
    expect((back.target.attributes.tags as unknown[])[1]).toBeInstanceOf(OptionSetValue);
    expect(back.list[0]).toBeInstanceOf(EntityReference);
    expect(back).toEqual({ target: account, list: [account.attributes.parent] });
  });

  it("fromPlain revives a parsed value without changing it", () => {
    const plain = toPlain({ target: account }) as Record<string, unknown>;
    const snapshot = JSON.stringify(plain);
    const revived = fromPlain(plain) as { target: Entity };
    expect(revived.target).toBeInstanceOf(Entity);
    expect(JSON.stringify(plain)).toBe(snapshot);
  });

  it("fromPlain treats values with no JSON form as JSON.stringify does", () => {
    expect(fromPlain({ a: undefined, b: () => 1, c: Number.NaN, d: [undefined, Infinity], e: new Date(0) })).toEqual({ c: null, d: [null, null], e: "1970-01-01T00:00:00.000Z" });
    expect(fromPlain(undefined)).toBeNull();
    expect(() => fromPlain({ big: 1n })).toThrow(TypeError);
  });

  it("refuses an unknown $type and an invalid DateTime", () => {
    expect(() => decode('{"$type":"Nope"}')).toThrow(/unknown \$type "Nope"/);
    expect(() => decode('{"$type":"DateTime","value":"yesterday"}')).toThrow(/"yesterday" is not a valid DateTime/);
  });

  it("refuses typed values that break their type's own rules: a Money not a finite number, an option set value not an integer", () => {
    expect(() => decode('{"$type":"Money","value":"lots"}')).toThrow(/a Money's value must be a finite number, got "lots"/);
    expect(() => fromPlain({ $type: "Money", value: null })).toThrow(/a Money's value must be a finite number/);
    expect(() => decode('{"$type":"OptionSetValue","value":"seven"}')).toThrow(/an OptionSetValue's value must be an integer, got "seven"/);
    expect(() => decode('{"$type":"OptionSetValue","value":7.5}')).toThrow(/must be an integer, got 7.5/);
    expect(() => decode('{"$type":"OptionSetValueCollection","values":[1,"two"]}')).toThrow(/values must be an array of integers/);
    expect(decode('{"$type":"Money","value":-12.25}')).toEqual(new Money(-12.25));
    expect(decode('{"$type":"OptionSetValue","value":7}')).toEqual(new OptionSetValue(7));
  });

  describe("with a setter planted on Object.prototype", () => {
    afterEach(() => {
      delete (Object.prototype as Record<string, unknown>).planted;
    });

    it("decode never runs it and __proto__ stays an own member", () => {
      let ran = false;
      Object.defineProperty(Object.prototype, "planted", { set: () => void (ran = true), configurable: true });
      const value = decode('{"$type":"Entity","logicalName":"a","attributes":{"planted":1},"planted":2,"__proto__":{"x":1}}') as Record<string, unknown>;
      expect(ran).toBe(false);
      expect(Object.getOwnPropertyNames(value)).toContain("__proto__");
      expect(Object.getPrototypeOf(value)).toBe(Entity.prototype);
    });

    it("a Proxy put above a class's or Array's prototype is never asked anything while values are read or written", () => {
      let asked = 0;
      const spy = (target: object) =>
        new Proxy(target, {
          has: (t, k) => (asked++, Reflect.has(t, k)),
          set: (t, k, v, r) => (asked++, Reflect.set(t, k, v, r)),
          get: (t, k, r) => (typeof k === "string" && k !== "constructor" ? asked++ : 0, Reflect.get(t, k, r)),
        });
      const entityProto = Object.getPrototypeOf(EntityReference.prototype) as object;
      const arrayProto = Object.getPrototypeOf(Array.prototype) as object;
      Object.setPrototypeOf(EntityReference.prototype, spy(entityProto));
      Object.setPrototypeOf(Array.prototype, spy(arrayProto));
      try {
        asked = 0;
        const decoded = decode('{"$type":"EntityReference","logicalName":"account","id":"1","name":null,"list":[1,[2]]}') as EntityReference & { list: unknown };
        const copied = fromPlain({ ref: { $type: "EntityReference", logicalName: "contact", id: "2", name: "N" }, list: [1, [2]] }) as { ref: EntityReference; list: unknown };
        expect(asked).toBe(0);
        expect(Object.getOwnPropertyNames(decoded)).toEqual(expect.arrayContaining(["logicalName", "id", "name", "list"]));
        expect(decoded.id).toBe("1");
        expect(copied.ref.logicalName).toBe("contact");
        expect(copied.list).toEqual([1, [2]]);
      } finally {
        Object.setPrototypeOf(EntityReference.prototype, entityProto);
        Object.setPrototypeOf(Array.prototype, arrayProto);
      }
    });

    it("encode, fromPlain and decode write around setters on a class prototype too", () => {
      let ran = 0;
      Object.defineProperty(Object.prototype, "planted", { set: () => void ran++, configurable: true });
      Object.defineProperty(Entity.prototype, "planted", { set: () => void ran++, configurable: true });
      try {
        const decoded = decode('{"$type":"Entity","logicalName":"a","id":"1","attributes":{},"planted":2}') as Record<string, unknown>;
        const copied = fromPlain({ $type: "Entity", logicalName: "a", id: "1", attributes: {}, planted: 3 }) as Record<string, unknown>;
        const encoded = JSON.parse(encode({ planted: 4, inner: [{ planted: 5 }] })) as Record<string, unknown>;
        expect(ran).toBe(0);
        expect(Object.getOwnPropertyDescriptor(decoded, "planted")?.value).toBe(2);
        expect(Object.getOwnPropertyDescriptor(copied, "planted")?.value).toBe(3);
        expect(encoded).toEqual({ planted: 4, inner: [{ planted: 5 }] });
      } finally {
        delete (Entity.prototype as unknown as Record<string, unknown>).planted;
      }
    });
  });
});
