/**
 * The official Service Bus emulator's Config.json, so a user's existing topology works unchanged:
 * parsed as JSONC (the shipped file has // comments), lenient by default; `strict` enforces the
 * emulator's own limits (one namespace named sbemulatorns, 50 entities, LockDuration PT5S–PT5M,
 * MaxDeliveryCount 1–10, time to live PT5M–PT1H, no unknown keys). Rules map to correlation and SQL
 * filters (rules.ts). Errors name the JSON path.
 */
import { parse, printParseErrorCode, type ParseError } from "jsonc-parser";
import { BrokerError } from "./errors.js";
import type { EventHubSpec } from "./event-hubs.js";
import type { BrokerTopology, EntityOptions } from "./namespace.js";
import type { CorrelationFilterSpec, RuleSpec } from "./rules.js";

/** Reads JSON with comments (jsonc-parser); a syntax error names its line and column. */
function parseJsonc(text: string, file: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: false, disallowComments: false });
  const first = errors[0];
  if (first) {
    const before = text.slice(0, first.offset).split("\n");
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file} is not valid JSON (comments allowed): ${printParseErrorCode(first.error).replace(/(?<!^)([A-Z])/g, " $1").toLowerCase()} at line ${before.length}, column ${before.at(-1)!.length + 1}`);
  }
  return value;
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

function boolean(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") throw new BrokerError("BROKER_CONFIG_INVALID", `${at} must be true or false`);
  return value;
}

function strictRange(strict: boolean, ms: number, min: number, max: number, at: string, range: string): void {
  if (strict && (ms < min || ms > max)) throw new BrokerError("BROKER_CONFIG_INVALID", `${at} must be from ${range} in the emulator`);
}

/** Every entity property of §1.1; a key this broker does not know is ignored unless strict. */
function entityOptions(value: unknown, at: string, strict: boolean): EntityOptions {
  if (value === undefined) return {};
  const p = object(value, at);
  const options: EntityOptions = {};
  if (p.LockDuration !== undefined) {
    options.lockDurationMs = parseDuration(p.LockDuration, `${at}.LockDuration`);
    strictRange(strict, options.lockDurationMs, 5_000, 300_000, `${at}.LockDuration`, "PT5S to PT5M");
  }
  if (p.MaxDeliveryCount !== undefined) {
    if (typeof p.MaxDeliveryCount !== "number" || !Number.isInteger(p.MaxDeliveryCount) || p.MaxDeliveryCount < 1) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.MaxDeliveryCount must be a positive integer`);
    if (strict && p.MaxDeliveryCount > 10) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.MaxDeliveryCount must be from 1 to 10 in the emulator`);
    options.maxDeliveryCount = p.MaxDeliveryCount;
  }
  if (p.DefaultMessageTimeToLive !== undefined) {
    options.defaultMessageTtlMs = parseDuration(p.DefaultMessageTimeToLive, `${at}.DefaultMessageTimeToLive`);
    strictRange(strict, options.defaultMessageTtlMs, 300_000, 3_600_000, `${at}.DefaultMessageTimeToLive`, "PT5M to PT1H");
  }
  if (p.DeadLetteringOnMessageExpiration !== undefined) options.deadLetteringOnMessageExpiration = boolean(p.DeadLetteringOnMessageExpiration, `${at}.DeadLetteringOnMessageExpiration`);
  if (p.RequiresDuplicateDetection !== undefined && boolean(p.RequiresDuplicateDetection, `${at}.RequiresDuplicateDetection`)) {
    const window = p.DuplicateDetectionHistoryTimeWindow ?? "PT20S";
    options.duplicateDetectionWindowMs = parseDuration(window, `${at}.DuplicateDetectionHistoryTimeWindow`);
    strictRange(strict, options.duplicateDetectionWindowMs, 5_000, 300_000, `${at}.DuplicateDetectionHistoryTimeWindow`, "PT5S to PT5M");
  } else if (p.DuplicateDetectionHistoryTimeWindow !== undefined) {
    parseDuration(p.DuplicateDetectionHistoryTimeWindow, `${at}.DuplicateDetectionHistoryTimeWindow`);
  }
  for (const [key, field] of [["ForwardTo", "forwardTo"], ["ForwardDeadLetteredMessagesTo", "forwardDeadLetteredMessagesTo"]] as const) {
    if (p[key] === undefined || p[key] === "") continue;
    if (typeof p[key] !== "string") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.${key} must be an entity name or ""`);
    options[field] = p[key];
  }
  if (p.RequiresSession !== undefined && boolean(p.RequiresSession, `${at}.RequiresSession`)) options.requiresSession = true;
  if (strict) {
    const known = ["LockDuration", "MaxDeliveryCount", "DefaultMessageTimeToLive", "DeadLetteringOnMessageExpiration", "RequiresDuplicateDetection", "DuplicateDetectionHistoryTimeWindow", "ForwardTo", "ForwardDeadLetteredMessagesTo", "RequiresSession"];
    const unknown = Object.keys(p).filter((k) => !known.includes(k));
    if (unknown.length > 0) throw new BrokerError("BROKER_CONFIG_INVALID", `${at} has properties the emulator does not know: ${unknown.join(", ")}`);
  }
  return options;
}

