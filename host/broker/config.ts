/**
 * The official Service Bus emulator's Config.json, so a user's existing topology works unchanged:
 * parsed as JSONC (the shipped file has // comments), lenient by default; `strict` enforces the
 * emulator's own limits (one namespace named sbemulatorns, 50 entities, LockDuration PT5S–PT5M,
 * MaxDeliveryCount 1–10, time to live PT5M–PT1H, no unknown keys). Rules map to correlation and SQL
 * filters (rules.ts). Errors name the JSON path.
 */
import { parse, printParseErrorCode, type ParseError } from "jsonc-parser";
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v } from "../../runtime/schema.js";
import { BrokerError } from "./errors.js";
import type { EventHubSpec } from "./event-hubs.js";
import type { BrokerTopology, EntityOptions } from "./entities.js";
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

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;
const durationRule = (value: unknown) => `must be an ISO 8601 duration such as "PT1M" or "PT30S", got ${shown(value)}`;

function durationMs(text: string): number {
  const [, d, h, m, sec] = DURATION.exec(text)!;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Math.round(Number(sec ?? 0) * 1000);
}

const isDuration = (value: unknown): value is string => typeof value === "string" && value !== "P" && value !== "PT" && DURATION.test(value);

/** ISO 8601 durations as the emulator writes them: PT1M, PT30S, PT0.5S, P1DT2H. */
export function parseDuration(value: unknown, at: string): number {
  if (!isDuration(value)) throw new BrokerError("BROKER_CONFIG_INVALID", `${at} ${durationRule(value)}`);
  return durationMs(value);
}

const name = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));
const named = v.looseObject({ Name: name }, "must be an object");
const list = <S extends v.GenericSchema>(item: S) => v.optional(v.array(item, "must be an array"), []);

/** A duration, in ms; `strict` holds it to the emulator's range. */
function duration(strict: boolean, range?: [min: number, max: number, shown: string]) {
  const ms = v.pipe(v.custom<string>(isDuration, (issue) => durationRule(issue.input)), v.transform(durationMs));
  if (!strict || !range) return ms;
  const [min, max, text] = range;
  return v.pipe(ms, v.check((value) => value >= min && value <= max, `must be from ${text} in the emulator`));
}

/** An entity's Properties as read, durations in ms. */
interface EntityProperties {
  LockDuration?: number;
  MaxDeliveryCount?: number;
  DefaultMessageTimeToLive?: number;
  DeadLetteringOnMessageExpiration?: boolean;
  RequiresDuplicateDetection?: boolean;
  DuplicateDetectionHistoryTimeWindow?: number;
  ForwardTo?: string;
  ForwardDeadLetteredMessagesTo?: string;
  RequiresSession?: boolean;
}

/** Every entity property of §1.1; a key this broker does not know is ignored unless strict. */
function entityPropertiesSchema(strict: boolean): v.GenericSchema<unknown, EntityProperties> {
  const entries = {
    LockDuration: v.optional(duration(strict, [5_000, 300_000, "PT5S to PT5M"])),
    MaxDeliveryCount: v.optional(strict ? integer(1, 10, "must be from 1 to 10 in the emulator") : integer(1, Number.MAX_SAFE_INTEGER, "must be a positive integer")),
    DefaultMessageTimeToLive: v.optional(duration(strict, [300_000, 3_600_000, "PT5M to PT1H"])),
    DeadLetteringOnMessageExpiration: v.optional(flag()),
    RequiresDuplicateDetection: v.optional(flag()),
    DuplicateDetectionHistoryTimeWindow: v.optional(duration(strict, [5_000, 300_000, "PT5S to PT5M"])),
    ForwardTo: v.optional(v.string(`must be an entity name or ""`)),
    ForwardDeadLetteredMessagesTo: v.optional(v.string(`must be an entity name or ""`)),
    RequiresSession: v.optional(flag()),
  };
  return v.optional(strict ? strictOptions(entries, "is not a property the emulator knows; it knows") : v.looseObject(entries, "must be an object"), {});
}

