/**
 * How a change to the namespace is acknowledged: in memory at once, with a data dir only after a
 * group commit of every change read in the same turn of the event loop.
 */
import { BrokerError } from "./errors.js";
import type { Namespace } from "./namespace.js";

export class GroupCommit {
  /** Changes waiting for the next group commit (data dir only; see run). */
  #group: Array<{ change: () => void; answer: (error?: unknown) => void }> = [];

  constructor(
    private readonly namespace: Namespace,
    /** Whether the namespace writes to a store (--data-dir); without one, changes are answered at once. */
    private readonly durable: boolean,
  ) {}

  /**
   * Runs a change to the namespace, then answers the client. In memory, both at once. With a data
   * dir, the changes that arrive in one turn of the event loop (every transfer and settlement read
   * from the sockets meanwhile) are committed together, one fsync for all, and each is answered
   * only after that commit: a group commit. A change that fails is rolled back alone (a savepoint);
   * a commit that fails answers every change of the group with its error.
   */
  run(change: () => void, answer: (error?: unknown) => void): void {
    if (!this.durable) {
      let failure: unknown;
      try {
        change();
      } catch (error) {
        failure = error ?? new Error("failed");
      }
      return answer(failure);
    }
    this.#group.push({ change, answer });
    if (this.#group.length === 1) setImmediate(() => this.#commitGroup());
  }

  #commitGroup(): void {
    const group = this.#group;
    this.#group = [];
    const failures: unknown[] = [];
    try {
      this.namespace.atomically(() => {
        for (const { change } of group) {
          try {
            this.namespace.atomically(change);
            failures.push(undefined);
          } catch (error) {
            if (error instanceof BrokerError && error.code === "BROKER_STORE_FAILED") throw error;
            failures.push(error ?? new Error("failed"));
          }
        }
      });
    } catch (error) {
      for (const { answer } of group) answer(error);
      return;
    }
    group.forEach(({ answer }, i) => answer(failures[i]));
  }
}