const CORRELATION_KEYS: Record<string, keyof CorrelationFilterSpec> = {
  ContentType: "contentType",
  CorrelationId: "correlationId",
  Label: "subject",
  MessageId: "messageId",
  ReplyTo: "replyTo",
  ReplyToSessionId: "replyToSessionId",
  SessionId: "sessionId",
  To: "to",
};

function rule(value: unknown, at: string): RuleSpec {
  const r = object(value, at);
  if (typeof r.Name !== "string" || r.Name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Name must be a non-empty string`);
  const p = object(r.Properties, `${at}.Properties`);
  const spec: RuleSpec = { name: r.Name };
  if (p.FilterType === "Correlation") {
    const c = object(p.CorrelationFilter, `${at}.Properties.CorrelationFilter`);
    const correlation: CorrelationFilterSpec = {};
    for (const [key, v] of Object.entries(c)) {
      if (key === "Properties") correlation.properties = object(v, `${at}.Properties.CorrelationFilter.Properties`);
      else if (CORRELATION_KEYS[key] && typeof v === "string") correlation[CORRELATION_KEYS[key]] = v as never;
      else throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Properties.CorrelationFilter.${key} is not a correlation filter property (${[...Object.keys(CORRELATION_KEYS), "Properties"].join(", ")})`);
    }
    spec.correlation = correlation;
  } else if (p.FilterType === "Sql") {
    const sql = object(p.SqlFilter, `${at}.Properties.SqlFilter`).SqlExpression;
    if (typeof sql !== "string") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Properties.SqlFilter.SqlExpression must be a string`);
    spec.sql = sql;
  } else {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Properties.FilterType must be "Correlation" or "Sql", got ${JSON.stringify(p.FilterType)}`);
  }
  if (p.Action !== undefined) {
    const action = object(p.Action, `${at}.Properties.Action`).SqlExpression;
    if (typeof action !== "string") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}.Properties.Action.SqlExpression must be a string`);
    spec.action = action;
  }
  return spec;
}

export function parseEmulatorConfig(text: string, options: { strict?: boolean; file?: string } = {}): BrokerTopology {
  const file = options.file ?? "Config.json";
  const strict = options.strict ?? false;
  const raw = parseJsonc(text, file);
  const user = object(object(raw, file).UserConfig, `${file}: UserConfig`);
  const eventHubs = user.NamespaceConfig !== undefined ? parseEventHubsConfig(user.NamespaceConfig, `${file}: UserConfig.NamespaceConfig`, strict) : [];
  const namespaces = list(user.Namespaces, `${file}: UserConfig.Namespaces`);
  if (user.Namespaces === undefined && user.NamespaceConfig === undefined) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: UserConfig needs Namespaces (the Service Bus emulator's file) or NamespaceConfig (the Event Hubs emulator's file)`);
  }
  if (strict && user.Namespaces !== undefined && (namespaces.length !== 1 || object(namespaces[0], `${file}: UserConfig.Namespaces[0]`).Name !== "sbemulatorns")) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: UserConfig.Namespaces must hold exactly one namespace named "sbemulatorns" in the emulator`);
  }
  const topology: Required<Omit<BrokerTopology, "eventHubs">> = { queues: [], topics: [] };
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
        const rules = list(subscription.Rules, `${at}.Topics[${i}].Subscriptions[${j}].Rules`).map((r, k) => rule(r, `${at}.Topics[${i}].Subscriptions[${j}].Rules[${k}]`));
        return { name: subscription.Name, ...entityOptions(subscription.Properties, `${at}.Topics[${i}].Subscriptions[${j}].Properties`, strict), ...(rules.length > 0 ? { rules } : {}) };
      });
      const { defaultMessageTtlMs, duplicateDetectionWindowMs } = entityOptions(topic.Properties, `${at}.Topics[${i}].Properties`, strict);
      topology.topics.push({ name: topic.Name, subscriptions, ...(defaultMessageTtlMs !== undefined ? { defaultMessageTtlMs } : {}), ...(duplicateDetectionWindowMs !== undefined ? { duplicateDetectionWindowMs } : {}) });
    });
  });
  if (strict && topology.queues.length + topology.topics.length > 50) throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: the emulator allows 50 queues and topics in all`);
  return eventHubs.length > 0 ? { ...topology, eventHubs } : topology;
}

