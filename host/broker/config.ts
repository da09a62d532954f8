/**
 * The official Service Bus emulator's Config.json, so a user's existing topology works unchanged:
 * parsed as JSONC (the shipped file has // comments), lenient by default; `strict` enforces the
 * emulator's own limits (one namespace named sbemulatorns, 50 entities, LockDuration PT5S–PT5M,
 * MaxDeliveryCount 1–10). Errors name the JSON path.
 */
import { BrokerError, type BrokerTopology, type EntityOptions } from "./broker.js";

/** Removes // and /* *\/ comments outside strings. */
export function stripJsonComments(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
    } else out += c;
  }
  return out;
}

/** ISO 8601 durations as the emulator writes them: PT1M, PT30S, PT0.5S, P1DT2H. */
export function parseDuration(value: unknown, at: string): number {
  const match = typeof value === "string" ? /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value) : null;
  if (!match || value === "P" || value === "PT") throw new BrokerError("BROKER_CONFIG_INVALID", `${at} must be an ISO 8601 duration such as "PT1M" or "PT30S", got ${JSON.stringify(value)}`);
  const [, d, h, m, s] = match;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Math.round(Number(s ?? 0) * 1000);
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new BrokerError("BROKER_CONFIG_INVALID", `${at} must be an object`);
  return value as Record<string, unknown>;
}

function list(value: unknown, at: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new BrokerError("BROKER_CONFIG_INVALID", `${at} must be an array`);
  return value;
}

function entityOptions(value: unknown, at: string, strict: boolean): EntityOptions {
  if (value === undefined) return {};
  const p = object(value, at);
  const options: EntityOptions = {};
  if (p.LockDuration !== undefined) {
    options.lockDurationMs = parseDuration(p.LockDuration, `${at}.LockDuration`);
    if (strict && (options.lockDurationMs < 5_000 || options.lockDurationMs > 300_000)) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.LockDuration must be from PT5S to PT5M in the emulator`);
  }
  if (p.MaxDeliveryCount !== undefined) {
    if (typeof p.MaxDeliveryCount !== "number" || !Number.isInteger(p.MaxDeliveryCount) || p.MaxDeliveryCount < 1) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.MaxDeliveryCount must be a positive integer`);
    if (strict && p.MaxDeliveryCount > 10) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.MaxDeliveryCount must be from 1 to 10 in the emulator`);
    options.maxDeliveryCount = p.MaxDeliveryCount;
  }
  if (p.RequiresSession === true) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.RequiresSession: sessions are not supported by plugbox broker yet`);
  return options;
}

export function parseEmulatorConfig(text: string, options: { strict?: boolean; file?: string } = {}): BrokerTopology {
  const file = options.file ?? "Config.json";
  const strict = options.strict ?? false;
  let raw: unknown;
  try {
    raw = JSON.parse(stripJsonComments(text));
  } catch (error) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file} is not valid JSON (comments allowed): ${(error as Error).message}`);
  }
  const user = object(object(raw, file).UserConfig, `${file}: UserConfig`);
  const namespaces = list(user.Namespaces, `${file}: UserConfig.Namespaces`);
  if (strict && (namespaces.length !== 1 || object(namespaces[0], `${file}: UserConfig.Namespaces[0]`).Name !== "sbemulatorns")) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: UserConfig.Namespaces must hold exactly one namespace named "sbemulatorns" in the emulator`);
  }
  const topology: Required<BrokerTopology> = { queues: [], topics: [] };
  namespaces.forEach((ns, n) => {
    const at = `${file}: UserConfig.Namespaces[${n}]`;
    const namespace = object(ns, at);
    list(namespace.Queues, `${at}.Queues`).forEach((q, i) => {
      const queue = object(q, `${at}.Queues[${i}]`);
      if (typeof queue.Name !== "string" || queue.Name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Queues[${i}].Name must be a non-empty string`);
      topology.queues.push({ name: queue.Name, ...entityOptions(queue.Properties, `${at}.Queues[${i}].Properties`, strict) });
    });
    list(namespace.Topics, `${at}.Topics`).forEach((t, i) => {
      const topic = object(t, `${at}.Topics[${i}]`);
      if (typeof topic.Name !== "string" || topic.Name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Topics[${i}].Name must be a non-empty string`);
      const subscriptions = list(topic.Subscriptions, `${at}.Topics[${i}].Subscriptions`).map((s, j) => {
        const subscription = object(s, `${at}.Topics[${i}].Subscriptions[${j}]`);
        if (typeof subscription.Name !== "string" || subscription.Name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Topics[${i}].Subscriptions[${j}].Name must be a non-empty string`);
        if (list(subscription.Rules, `${at}.Topics[${i}].Subscriptions[${j}].Rules`).length > 0) {
          throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Topics[${i}].Subscriptions[${j}].Rules: filter rules are not supported by plugbox broker yet; remove them to receive every message`);
        }
        return { name: subscription.Name, ...entityOptions(subscription.Properties, `${at}.Topics[${i}].Subscriptions[${j}].Properties`, strict) };
      });
      topology.topics.push({ name: topic.Name, subscriptions });
    });
  });
  if (strict && topology.queues.length + topology.topics.length > 50) throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: the emulator allows 50 queues and topics in all`);
  return topology;
}
