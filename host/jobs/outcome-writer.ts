/**
 * A job runner's outcome writes. Outcomes that finish together are written in one transaction (one
 * store turn and one commit for many jobs); each in a savepoint of its own, so a write that fails
 * fails that job only (PostgreSQL would otherwise refuse every later statement of the transaction),
 * while the store failing (busy, closed, the connection lost) fails the batch.
 */
import type { DataStore } from "../store/engine.js";

type Written<T> = { ok: true; value: T } | { ok: false; error: unknown };

export class OutcomeWriter<T> {
  readonly #store: DataStore;
  readonly #waiting: Array<{ write: () => Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void }> = [];
  #flushing: Promise<void> | undefined;

  constructor(store: DataStore) {
    this.#store = store;
  }

  /** Runs `write` in the next batch's transaction; resolves once that transaction committed. */
  record(write: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ write, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  async #writeOne(write: () => Promise<T>): Promise<Written<T>> {
    try {
      await using savepoint = await this.#store.begin();
      const value = await write();
      await savepoint.commit();
      return { ok: true, value };
    } catch (error) {
      return { ok: false, error };
    }
  }

  async #flush(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0);
        let results: Array<Written<T>>;
        try {
          results = await this.#store.write(async () => {
            const written: Array<Written<T>> = [];
            for (const { write } of batch) written.push(await this.#writeOne(write));
            return written;
          });
        } catch (error) {
          for (const { reject } of batch) reject(error);
          continue;
        }
        batch.forEach(({ resolve, reject }, i) => {
          const result = results[i]!;
          if (result.ok) resolve(result.value);
          else reject(result.error);
        });
      }
    } finally {
      this.#flushing = undefined;
    }
  }
}