/** The Event Hubs emulator's file: NamespaceConfig[{ Type: "EventHub", Entities: [{ Name, PartitionCount, ConsumerGroups }] }]. */
function parseEventHubsConfig(value: unknown, at: string, strict: boolean): EventHubSpec[] {
  const hubs: EventHubSpec[] = [];
  list(value, at).forEach((ns, n) => {
    const namespace = object(ns, `${at}[${n}]`);
    if (namespace.Type !== "EventHub") throw new BrokerError("BROKER_CONFIG_INVALID", `${at}[${n}].Type must be "EventHub", got ${JSON.stringify(namespace.Type)}`);
    list(namespace.Entities, `${at}[${n}].Entities`).forEach((e, i) => {
      const where = `${at}[${n}].Entities[${i}]`;
      const entity = object(e, where);
      if (typeof entity.Name !== "string" || entity.Name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${where}.Name must be a non-empty string`);
      const partitionCount = entity.PartitionCount === undefined ? 1 : Number(entity.PartitionCount);
      if (!Number.isInteger(partitionCount) || partitionCount < 1 || partitionCount > 32) throw new BrokerError("BROKER_CONFIG_INVALID", `${where}.PartitionCount must be a whole number from 1 to 32, got ${JSON.stringify(entity.PartitionCount)}`);
      const consumerGroups = list(entity.ConsumerGroups, `${where}.ConsumerGroups`).map((g, j) => {
        const name = object(g, `${where}.ConsumerGroups[${j}]`).Name;
        if (typeof name !== "string" || name === "") throw new BrokerError("BROKER_CONFIG_INVALID", `${where}.ConsumerGroups[${j}].Name must be a non-empty string`);
        return name;
      });
      if (strict && consumerGroups.length > 20) throw new BrokerError("BROKER_CONFIG_INVALID", `${where}.ConsumerGroups: the emulator allows 20`);
      hubs.push({ name: entity.Name, partitionCount, consumerGroups });
    });
  });
  return hubs;
}

/** ISO 8601 duration of a number of milliseconds, as the emulator writes them (PT1M, PT30S, PT0.5S). */
export function formatDuration(ms: number): string {
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = (ms % 60_000) / 1000;
  return `PT${hours ? `${hours}H` : ""}${minutes ? `${minutes}M` : ""}${seconds || (!hours && !minutes) ? `${seconds}S` : ""}`;
}

function entityProperties(options: EntityOptions): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (options.deadLetteringOnMessageExpiration !== undefined) p.DeadLetteringOnMessageExpiration = options.deadLetteringOnMessageExpiration;
  if (options.defaultMessageTtlMs !== undefined) p.DefaultMessageTimeToLive = formatDuration(options.defaultMessageTtlMs);
  if (options.duplicateDetectionWindowMs !== undefined) Object.assign(p, { RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: formatDuration(options.duplicateDetectionWindowMs) });
  if (options.forwardDeadLetteredMessagesTo) p.ForwardDeadLetteredMessagesTo = options.forwardDeadLetteredMessagesTo;
  if (options.forwardTo) p.ForwardTo = options.forwardTo;
  if (options.lockDurationMs !== undefined) p.LockDuration = formatDuration(options.lockDurationMs);
  if (options.maxDeliveryCount !== undefined) p.MaxDeliveryCount = options.maxDeliveryCount;
  if (options.requiresSession) p.RequiresSession = true;
  return p;
}

const CORRELATION_NAMES = Object.fromEntries(Object.entries(CORRELATION_KEYS).map(([name, key]) => [key, name])) as Record<keyof CorrelationFilterSpec, string>;

function ruleConfig(rule: RuleSpec): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  if (rule.correlation) {
    const filter: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(rule.correlation)) filter[key === "properties" ? "Properties" : CORRELATION_NAMES[key as keyof CorrelationFilterSpec]] = value;
    Object.assign(properties, { FilterType: "Correlation", CorrelationFilter: filter });
  } else {
    Object.assign(properties, { FilterType: "Sql", SqlFilter: { SqlExpression: rule.sql ?? "1=1" } });
  }
  if (rule.action !== undefined) properties.Action = { SqlExpression: rule.action };
  return { Name: rule.name, Properties: properties };
}

/**
 * The topology as the Service Bus emulator's Config.json (and, when it has event hubs, the Event
 * Hubs emulator's), so the same entities can be loaded into Microsoft's emulators as a cross-check.
 */
export function toEmulatorConfig(topology: BrokerTopology): { serviceBus: Record<string, unknown>; eventHubs?: Record<string, unknown> } {
  const serviceBus = {
    UserConfig: {
      Namespaces: [
        {
          Name: "sbemulatorns",
          Queues: (topology.queues ?? []).map(({ name, ...options }) => ({ Name: name, Properties: entityProperties(options) })),
          Topics: (topology.topics ?? []).map((topic) => ({
            Name: topic.name,
            Properties: entityProperties({ defaultMessageTtlMs: topic.defaultMessageTtlMs, duplicateDetectionWindowMs: topic.duplicateDetectionWindowMs }),
            Subscriptions: topic.subscriptions.map(({ name, rules, ...options }) => ({ Name: name, Properties: entityProperties(options), ...(rules?.length ? { Rules: rules.map(ruleConfig) } : {}) })),
          })),
        },
      ],
      Logging: { Type: "File" },
    },
  };
  const hubs = topology.eventHubs ?? [];
  if (hubs.length === 0) return { serviceBus };
  return {
    serviceBus,
    eventHubs: {
      UserConfig: {
        NamespaceConfig: [{ Type: "EventHub", Name: "emulatorNs1", Entities: hubs.map((h) => ({ Name: h.name, PartitionCount: String(h.partitionCount ?? 1), ConsumerGroups: (h.consumerGroups ?? []).map((g) => ({ Name: g })) })) }],
        LoggingConfig: { Type: "File" },
      },
    },
  };
}