function entityOptions(p: EntityProperties): EntityOptions {
  const options: EntityOptions = {};
  if (p.LockDuration !== undefined) options.lockDurationMs = p.LockDuration;
  if (p.MaxDeliveryCount !== undefined) options.maxDeliveryCount = p.MaxDeliveryCount;
  if (p.DefaultMessageTimeToLive !== undefined) options.defaultMessageTtlMs = p.DefaultMessageTimeToLive;
  if (p.DeadLetteringOnMessageExpiration !== undefined) options.deadLetteringOnMessageExpiration = p.DeadLetteringOnMessageExpiration;
  if (p.RequiresDuplicateDetection) options.duplicateDetectionWindowMs = p.DuplicateDetectionHistoryTimeWindow ?? 20_000;
  if (p.ForwardTo) options.forwardTo = p.ForwardTo;
  if (p.ForwardDeadLetteredMessagesTo) options.forwardDeadLetteredMessagesTo = p.ForwardDeadLetteredMessagesTo;
  if (p.RequiresSession) options.requiresSession = true;
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

const correlationFilter = strictOptions(
  { ...Object.fromEntries(Object.keys(CORRELATION_KEYS).map((key) => [key, v.optional(v.string("must be a string"))])), Properties: v.optional(v.record(v.string(), v.unknown(), "must be an object")) },
  "is not a correlation filter property",
);
const sqlExpression = v.looseObject({ SqlExpression: v.string("must be a string") }, "must be an object");
const filterTypeRule = (issue: v.BaseIssue<unknown>) => `must be "Correlation" or "Sql", got ${shown(issue.input)}`;

const ruleSchema = v.looseObject({
  Name: name,
  Properties: v.variant(
    "FilterType",
    [
      v.looseObject({ FilterType: v.literal("Correlation", filterTypeRule), CorrelationFilter: correlationFilter, Action: v.optional(sqlExpression) }),
      v.looseObject({ FilterType: v.literal("Sql", filterTypeRule), SqlFilter: sqlExpression, Action: v.optional(sqlExpression) }),
    ],
    (issue) => (issue.expected === "Object" || issue.expected === "object" ? "must be an object" : filterTypeRule(issue)),
  ),
});

function ruleSpec(rule: v.InferOutput<typeof ruleSchema>): RuleSpec {
  const p = rule.Properties;
  const spec: RuleSpec = { name: rule.Name };
  if (p.FilterType === "Correlation") {
    const correlation: CorrelationFilterSpec = {};
    for (const [key, value] of Object.entries(p.CorrelationFilter)) {
      if (value === undefined) continue;
      if (key === "Properties") correlation.properties = value as Record<string, unknown>;
      else correlation[CORRELATION_KEYS[key]!] = value as never;
    }
    spec.correlation = correlation;
  } else spec.sql = p.SqlFilter.SqlExpression;
  if (p.Action !== undefined) spec.action = p.Action.SqlExpression;
  return spec;
}

/** The Event Hubs emulator's file: NamespaceConfig[{ Type: "EventHub", Entities: [{ Name, PartitionCount, ConsumerGroups }] }]. */
function eventHubsNamespace(strict: boolean) {
  const partitions = v.pipe(
    v.optional(v.union([v.number(), v.string()]), 1),
    v.check((n) => Number.isInteger(Number(n)) && Number(n) >= 1 && Number(n) <= 32, (issue) => `must be a whole number from 1 to 32, got ${shown(issue.input)}`),
    v.transform(Number),
  );
  const groups = strict ? v.pipe(list(named), v.maxLength(20, ": the emulator allows 20")) : list(named);
  return v.looseObject({
    Type: v.literal("EventHub", (issue) => `must be "EventHub", got ${shown(issue.input)}`),
    Entities: list(v.looseObject({ Name: name, PartitionCount: partitions, ConsumerGroups: groups }, "must be an object")),
  }, "must be an object");
}

function configSchema(strict: boolean) {
  const properties = entityPropertiesSchema(strict);
  return v.looseObject({
    UserConfig: v.looseObject({
      Namespaces: v.optional(v.array(v.looseObject({
        Name: v.optional(v.unknown()),
        Queues: list(v.looseObject({ Name: name, Properties: properties }, "must be an object")),
        Topics: list(v.looseObject({
          Name: name,
          Properties: properties,
          Subscriptions: list(v.looseObject({ Name: name, Properties: properties, Rules: list(ruleSchema) }, "must be an object")),
        }, "must be an object")),
      }, "must be an object"), "must be an array")),
      NamespaceConfig: v.optional(v.array(eventHubsNamespace(strict), "must be an array")),
    }, "must be an object"),
  }, "must be an object");
}

const schemas = { strict: configSchema(true), lenient: configSchema(false) };

export function parseEmulatorConfig(text: string, options: { strict?: boolean; file?: string } = {}): BrokerTopology {
  const file = options.file ?? "Config.json";
  const strict = options.strict ?? false;
  const { UserConfig: user } = parseOptions(strict ? schemas.strict : schemas.lenient, parseJsonc(text, file), (path, message) =>
    new BrokerError("BROKER_CONFIG_INVALID", `${path.length === 0 ? file : `${file}: ${formatPath("", path)}`}${message.startsWith(":") ? "" : " "}${message}`),
  );
  if (user.Namespaces === undefined && user.NamespaceConfig === undefined) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: UserConfig needs Namespaces (the Service Bus emulator's file) or NamespaceConfig (the Event Hubs emulator's file)`);
  }
  const namespaces = user.Namespaces ?? [];
  if (strict && user.Namespaces !== undefined && (namespaces.length !== 1 || namespaces[0]!.Name !== "sbemulatorns")) {
    throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: UserConfig.Namespaces must hold exactly one namespace named "sbemulatorns" in the emulator`);
  }
  const topology: Required<Omit<BrokerTopology, "eventHubs">> = { queues: [], topics: [] };
  for (const namespace of namespaces) {
    for (const queue of namespace.Queues) topology.queues.push({ name: queue.Name, ...entityOptions(queue.Properties) });
    for (const topic of namespace.Topics) {
      const subscriptions = topic.Subscriptions.map((s) => ({ name: s.Name, ...entityOptions(s.Properties), ...(s.Rules.length > 0 ? { rules: s.Rules.map(ruleSpec) } : {}) }));
      const { defaultMessageTtlMs, duplicateDetectionWindowMs } = entityOptions(topic.Properties);
      topology.topics.push({ name: topic.Name, subscriptions, ...(defaultMessageTtlMs !== undefined ? { defaultMessageTtlMs } : {}), ...(duplicateDetectionWindowMs !== undefined ? { duplicateDetectionWindowMs } : {}) });
    }
  }
  if (strict && topology.queues.length + topology.topics.length > 50) throw new BrokerError("BROKER_CONFIG_INVALID", `${file}: the emulator allows 50 queues and topics in all`);
  const eventHubs: EventHubSpec[] = (user.NamespaceConfig ?? []).flatMap((ns) => ns.Entities.map((e) => ({ name: e.Name, partitionCount: e.PartitionCount, consumerGroups: e.ConsumerGroups.map((g) => g.Name) })));
  return eventHubs.length > 0 ? { ...topology, eventHubs } : topology;
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
