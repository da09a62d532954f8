/** One holder of a store at a time, the others waiting in order: the store's `acquire`, on both engines. */
import type { StoreLease } from "./engine.js";

export class StoreHolder {
  #queue: Promise<void> = Promise.resolve();

  /** Waits until no one else holds it, then holds it; the lease lets the next one in (once). */
  async acquire(): Promise<StoreLease> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = this.#queue;
    this.#queue = before.then(() => mine);
    await before;
    let released = false;
    const lease = () => {
      if (released) return;
      released = true;
      release();
    };
    return Object.assign(lease, { [Symbol.dispose]: lease });
  }
}
