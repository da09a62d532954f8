/**
 * What the Service Bus and Event Hubs transports share: posts grouped into batches as they arrive,
 * batches that fit the link's maximum message size, and the relay error for a send that failed.
 */
import { RelayError } from "../errors.js";
import { describeError } from "./transport.js";

/**
 * Groups posts into batches: those that arrive while a batch is on its way wait and leave together
 * in the next, so the busier the endpoint the larger its batches. At most `inFlight` batches are
 * sent at once. `flush` answers each item's failure (undefined when it was sent), so one message
 * that cannot go fails only its own post.
 */
export class Batcher<T> {
  readonly #pending: Array<{ item: T; resolve: () => void; reject: (e: unknown) => void }> = [];
  #sending = 0;
  #scheduled = false;
  constructor(
    readonly flush: (items: T[]) => Promise<unknown[]>,
    readonly inFlight = 2,
  ) {}
  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#kick();
    });
  }
  #kick(): void {
    if (this.#scheduled || this.#sending >= this.inFlight || this.#pending.length === 0) return;
    this.#scheduled = true;
    // After this turn, so posts made in the same turn join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#run();
    });
  }
  async #run(): Promise<void> {
    if (this.#sending >= this.inFlight || this.#pending.length === 0) return;
    const batch = this.#pending.splice(0);
    this.#sending++;
    try {
      const failures = await this.flush(batch.map((b) => b.item));
      batch.forEach((b, i) => (failures[i] === undefined ? b.resolve() : b.reject(failures[i])));
    } catch (error) {
      for (const b of batch) b.reject(error);
    } finally {
      this.#sending--;
      this.#kick();
    }
  }
}

/** A message that does not fit the link's maximum message size even alone. */
class TooLargeForLink extends Error {
  readonly code = "MessageSizeExceeded";
  constructor() {
    super("the message is larger than the link's maximum message size");
  }
}

/** A message the client refused to add to a batch (it failed the client's own checks). */
class RefusedByClient extends Error {
  readonly code = "MessageRefused";
  constructor(cause: unknown) {
    super(`the client refused the message: ${describeError(cause)}`);
  }
}

/** A refusal for size: Service Bus's MessageSizeExceeded, Event Hubs' MessageTooLargeError. */
function isSizeError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === "MessageSizeExceeded" || code === "MessageTooLargeError";
}

/**
 * Sends messages in as few batches as fit the link's maximum message size, and answers each
 * message's failure (undefined when it was sent). A message too large even alone fails by itself;
 * a batch refused for size is sent again a message at a time; any other failure (the link or the
 * connection) fails that batch's messages and those not yet sent, which are not tried on it.
 * Exported for its tests; the Service Bus and Event Hubs transports are its users.
 */
export async function sendInBatches<M, B extends { readonly count: number }>(messages: M[], create: () => Promise<B>, add: (batch: B, message: M) => boolean, send: (batch: B) => Promise<void>): Promise<unknown[]> {
  const failures: unknown[] = new Array(messages.length).fill(undefined);
  let broken: unknown;
  /** Adds message i: whether it fits; a message the client refuses (invalid) fails alone and counts as placed. */
  const tryAdd = (target: B, i: number): boolean => {
    try {
      return add(target, messages[i]!);
    } catch (error) {
      failures[i] = new RefusedByClient(error);
      return true;
    }
  };
  const sendEach = async (indexes: number[]) => {
    for (const i of indexes) {
      if (broken !== undefined) {
        failures[i] = broken;
        continue;
      }
      try {
        const single = await create();
        if (!tryAdd(single, i)) throw new TooLargeForLink();
        if (failures[i] === undefined) await send(single);
      } catch (error) {
        failures[i] = error ?? new Error("the send failed");
        if (!isSizeError(error)) broken ??= failures[i];
      }
    }
  };
  let batch: B | undefined;
  let members: number[] = [];
  const sendBatch = async () => {
    const [sending, indexes] = [batch, members];
    [batch, members] = [undefined, []];
    if (!sending || indexes.length === 0) return;
    try {
      await send(sending);
    } catch (error) {
      if (isSizeError(error) && indexes.length > 1) return sendEach(indexes);
      for (const i of indexes) failures[i] = error ?? new Error("the send failed");
      if (!isSizeError(error)) broken = failures[indexes[0]!];
    }
  };
  const addTo = async (i: number): Promise<boolean> => tryAdd((batch ??= await create()), i);
  for (let i = 0; i < messages.length; i++) {
    if (broken !== undefined) {
      failures[i] = broken;
      continue;
    }
    try {
      let fits = await addTo(i);
      if (!fits && batch!.count > 0) {
        // The batch is full: it goes, and the message tries a fresh one.
        await sendBatch();
        if (broken !== undefined) {
          failures[i] = broken;
          continue;
        }
        fits = await addTo(i);
      }
      if (!fits) failures[i] = new TooLargeForLink();
      else if (failures[i] === undefined) members.push(i);
    } catch (error) {
      // The batch could not be created: the link or the connection is broken.
      failures[i] = error ?? new Error("the link could not be opened");
      broken = failures[i];
    }
  }
  await sendBatch();
  return failures;
}

/**
 * The relay error for a send that failed: RELAY_TOO_LARGE for a message over the link's or the
 * namespace's size and RELAY_REJECTED for one the client refused (sending either again cannot
 * help), else RELAY_UNREACHABLE (retried by a system job).
 */
export function sendFailure(error: unknown, what: string): RelayError {
  if (isSizeError(error)) return new RelayError("RELAY_TOO_LARGE", `${what} was refused as too large: ${describeError(error)}`);
  if (error instanceof RefusedByClient) return new RelayError("RELAY_REJECTED", `${what} was refused: ${error.message}`);
  return new RelayError("RELAY_UNREACHABLE", `${what} failed: ${describeError(error)}`);
}
