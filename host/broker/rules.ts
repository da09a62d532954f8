/**
 * Subscription rules: correlation filters in full, SQL filters and actions as a subset (comparison,
 * AND/OR/NOT, IN, LIKE, EXISTS, IS [NOT] NULL over `sys.*` and user properties; `SET` and `REMOVE`
 * actions). An expression outside the subset fails when the rule is loaded, with the position.
 */
import type { AmqpMessage } from "./amqp.js";
import { BrokerError } from "./errors.js";

export interface CorrelationFilterSpec {
  contentType?: string;
  correlationId?: string;
  subject?: string;
  messageId?: string;
  replyTo?: string;
  replyToSessionId?: string;
  sessionId?: string;
  to?: string;
  properties?: Record<string, unknown>;
}

export interface RuleSpec {
  name: string;
  correlation?: CorrelationFilterSpec;
  sql?: string;
  action?: string;
}

export interface Rule {
  readonly name: string;
  matches(message: AmqpMessage): boolean;
  /** The message as this subscription stores it, after the rule's action. */
  apply(message: AmqpMessage): AmqpMessage;
}

/** System properties by their SQL names (case-insensitive), and where the AMQP message keeps them. */
const SYSTEM_PROPERTIES: Record<string, keyof AmqpMessage> = {
  messageid: "message_id",
  correlationid: "correlation_id",
  to: "to",
  replyto: "reply_to",
  label: "subject",
  subject: "subject",
  sessionid: "group_id",
  replytosessionid: "reply_to_group_id",
  contenttype: "content_type",
};

const CORRELATION_FIELDS: Array<[keyof CorrelationFilterSpec, keyof AmqpMessage]> = [
  ["contentType", "content_type"],
  ["correlationId", "correlation_id"],
  ["subject", "subject"],
  ["messageId", "message_id"],
  ["replyTo", "reply_to"],
  ["replyToSessionId", "reply_to_group_id"],
  ["sessionId", "group_id"],
  ["to", "to"],
];

export function compileRule(spec: RuleSpec, at: string): Rule {
  const filter = spec.correlation ? correlationFilter(spec.correlation) : spec.sql !== undefined ? sqlFilter(spec.sql, `${at} SqlFilter`) : () => true;
  const action = spec.action !== undefined ? sqlAction(spec.action, `${at} Action`) : (m: AmqpMessage) => m;
  return { name: spec.name, matches: filter, apply: action };
}

function correlationFilter(spec: CorrelationFilterSpec): (m: AmqpMessage) => boolean {
  return (message) =>
    CORRELATION_FIELDS.every(([field, key]) => spec[field] === undefined || String(message[key] ?? "") === spec[field]) &&
    Object.entries(spec.properties ?? {}).every(([name, value]) => message.application_properties?.[name] === value);
}

// ---- SQL subset -------------------------------------------------------------------------------

type Value = string | number | boolean | null;
type Token = { kind: "word" | "string" | "number" | "op" | "ident"; text: string; at: number };

function tokenize(text: string, at: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /\s+|('(?:[^']|'')*')|(\d+(?:\.\d+)?)|(\[[^\]]+\])|([A-Za-z_][\w.]*)|(<>|!=|<=|>=|[=<>(),;])/y;
  let index = 0;
  while (index < text.length) {
    pattern.lastIndex = index;
    const match = pattern.exec(text);
    if (!match) throw new BrokerError("BROKER_CONFIG_INVALID", `${at}: cannot read ${JSON.stringify(text.slice(index, index + 12))} at character ${index + 1} of ${JSON.stringify(text)}; plugbox broker supports =, <>, <, >, AND, OR, NOT, IN, LIKE, EXISTS and IS NULL`);
    const [whole, str, num, bracketed, word, op] = match;
    if (str !== undefined) tokens.push({ kind: "string", text: str.slice(1, -1).replace(/''/g, "'"), at: index });
    else if (num !== undefined) tokens.push({ kind: "number", text: num, at: index });
    else if (bracketed !== undefined) tokens.push({ kind: "ident", text: bracketed.slice(1, -1), at: index });
    else if (word !== undefined) tokens.push({ kind: "word", text: word, at: index });
    else if (op !== undefined) tokens.push({ kind: "op", text: op, at: index });
    index += whole.length;
  }
  return tokens;
}

