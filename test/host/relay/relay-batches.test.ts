/**
 * How posts are grouped into Service Bus and Event Hubs batches, and what one failure does to the
 * others. The transports call this with the clients' own batches; here a batch is a list with a
 * byte budget, so that every failure can be produced on cue.
 */
import { describe, expect, it } from "vitest";
import { sendInBatches } from "../../../dist/host/testing/internal.js";

class Budgeted {
  readonly items: number[] = [];
  constructor(readonly budget: number) {}
  get count() {
    return this.items.length;
  }
  add(size: number): boolean {
    if (size < 0) throw new TypeError("an invalid message");
    if (this.items.reduce((a, b) => a + b, size) > this.budget) return false;
    this.items.push(size);
    return true;
  }
}

const sizeError = Object.assign(new Error("too large for the namespace"), { code: "MessageSizeExceeded" });
const eventHubsSizeError = Object.assign(new Error("the event is too large"), { code: "MessageTooLargeError" });
const linkError = Object.assign(new Error("the connection was lost"), { code: "ServiceCommunicationProblem" });

/** Sends `sizes` with a budget of 10 per batch; `outcome` decides each send. Resolves with the failures and the batches sent. */
async function run(sizes: number[], outcome: (batch: number[], n: number) => Error | undefined = () => undefined, createFails = (_n: number) => false) {
  const sent: number[][] = [];
  let sends = 0;
  let creates = 0;
  const failures = await sendInBatches(
    sizes,
    async () => {
      if (createFails(++creates)) throw linkError;
      return new Budgeted(10);
    },
    (batch, size) => batch.add(size),
    async (batch) => {
      const failure = outcome(batch.items, ++sends);
      if (failure) throw failure;
      sent.push([...batch.items]);
    },
  );
  return { failures: failures.map((f) => (f === undefined ? "sent" : ((f as { code?: string }).code ?? (f as Error).name))), sent, creates };
}

describe("relay batches", () => {
  it("messages go in as few batches as fit, in order, and no batch is created that is not sent", async () => {
    const { failures, sent, creates } = await run([4, 4, 4, 4, 2]);
    expect(failures).toEqual(["sent", "sent", "sent", "sent", "sent"]);
    expect(sent).toEqual([[4, 4], [4, 4, 2]]);
    expect(creates).toBe(2);
  });

  it("a message too large even alone fails by itself (found by trying it in a fresh batch); the others go", async () => {
    const { failures, sent } = await run([3, 11, 3]);
    expect(failures).toEqual(["sent", "MessageSizeExceeded", "sent"]);
    expect(sent).toEqual([[3], [3]]);
  });

  it("a message the client refuses fails by itself", async () => {
    const { failures, sent } = await run([3, -1, 3]);
    expect(failures).toEqual(["sent", "MessageRefused", "sent"]);
    expect(sent).toEqual([[3, 3]]);
  });

  it("a batch refused for size is sent again a message at a time", async () => {
    const { failures, sent } = await run([3, 3, 9], (batch) => (batch.length > 1 ? sizeError : undefined));
    expect(failures).toEqual(["sent", "sent", "sent"]);
    expect(sent).toEqual([[3], [3], [9]]);
  });

  it("Event Hubs' refusal for size fails only the message refused; the link is not taken for broken", async () => {
    const { failures, sent } = await run([6, 6, 6], (batch, n) => (n === 2 ? eventHubsSizeError : undefined));
    expect(failures).toEqual(["sent", "MessageTooLargeError", "sent"]);
    expect(sent).toEqual([[6], [6]]);
  });

  it("when the link is lost while a batch refused for size goes a message at a time, the rest fail without being tried", async () => {
    let singles = 0;
    const { failures, sent } = await run([3, 3, 3], (batch) => (batch.length > 1 ? sizeError : ++singles === 2 ? linkError : undefined));
    expect(failures).toEqual(["sent", "ServiceCommunicationProblem", "ServiceCommunicationProblem"]);
    expect(sent).toEqual([[3]]);
    expect(singles).toBe(2);
  });

  it("a batch lost with its link fails its own messages and those not yet sent, without trying the broken link again", async () => {
    const { failures, sent } = await run([6, 6, 6], (_batch, n) => (n === 2 ? linkError : undefined));
    expect(failures).toEqual(["sent", "ServiceCommunicationProblem", "ServiceCommunicationProblem"]);
    expect(sent).toEqual([[6]]);
  });

  it("a batch that cannot be created fails the messages that needed it and those after; those already sent stay sent", async () => {
    const { failures, sent } = await run([6, 6, 6], undefined, (n) => n === 2);
    expect(failures).toEqual(["sent", "ServiceCommunicationProblem", "ServiceCommunicationProblem"]);
    expect(sent).toEqual([[6]]);
  });
});
