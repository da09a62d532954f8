/**
 * While a runner holds jobs, their leases are renewed every third of leaseMs: a job that waits for a
 * lane or a sandbox worker, or runs long, is not taken over by another host while this one is alive.
 * A host that dies stops renewing, and its jobs are free once their last lease runs out.
 */
import type { Clock, ClockTimer } from "../ids.js";
import type { DataStore } from "../store/engine.js";
import type { JobQueue } from "./queue.js";

/** Starts renewing the owner's leases; returns how to stop. */
export function renewLeasesWhileHeld(parts: { store: DataStore; queue: JobQueue; clock: Clock; owner: string; leaseMs: number }): () => void {
  const { store, queue, clock, owner, leaseMs } = parts;
  const every = Math.max(1, Math.floor(leaseMs / 3));
  let timer: ClockTimer | undefined;
  let stopped = false;
  const renew = () => {
    if (stopped) return;
    void store
      .write(() => queue.renewLeases(owner, leaseMs))
      .catch(() => undefined) // not renewed: the leases run out as after a crash, and the jobs run again
      .finally(() => {
        if (!stopped) timer = clock.setTimeout(renew, every, { unref: true });
      });
  };
  timer = clock.setTimeout(renew, every, { unref: true });
  return () => {
    stopped = true;
    clock.clearTimeout(timer);
  };
}