const KEYWORDS = new Set(["and", "or", "not", "in", "like", "escape", "is", "null", "true", "false", "exists", "set", "remove"]);

type Getter = (m: AmqpMessage) => Value;
type Predicate = (m: AmqpMessage) => boolean | null;

class SqlParser {
  #position = 0;
  constructor(
    readonly tokens: Token[],
    readonly text: string,
    readonly at: string,
  ) {}

  fail(message: string): never {
    const token = this.tokens[this.#position];
    const where = token ? `at character ${token.at + 1}` : "at the end";
    throw new BrokerError("BROKER_CONFIG_INVALID", `${this.at}: ${message} ${where} of ${JSON.stringify(this.text)}`);
  }
  peek(): Token | undefined {
    return this.tokens[this.#position];
  }
  done(): boolean {
    return this.#position >= this.tokens.length;
  }
  isWord(word: string): boolean {
    const t = this.peek();
    return t?.kind === "word" && t.text.toLowerCase() === word;
  }
  isOp(op: string): boolean {
    const t = this.peek();
    return t?.kind === "op" && t.text === op;
  }
  take(): Token {
    const t = this.peek();
    if (!t) this.fail("the expression ends too early");
    this.#position++;
    return t;
  }
  expectOp(op: string): void {
    if (!this.isOp(op)) this.fail(`expected "${op}"`);
    this.#position++;
  }
  acceptWord(word: string): boolean {
    if (!this.isWord(word)) return false;
    this.#position++;
    return true;
  }

  expression(): Predicate {
    return this.chain("or", () => this.conjunction(), (a, b) => (a === true || b === true ? true : a === null || b === null ? null : false));
  }
  conjunction(): Predicate {
    return this.chain("and", () => this.negation(), (a, b) => (a === false || b === false ? false : a === null || b === null ? null : true));
  }
  /** Operands joined by a keyword, combined in SQL's three-valued logic (null is unknown). */
  chain(word: string, operand: () => Predicate, combine: (a: boolean | null, b: boolean | null) => boolean | null): Predicate {
    let left = operand();
    while (this.acceptWord(word)) {
      const l = left, r = operand();
      left = (m) => combine(l(m), r(m));
    }
    return left;
  }
  negation(): Predicate {
    if (this.acceptWord("not")) {
      const inner = this.negation();
      return (m) => {
        const v = inner(m);
        return v === null ? null : !v;
      };
    }
    return this.predicate();
  }
  predicate(): Predicate {
    if (this.isOp("(")) {
      this.take();
      const inner = this.expression();
      this.expectOp(")");
      return inner;
    }
    if (this.acceptWord("exists")) {
      this.expectOp("(");
      const name = this.identifier();
      this.expectOp(")");
      return (m) => name(m) !== null;
    }
    const left = this.operand();
    if (this.acceptWord("is")) {
      const negate = this.acceptWord("not");
      if (!this.acceptWord("null")) this.fail("expected NULL");
      return (m) => (left(m) === null) !== negate;
    }
    const negate = this.acceptWord("not");
    if (this.acceptWord("in")) {
      this.expectOp("(");
      const options: Getter[] = [this.operand()];
      while (this.isOp(",")) {
        this.take();
        options.push(this.operand());
      }
      this.expectOp(")");
      return (m) => {
        const v = left(m);
        if (v === null) return null;
        return options.some((o) => o(m) === v) !== negate;
      };
    }
    if (this.acceptWord("like")) {
      const pattern = this.take();
      if (pattern.kind !== "string") this.fail("LIKE needs a quoted pattern");
      let escape: string | undefined;
      if (this.acceptWord("escape")) escape = this.take().text;
      const regex = likePattern(pattern.text, escape);
      return (m) => {
        const v = left(m);
        return v === null ? null : regex.test(String(v)) !== negate;
      };
    }
    if (negate) this.fail("expected IN or LIKE after NOT");
    const op = this.take();
    if (op.kind !== "op" || !["=", "<>", "!=", "<", ">", "<=", ">="].includes(op.text)) this.fail(`expected a comparison, got ${JSON.stringify(op.text)}`);
    const right = this.operand();
    return (m) => compare(op.text, left(m), right(m));
  }
  operand(): Getter {
    const t = this.peek();
    if (!t) this.fail("expected a value");
    if (t.kind === "string") return this.take(), () => t.text;
    if (t.kind === "number") return this.take(), () => Number(t.text);
    if (t.kind === "word" && ["true", "false", "null"].includes(t.text.toLowerCase())) {
      this.take();
      const v = t.text.toLowerCase();
      return () => (v === "null" ? null : v === "true");
    }
    return this.identifier();
  }
  identifier(): Getter {
    const t = this.take();
    if (t.kind === "ident") return userProperty(t.text);
    if (t.kind !== "word" || KEYWORDS.has(t.text.toLowerCase())) this.fail(`expected a property name, got ${JSON.stringify(t.text)}`);
    return property(t.text, (message) => this.fail(message));
  }
}

function property(name: string, fail: (message: string) => never): Getter {
  const [scope, rest] = name.includes(".") ? [name.slice(0, name.indexOf(".")).toLowerCase(), name.slice(name.indexOf(".") + 1)] : ["user", name];
  if (scope === "sys") {
    const key = SYSTEM_PROPERTIES[rest.toLowerCase()];
    if (!key) fail(`sys.${rest} is not a system property plugbox broker filters on (${Object.keys(SYSTEM_PROPERTIES).join(", ")})`);
    return (m) => (m[key] === undefined || m[key] === null ? null : (m[key] as Value));
  }
  if (scope === "user") return userProperty(rest);
  return userProperty(name);
}

function userProperty(name: string): Getter {
  return (m) => {
    const v = m.application_properties?.[name];
    return v === undefined || v === null ? null : (v as Value);
  };
}

function compare(op: string, a: Value, b: Value): boolean | null {
  if (a === null || b === null) return null;
  if (typeof a !== typeof b) return op === "<>" || op === "!=" ? true : false;
  switch (op) {
    case "=":
      return a === b;
    case "<>":
    case "!=":
      return a !== b;
    case "<":
      return a < b;
    case ">":
      return a > b;
    case "<=":
      return a <= b;
    default:
      return a >= b;
  }
}

function likePattern(pattern: string, escape: string | undefined): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (escape && c === escape && i + 1 < pattern.length) source += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    else if (c === "%") source += ".*";
    else if (c === "_") source += ".";
    else source += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

export function sqlFilter(text: string, at: string): (m: AmqpMessage) => boolean {
  const parser = new SqlParser(tokenize(text, at), text, at);
  const predicate = parser.expression();
  if (!parser.done()) parser.fail("unexpected text");
  return (m) => predicate(m) === true;
}

/** `SET name = value` and `REMOVE name`, separated by semicolons. */
export function sqlAction(text: string, at: string): (m: AmqpMessage) => AmqpMessage {
  const parser = new SqlParser(tokenize(text, at), text, at);
  const steps: Array<(m: AmqpMessage) => void> = [];
  while (!parser.done()) {
    if (parser.acceptWord("set")) {
      const target = parser.take();
      parser.expectOp("=");
      const value = parser.operand();
      steps.push(assignment(target.text, target.kind === "ident", value, (message) => parser.fail(message)));
    } else if (parser.acceptWord("remove")) {
      const target = parser.take();
      const name = target.kind !== "ident" && target.text.toLowerCase().startsWith("user.") ? target.text.slice(5) : target.text;
      if (target.kind !== "ident" && name.toLowerCase().startsWith("sys.")) parser.fail("REMOVE works on user properties only");
      steps.push((m) => {
        if (m.application_properties) delete m.application_properties[name];
      });
    } else parser.fail("expected SET or REMOVE");
    if (!parser.done()) parser.expectOp(";");
  }
  return (message) => {
    const copy: AmqpMessage = { ...message, application_properties: { ...(message.application_properties ?? {}) } };
    for (const step of steps) step(copy);
    return copy;
  };
}

function assignment(name: string, bracketed: boolean, value: Getter, fail: (message: string) => never): (m: AmqpMessage) => void {
  if (!bracketed && name.toLowerCase().startsWith("sys.")) {
    const key = SYSTEM_PROPERTIES[name.slice(4).toLowerCase()];
    if (!key) fail(`sys.${name.slice(4)} cannot be set`);
    return (m) => {
      m[key] = value(m) ?? undefined;
    };
  }
  const user = !bracketed && name.toLowerCase().startsWith("user.") ? name.slice(5) : name;
  return (m) => {
    m.application_properties![user] = value(m);
  };
}
