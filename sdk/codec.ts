/**
 * plugbox JSON: how SDK values travel as text (across the sandbox bridge, in `--target` and
 * `--shared` files, in journals). Plain JSON, except that typed values are objects with a
 * `"$type"` member: `{"$type":"Money","value":10}`, `{"$type":"DateTime","value":"2024-01-31T00:00:00.000Z"}`,
 * `{"$type":"EntityReference","logicalName":"account","id":"…","name":null}`.
 *
 * Intrinsics are captured when this module is evaluated: inside the sandbox that happens before any
 * plug-in code runs, so a plug-in that replaces `JSON` or `Array.isArray` cannot change how the bridge
 * reads or writes values.
 */
import {
  ColumnSet,
  ConditionExpression,
  Entity,
  EntityCollection,
  EntityReference,
  FetchExpression,
  FilterExpression,
  LinkEntity,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
  OrderExpression,
  QueryByAttribute,
  QueryExpression,
  Relationship,
  typeOf,
  type TypeName,
} from "./model.js";

const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const isArray = Array.isArray;
const objectKeys = Object.keys;
const setPrototypeOf = Object.setPrototypeOf;
const getPrototypeOf = Object.getPrototypeOf;
const hasOwn = Object.prototype.hasOwnProperty;
const reflectApply = Reflect.apply;
const defineProperty = Object.defineProperty;
const DateCtor = Date;
const dateToISOString = Date.prototype.toISOString;
const dateGetTime = Date.prototype.getTime;
const isFiniteNumber = Number.isFinite;
const TypeErrorCtor = TypeError;
const ObjectProto = Object.prototype;

/**
 * Writes a property of a fresh object without running code a plug-in may have put on a prototype.
 * A plain object's prototype is Object.prototype, whose own prototype cannot be changed: when it
 * does not have the key, assigning runs nothing and is several times faster than defining. Any
 * other prototype (a class's, Array's) may have a Proxy above it, so the property is defined.
 */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  if (getPrototypeOf(target) === ObjectProto && !(key in ObjectProto)) target[key] = value;
  else defineProperty(target, key, ownData(value));
}

/** A data property's descriptor with no prototype: reading it consults no getter a plug-in put on Object.prototype. */
function ownData(value: unknown): PropertyDescriptor {
  return { __proto__: null, value, writable: true, enumerable: true, configurable: true } as PropertyDescriptor;
}

/**
 * Adds an element to a fresh array as an own property. `push` and index assignment would call a
 * setter a plug-in defined for that index on Array.prototype or Object.prototype.
 */
function append(target: unknown[], value: unknown): void {
  defineProperty(target, target.length, ownData(value));
}

const constructors: Record<TypeName, { prototype: object }> = {
  Entity,
  EntityReference,
  OptionSetValue,
  OptionSetValueCollection,
  Money,
  EntityCollection,
  ColumnSet,
  QueryExpression,
  FilterExpression,
  ConditionExpression,
  LinkEntity,
  OrderExpression,
  QueryByAttribute,
  FetchExpression,
  Relationship,
};

export const MAX_DEPTH = 64;

function own(value: object, key: string): boolean {
  return reflectApply(hasOwn, value, [key]) as boolean;
}

const DateProto = Date.prototype;

function isDate(value: object): value is Date {
  // A prototype check, not a call that throws for every non-Date: exceptions are slow on hot paths.
  return getPrototypeOf(value) === DateProto;
}

/**
 * The objects on the path from the root to a value, to refuse cycles. It has no prototype, so
 * writing an index runs no setter a plug-in put on Array.prototype (and costs less than defining).
 */
interface Path {
  [index: number]: unknown;
  length: number;
}

function newPath(): Path {
  return { __proto__: null, length: 0 } as unknown as Path;
}

function encodeValue(value: unknown, depth: number, seen: Path, path: string): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!isFiniteNumber(value)) throw new TypeErrorCtor(`${path} is ${String(value)}, which has no JSON form`);
      return value;
    case "undefined":
      return undefined;
    case "object":
      break;
    default:
      throw new TypeErrorCtor(`${path} is a ${typeof value}, which cannot leave the sandbox (use strings, numbers, booleans, dates, arrays, plain objects and SDK types)`);
  }
  if (depth > MAX_DEPTH) throw new TypeErrorCtor(`${path} is nested more than ${MAX_DEPTH} levels deep`);
  for (let i = 0; i < seen.length; i++) {
    if (seen[i] === value) throw new TypeErrorCtor(`${path} refers to itself (a cycle)`);
  }
  seen[seen.length++] = value;
  try {
    const obj = value as Record<string, unknown>;
    if (isArray(obj)) {
      const out: unknown[] = [];
      for (let i = 0; i < obj.length; i++) {
        const item = encodeValue(obj[i], depth + 1, seen, `${path}[${i}]`);
        append(out, item === undefined ? null : item);
      }
      return out;
    }
    if (isDate(obj)) {
      const time = reflectApply(dateGetTime, obj, []) as number;
      if (!isFiniteNumber(time)) throw new TypeErrorCtor(`${path} is an invalid Date`);
      const out: Record<string, unknown> = {};
      put(out, "$type", "DateTime");
      put(out, "value", reflectApply(dateToISOString, obj, []));
      return out;
    }
    const out: Record<string, unknown> = {};
    const tag = typeOf(obj);
    if (tag !== undefined) put(out, "$type", tag);
    const keys = objectKeys(obj);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (key === "$type" && tag !== undefined) continue;
      const item = encodeValue(obj[key], depth + 1, seen, `${path}.${key}`);
      if (item !== undefined) put(out, key, item);
    }
    return out;
  } finally {
    seen.length--;
  }
}

