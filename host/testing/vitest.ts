/**
 * `plugbox/testing/vitest`: matchers for plug-in runs and pipeline requests, and a check that no
 * test file leaves a host open. Importing this module (best as a `setupFiles` entry of the vitest
 * config) registers the matchers with vitest's `expect`, adds them to its `Assertion` type, and
 * fails each test file that leaves a host, test host, sandbox runtime, broker or job process open,
 * naming where it was created (and closes it).
 *
 * @example
 * import "plugbox/testing/vitest";
 * const result = await host.execute({ requestName: "Create", parameters: { Target: account } });
 * expect(result).toHaveRunStep({ name: "Number new accounts", outcome: "ok" });
 * await expect(host.execute(bad)).rejects.toHaveFailedWith("PLUGIN_FAILED", "needs a name");
 * @module
 */
import { afterAll, expect, type MatcherState } from "vitest";
import { closeOpenResources, watchOpenResources } from "./leak-check.js";
import { failuresOf, journalOf, journalText, matchesPartial, postsOf, postsText, sameEndpoint, stepsOf, tracesOf, type MatchedStep, type Pattern } from "./matchers.js";

export interface PlugboxMatchers<R = unknown> {
  /**
   * The request ran a step (at any depth) named `step`, or with every member of `step`: the
   * journal's `name`, `stepId`, `stage`, `mode`, `outcome`, `error`, `trace`, and the request's
   * `message`, `entity`, `depth`. Takes a RequestResult (`host.execute`'s), a failed request's
   * error, or a journal.
   */
  toHaveRunStep(step: string | Pattern<MatchedStep>): R;
  /** The run's trace, or the trace of any step of the request, contains `text` (or matches it). */
  toHaveTraced(text: string | RegExp): R;
  /**
   * The run failed, or the request was rejected, with `code` (the error's own, or the plug-in's
   * inside PIPELINE_STEP_FAILED), its message containing (or matching) `message`. With
   * `rejects`: `await expect(host.execute(request)).rejects.toHaveFailedWith("PLUGIN_FAILED")`.
   */
  toHaveFailedWith(code: string, message?: string | RegExp): R;
  /**
   * A context was posted (to `endpoint`, by id or name), having every member of `context`. Takes
   * a recording notification service or its `posts`, a test host's `inbox` (or the host), a
   * RunResult, or a RequestResult.
   */
  toHavePosted(endpoint?: string, context?: Record<string, unknown>): R;
}

declare module "vitest" {
  interface Matchers<T = any> extends PlugboxMatchers<T> {}
}

type Result = { pass: boolean; message: () => string };

/** What a matcher was asked for, as text: JSON, with patterns and asymmetric matchers as they print themselves. */
function describe(value: unknown): string {
  if (value instanceof RegExp) return String(value);
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item instanceof RegExp) return String(item);
    const asymmetric = item as { asymmetricMatch?: unknown; toString(): string } | null;
    return typeof asymmetric?.asymmetricMatch === "function" ? asymmetric.toString() : item;
  });
}

function refuse(matcher: string, wanted: string, received: unknown): never {
  const what = received instanceof Promise ? "a promise (await it, or use `await expect(promise).rejects` / `.resolves`)" : `${typeof received === "object" ? JSON.stringify(received)?.slice(0, 200) : String(received)}`;
  throw new TypeError(`${matcher} takes ${wanted}; it received ${what}`);
}

function toHaveRunStep(this: MatcherState, received: unknown, step: string | Pattern<MatchedStep>): Result {
  const journal = journalOf(received);
  if (!journal) refuse("toHaveRunStep", "a RequestResult (host.execute's), a failed request's error or a journal", received);
  const wanted = typeof step === "string" ? { name: step } : step;
  const pass = stepsOf(journal).some((seen) => (typeof step === "string" && seen.stepId === step) || matchesPartial(seen, wanted, (a, b) => this.equals(a, b)));
  return {
    pass,
    message: () => `expected the request ${this.isNot ? "not " : ""}to have run a step matching ${describe(wanted)}; its journal:\n${journalText(journal)}`,
  };
}

function toHaveTraced(this: MatcherState, received: unknown, text: string | RegExp): Result {
  const traced = tracesOf(received);
  if (!traced) refuse("toHaveTraced", "a RunResult, a RequestResult, a failed request's error or a trace", received);
  const pass = typeof text === "string" ? traced.trace.includes(text) : text.test(traced.trace);
  const shown = traced.journal ? `its journal:\n${journalText(traced.journal)}` : `its trace:\n${traced.trace === "" ? "(empty)" : traced.trace.replace(/^/gm, "  | ")}`;
  return { pass, message: () => `expected ${this.isNot ? "no " : "a "}trace matching ${describe(text)}; ${shown}` };
}

function toHaveFailedWith(this: MatcherState, received: unknown, code: string, message?: string | RegExp): Result {
  const seen = failuresOf(received);
  if (!seen) refuse("toHaveFailedWith", "a RunResult, or the error a request rejected with (`await expect(promise).rejects.toHaveFailedWith(code)`)", received);
  const fits = (text: string) => message === undefined || (typeof message === "string" ? text.includes(message) : message.test(text));
  const pass = seen.failures.some((failure) => failure.code === code && fits(failure.message));
  const wanted = `${code}${message === undefined ? "" : ` and a message matching ${describe(message)}`}`;
  const got = seen.failures.length === 0 ? "it succeeded" : `it failed with ${seen.failures.map((f) => `[${f.code}] ${f.message}`).join("; ")}`;
  const shown = seen.journal ? `\nits journal:\n${journalText(seen.journal)}` : seen.trace ? `\nits trace:\n${seen.trace.replace(/^/gm, "  | ")}` : "";
  return { pass, message: () => `expected ${this.isNot ? "no failure" : "a failure"} with ${wanted}; ${got}${shown}` };
}

function toHavePosted(this: MatcherState, received: unknown, endpoint?: string, context?: Record<string, unknown>): Result {
  const posts = postsOf(received);
  if (!posts) refuse("toHavePosted", "posts (a recording notification service, a test host or its inbox, a RunResult or a RequestResult)", received);
  const pass = posts.some((post) => (endpoint === undefined || sameEndpoint(post, endpoint)) && (context === undefined || matchesPartial(post.context, context, (a, b) => this.equals(a, b))));
  const wanted = `${endpoint === undefined ? "any endpoint" : JSON.stringify(endpoint)}${context === undefined ? "" : ` with a context matching ${describe(context)}`}`;
  return { pass, message: () => `expected ${this.isNot ? "no post" : "a post"} to ${wanted}; the posts:\n${postsText(posts)}` };
}

expect.extend({ toHaveRunStep, toHaveTraced, toHaveFailedWith, toHavePosted });

// From here on plugbox records what it opens; after the file's own afterAll hooks, what is left fails it.
watchOpenResources();
afterAll(closeOpenResources);

export { journalText } from "./matchers.js";
export type { MatchedStep, Pattern } from "./matchers.js";
