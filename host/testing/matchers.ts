/**
 * What the vitest matchers of `plugbox/testing/vitest` read, without vitest: the steps, traces,
 * failures and posts of a run (RunResult), a pipeline request (RequestResult, or the error a
 * failed one rejects with), a recording notification service or a test host's inbox; and the
 * journal as indented text for their failure messages.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { journalLines, type JournalRequest, type JournalStep } from "../pipeline/journal.js";

/** A step as `toHaveRunStep` matches it: the journal's step, with the request it ran in. */
export interface MatchedStep extends Omit<JournalStep, "requests" | "calls"> {
  /** The request's message and table, and its depth. */
  message: string;
  entity: string | null;
  depth: number;
}

/** A value or a part of it: a string may be given as a RegExp, an object by some of its members. */
export type Pattern<T> = T extends string ? T | RegExp : T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: Pattern<T[K]> } : T;

export interface SeenPost {
  /** The endpoint's id (a recording notification service's, a run's call) or name. */
  endpoint: string;
  /** Its other name: an inbox post's endpoint has both a name and an id. */
  alias?: string;
  context: Record<string, unknown>;
}

export interface Failure {
  code: string;
  message: string;
}

type Equals = (a: unknown, b: unknown) => boolean;

/** The journal a value carries: a RequestResult's, a failed request's error's, or a journal itself. */
export function journalOf(value: unknown): JournalRequest | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const v = value as { journal?: unknown; steps?: unknown; message?: unknown; depth?: unknown };
  if (Array.isArray(v.steps) && typeof v.message === "string" && typeof v.depth === "number") return value as JournalRequest;
  return v.journal && typeof v.journal === "object" ? (v.journal as JournalRequest) : undefined;
}

/** Every step of a journal, nested requests' included, in the order they ran. */
export function stepsOf(journal: JournalRequest): MatchedStep[] {
  const out: MatchedStep[] = [];
  for (const step of journal.steps) {
    const { requests, calls: _calls, ...rest } = step;
    out.push({ ...rest, message: journal.message, entity: journal.entity, depth: journal.depth });
    for (const nested of requests) out.push(...stepsOf(nested));
  }
  return out;
}

/** The journal as indented text: request, then its steps with their outcome, error and trace, then nested requests. */
export function journalText(journal: JournalRequest): string {
  return journalLines(journal).join("\n");
}

/**
 * Whether `actual` has every member of `expected` (recursively for plain objects); a RegExp
 * matches a string; anything else (asymmetric matchers included) is compared by `equals`.
 */
export function matchesPartial(actual: unknown, expected: unknown, equals: Equals): boolean {
  if (expected instanceof RegExp && typeof actual === "string") return expected.test(actual);
  if (isPlainObject(expected) && actual !== null && typeof actual === "object") {
    return Object.keys(expected).every((key) => matchesPartial((actual as Record<string, unknown>)[key], expected[key], equals));
  }
  return equals(actual, expected);
}

/** The trace of a run, or of every step of a request, with where each part came from. */
export function tracesOf(value: unknown): { trace: string; journal?: JournalRequest } | undefined {
  if (typeof value === "string") return { trace: value };
  const journal = journalOf(value);
  if (journal) return { trace: stepsOf(journal).map((step) => step.trace).filter((trace) => trace !== "").join("\n"), journal };
  const trace = (value as { trace?: unknown } | null)?.trace;
  return typeof trace === "string" ? { trace } : undefined;
}

function isRunResult(value: unknown): value is { ok: boolean; error?: Failure; trace: string } {
  return value !== null && typeof value === "object" && typeof (value as { ok?: unknown }).ok === "boolean" && Array.isArray((value as { calls?: unknown }).calls);
}

/**
 * The failures a value reports: a RunResult's error; an error's code, its inner code (the
 * plug-in's own, inside PIPELINE_STEP_FAILED), its causes' and its journal's failed steps'.
 * Undefined when the value is none of these.
 */