/** Turns a value into plugbox JSON. Throws a TypeError naming the path of a value with no JSON form. */
export function encode(value: unknown, rootName = "value"): string {
  const encoded = encodeValue(value, 0, newPath(), rootName);
  return encoded === undefined ? "null" : (jsonStringify(encoded) as string);
}

/** The JSON-ready form of a value (what `encode` stringifies). */
export function toPlain(value: unknown, rootName = "value"): unknown {
  const encoded = encodeValue(value, 0, newPath(), rootName);
  return encoded === undefined ? null : encoded;
}

const isInteger = Number.isInteger;

/**
 * A typed value's own rules, checked where it is read: a Money is a finite number, an option set
 * value an integer (so `{"$type":"Money","value":"lots"}` is refused, not stored).
 */
function checkTypedMembers(type: string, obj: Record<string, unknown>): void {
  if (type === "Money" && (typeof obj.value !== "number" || !isFiniteNumber(obj.value))) {
    throw new TypeErrorCtor(`a Money's value must be a finite number, got ${jsonStringify(obj.value) ?? String(obj.value)}`);
  }
  if (type === "OptionSetValue" && !isInteger(obj.value)) {
    throw new TypeErrorCtor(`an OptionSetValue's value must be an integer, got ${jsonStringify(obj.value) ?? String(obj.value)}`);
  }
  if (type === "OptionSetValueCollection") {
    const values = obj.values;
    if (values === undefined) return;
    let integers = isArray(values);
    for (let i = 0; integers && i < (values as unknown[]).length; i++) integers = isInteger((values as unknown[])[i]);
    if (!integers) throw new TypeErrorCtor(`an OptionSetValueCollection's values must be an array of integers, got ${jsonStringify(values) ?? String(values)}`);
  }
}

/**
 * Checks an SDK value (a Money, an OptionSetValue, an OptionSetValueCollection) against its type's
 * own rules, for values made in code rather than read: throws a TypeError naming the rule.
 */
export function checkTypedValue(value: unknown): void {
  const tag = typeOf(value);
  if (tag !== undefined) checkTypedMembers(tag, value as Record<string, unknown>);
}

/** The SDK value a `$type` object stands for (its members already revived). */
function typed(obj: Record<string, unknown>): unknown {
  const type = obj.$type;
  if (type === "DateTime") {
    const date = new DateCtor(typeof obj.value === "string" ? obj.value : Number.NaN);
    if (!isFiniteNumber(reflectApply(dateGetTime, date, []) as number)) {
      throw new TypeErrorCtor(`"${String(obj.value)}" is not a valid DateTime`);
    }
    return date;
  }
  if (typeof type !== "string" || !own(constructors, type)) {
    throw new TypeErrorCtor(`unknown $type ${jsonStringify(type)}`);
  }
  checkTypedMembers(type, obj);
  // Filled as a plain object, then given the class's prototype: setting a prototype runs no
  // plug-in code, and the instance keeps fast properties.
  const instance: Record<string, unknown> = {};
  const keys = objectKeys(obj);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key !== "$type") put(instance, key, obj[key]);
  }
  return setPrototypeOf(instance, constructors[type as TypeName].prototype);
}

/**
 * Revives `$type` objects bottom-up, as a JSON.parse reviver would, but by walking the tree (V8's
 * reviver path is several times slower). `inPlace` is for trees fresh from JSON.parse; otherwise the
 * walk copies, and gives values with no JSON form the treatment JSON.stringify gives them.
 * No write runs plug-in code: in place, each key is an own data property already; a copy is
 * written through `put`.
 */
function revivePlain(value: unknown, inPlace: boolean): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return isFiniteNumber(value) ? value : null;
    case "object":
      break;
    case "bigint":
      throw new TypeErrorCtor("a BigInt has no JSON form");
    default:
      return undefined;
  }
  if (isArray(value)) {
    const out: unknown[] = inPlace ? value : [];
    for (let i = 0; i < value.length; i++) {
      const item = revivePlain(value[i], inPlace);
      // In place, the index is an own data property already: assigning it runs no setter.
      if (!inPlace) put(out as never, i as never, item === undefined ? null : item);
      else if (item !== value[i]) out[i] = item === undefined ? null : item;
    }
    return out;
  }
  const proto = getPrototypeOf(value);
  if (proto !== ObjectProto && proto !== null) return decode(jsonStringify(value) ?? "null");
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = inPlace ? obj : {};
  const keys = objectKeys(obj);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const item = revivePlain(obj[key], inPlace);
    if (item === undefined) continue;
    // In place, the key is an own data property already (from JSON.parse): assigning it runs no setter.
    if (!inPlace) put(out, key, item);
    else if (item !== obj[key]) out[key] = item;
  }
  return own(out, "$type") ? typed(out) : out;
}

/** Reads plugbox JSON back into SDK values (class instances and Dates). */
export function decode(text: string): unknown {
  return revivePlain(jsonParse(text), true);
}

/** Like `decode`, but for a value already parsed as plain JSON (left as it is: the result is a copy). */
export function fromPlain(value: unknown): unknown {
  const revived = revivePlain(value, false);
  return revived === undefined ? null : revived;
}

/** True for a plain object (not an array, Date or SDK type). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || isArray(value)) return false;
  const proto = getPrototypeOf(value);
  return proto === ObjectProto || proto === null;
}