export function failuresOf(value: unknown): { failures: Failure[]; journal?: JournalRequest; trace?: string } | undefined {
  if (isRunResult(value)) return { failures: value.ok || !value.error ? [] : [value.error], trace: value.trace };
  const journal = journalOf(value);
  if (value instanceof Error || (value !== null && typeof value === "object" && typeof (value as { code?: unknown }).code === "string")) {
    const failures: Failure[] = [];
    const inner: Failure[] = [];
    const add = (list: Failure[], failure: Failure) => {
      if (!failures.some((f) => f.code === failure.code && f.message === failure.message)) list.push(failure);
    };
    let current: unknown = value;
    for (let depth = 0; current !== null && typeof current === "object" && depth < 16; depth++) {
      const e = current as { code?: unknown; innerCode?: unknown; message?: unknown; cause?: unknown };
      const message = typeof e.message === "string" ? e.message : "";
      if (typeof e.code === "string") add(failures, { code: e.code, message });
      if (typeof e.innerCode === "string") inner.push({ code: e.innerCode, message });
      current = e.cause;
    }
    // The plug-in's own code, where no cause carried it.
    for (const failure of inner) if (!failures.some((f) => f.code === failure.code)) failures.push(failure);
    if (journal) for (const step of stepsOf(journal)) if (step.error) add(failures, step.error);
    return { failures, ...(journal ? { journal } : {}) };
  }
  // A RequestResult: the request succeeded.
  if (journal) return { failures: [], journal };
  return undefined;
}

function post(endpoint: unknown, context: unknown): SeenPost | undefined {
  // An inbox post: its endpoint as { id, name }, its body parsed on demand by context().
  if (isRecord(endpoint) && typeof endpoint.name === "string" && typeof endpoint.id === "string") {
    const parsed = typeof context === "function" ? (context as () => unknown)() : context;
    return isRecord(parsed) ? { endpoint: endpoint.name, alias: endpoint.id, context: parsed } : undefined;
  }
  return typeof endpoint === "string" && isRecord(context) ? { endpoint, context } : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function callPosts(calls: unknown[]): SeenPost[] {
  return calls.flatMap((call) => {
    const c = call as { service?: unknown; op?: unknown; ok?: unknown; args?: unknown };
    if (c.service !== "notification" || c.op !== "execute" || c.ok !== true || !Array.isArray(c.args)) return [];
    const seen = post((c.args[0] as { id?: unknown } | undefined)?.id, c.args[1]);
    return seen ? [seen] : [];
  });
}

/**
 * The posts a value holds: an array of posts (`{ endpointId, context }` of a recording
 * notification service, or `{ endpoint, context, … }` of an inbox), anything with `posts` (an
 * array, or `posts(endpoint?)`), a test host (its `inbox` or `notifications`), a RunResult (its
 * notification calls) or a request's journal (its steps' notification calls).
 */
export function postsOf(value: unknown): SeenPost[] | undefined {
  if (Array.isArray(value)) {
    return value.flatMap((item) => {
      const p = item as { endpointId?: unknown; endpoint?: unknown; context?: unknown };
      const seen = post(p.endpointId ?? p.endpoint, p.context);
      return seen ? [seen] : [];
    });
  }
  if (!isRecord(value)) return undefined;
  const holder = value as { posts?: unknown; inbox?: unknown; notifications?: unknown; calls?: unknown };
  if (typeof holder.posts === "function") return postsOf((holder.posts as () => unknown).call(value));
  if (Array.isArray(holder.posts)) return postsOf(holder.posts);
  if (isRecord(holder.inbox)) return postsOf(holder.inbox);
  if (isRecord(holder.notifications)) return postsOf(holder.notifications);
  if (isRunResult(value)) return callPosts(holder.calls as unknown[]);
  const journal = journalOf(value);
  if (journal) return callPosts(allCalls(journal));
  return undefined;
}

function allCalls(journal: JournalRequest): unknown[] {
  return journal.steps.flatMap((step) => [...step.calls, ...step.requests.flatMap(allCalls)]);
}

/** One line per post: its endpoint and the context's message, table, record and stage. */
export function postsText(posts: SeenPost[]): string {
  if (posts.length === 0) return "  (no posts)";
  return posts
    .map(({ endpoint, context: c }) => `  ${endpoint}: ${String(c.messageName)} of ${String(c.primaryEntityName)} ${String(c.primaryEntityId ?? "")} (stage ${String(c.stage)}, depth ${String(c.depth)})`)
    .join("\n");
}

/** Endpoint ids compare without case (a Guid's); names as they are. */
export function sameEndpoint(seen: SeenPost, wanted: string): boolean {
  return [seen.endpoint, seen.alias].some((name) => name !== undefined && (name === wanted || name.toLowerCase() === wanted.toLowerCase()));
}
