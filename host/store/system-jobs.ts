/**
 * System jobs (Dataverse's asyncoperation) in the store, with Dataverse's states and status codes:
 *
 * | state | status |
 * | 0 Ready | 0 Waiting For Resources, 10 Waiting (a retry waits for its time) |
 * | 1 Suspended | 10 Waiting |
 * | 2 Locked | 20 In Progress |
 * | 3 Completed | 30 Succeeded, 31 Failed, 32 Canceled |
 *
 * A worker takes jobs by leasing them (in one write transaction); it completes a job only while it
 * still holds the lease, so a job is never completed twice. A lease that runs out (its worker died) makes the job
 * ready again: every job runs to completion at least once.
 *
 * This module holds the table's SQL; what a job's data means is host/jobs'.
 */
import type Database from "better-sqlite3";
import type { Statement } from "better-sqlite3";

export const JobState = Object.freeze({ Ready: 0, Suspended: 1, Locked: 2, Completed: 3 } as const);
export const JobStatus = Object.freeze({ WaitingForResources: 0, Waiting: 10, InProgress: 20, Pausing: 21, Canceling: 22, Succeeded: 30, Failed: 31, Canceled: 32 } as const);

/** A job as it is inserted: its context already encoded (see host/jobs/job-data.ts). */
export interface NewJobRow {
  id: string;
  name: string;
  stepId: string;
  messageName: string;
  entity: string | null;
  regardingId: string | null;
  /** plugbox JSON of the context, or the header of a serialized one. */
  data: string;
  /** The body of a serialized context, else null. */
  post: string | null;
  depth: number;
  createdOn: Date;
  autoDelete: boolean;
}

export interface SystemJob {
  id: string;
  sequence: number;
  name: string;
  operationType: number;
  stateCode: number;
  statusCode: number;
  owningExtensionId: string | null;
  messageName: string | null;
  primaryEntityType: string | null;
  regardingObjectId: string | null;
  depth: number;
  retryCount: number;
  errorCode: number | null;
  message: string | null;
  friendlyMessage: string | null;
  createdOn: string;
  startedOn: string | null;
  completedOn: string | null;
  postponeUntil: string | null;
  autoDelete: boolean;
}

/**
 * The columns a SystemJob is read from, in the order `toJob` takes them. Rows are read as arrays:
 * better-sqlite3 builds an object per row at several times the cost.
 */
export const JOB_COLUMNS =
  "id, sequence, name, operation_type, state_code, status_code, owning_extension_id, message_name, primary_entity_type, regarding_id, depth, retry_count, error_code, message, friendly_message, created_on, started_on, completed_on, postpone_until, auto_delete";
export const JOB_COLUMN_COUNT = JOB_COLUMNS.split(",").length;
export type Column = string | number | null;

/** A SystemJob from its row, read as an array of JOB_COLUMNS (shared with postgres/system-jobs.ts). */
export function toJob(v: Column[]): SystemJob {
  return {
    id: v[0] as string,
    sequence: v[1] as number,
    name: v[2] as string,
    operationType: v[3] as number,
    stateCode: v[4] as number,
    statusCode: v[5] as number,
    owningExtensionId: v[6] as string | null,
    messageName: v[7] as string | null,
    primaryEntityType: v[8] as string | null,
    regardingObjectId: v[9] as string | null,
    depth: v[10] as number,
    retryCount: v[11] as number,
    errorCode: v[12] as number | null,
    message: v[13] as string | null,
    friendlyMessage: v[14] as string | null,
    createdOn: v[15] as string,
    startedOn: v[16] as string | null,
    completedOn: v[17] as string | null,
    postponeUntil: v[18] as string | null,
    autoDelete: v[19] === 1,
  };
}

/**
 * A leased job's stored context: `data` is plugbox JSON; or, when `post` is set (the job of a
 * posting step or an outbox post), `post` is the context serialized for the endpoint and `data` its
 * header (see `serializedHeader`).
 */
export interface LeasedJob {
  job: SystemJob;
  data: string;
  post: string | null;
}

export class SystemJobsTable {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Statement<unknown[], unknown>>();
  readonly #rowStatements = new Map<string, Statement<unknown[], Column[]>>();
  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Each statement is prepared once. */
  #sql<Result = unknown>(sql: string): Statement<unknown[], Result> {
    let statement = this.#statements.get(sql);
    if (!statement) this.#statements.set(sql, (statement = this.#db.prepare(sql)));
    return statement as Statement<unknown[], Result>;
  }

  /** A query whose rows come as arrays of columns (prepared once, apart from `#sql`'s: `raw()` changes a statement). */
  #rows(sql: string): Statement<unknown[], Column[]> {
    let statement = this.#rowStatements.get(sql);
    if (!statement) this.#rowStatements.set(sql, (statement = this.#db.prepare<unknown[], Column[]>(sql).raw()));
    return statement;
  }

  insert(job: NewJobRow): void {
    this.#sql(
        `INSERT INTO system_jobs (id, sequence, name, operation_type, state_code, status_code, owning_extension_id, message_name, primary_entity_type, regarding_id, data, post, depth, created_on, auto_delete)
         VALUES (?, (SELECT coalesce(max(sequence), 0) + 1 FROM system_jobs), ?, 1, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        job.id,
        job.name,
        job.stepId,
        job.messageName,
        job.entity,
        job.regardingId,
        job.data,
        job.post,
        job.depth,
        job.createdOn.toISOString(),
        job.autoDelete ? 1 : 0,
      );
  }

  /**
   * Leases up to `limit` jobs: ready ones oldest first, then those whose lease ran out. Their data
   * comes as text, to be read after the lease commits. The caller holds a transaction.
   */
  // Read, then lease by rowid: an UPDATE … RETURNING of whole rows costs SQLite half as much again.
  lease(owner: string, at: Date, leaseMs: number, limit: number): LeasedJob[] {
    const now = at.toISOString();
    const until = new Date(at.getTime() + leaseMs).toISOString();
    const columns = `${JOB_COLUMNS}, data, post, rowid`;
    const [DATA, POST, ROWID] = [JOB_COLUMN_COUNT, JOB_COLUMN_COUNT + 1, JOB_COLUMN_COUNT + 2];
    // Two indexed lookups rather than one OR that SQLite would answer with a scan.
    const rows = this.#rows(`SELECT ${columns} FROM system_jobs WHERE state_code = 0 AND (postpone_until IS NULL OR postpone_until <= ?) ORDER BY sequence LIMIT ?`).all(now, limit);
    if (rows.length < limit) rows.push(...this.#rows(`SELECT ${columns} FROM system_jobs WHERE state_code = 2 AND lease_until < ? ORDER BY lease_until LIMIT ?`).all(now, limit - rows.length));
    if (rows.length === 0) return [];
    const rowids = JSON.stringify(rows.map((v) => v[ROWID]));
    this.#sql("UPDATE system_jobs SET state_code = 2, status_code = 20, lease_owner = ?, lease_until = ?, started_on = ? WHERE rowid IN (SELECT value FROM json_each(?))").run(owner, until, now, rowids);
    return rows
      .sort((a, b) => (a[1] as number) - (b[1] as number))
      .map((v) => ({ job: { ...toJob(v), stateCode: JobState.Locked, statusCode: JobStatus.InProgress, startedOn: now }, data: v[DATA] as string, post: v[POST] as string | null }));
  }

  /** Leases one job by id at one attempt, if it is Ready and due by `dueBy` or its lease ran out (see SystemJobsStore.leaseById). */
  leaseById(id: string, owner: string, at: Date, leaseMs: number, attempt: number, dueBy: Date): { leased: LeasedJob } | { leased?: undefined; job: SystemJob | undefined } {
    const now = at.toISOString();
    const row = this.#rows(
      `UPDATE system_jobs SET state_code = 2, status_code = 20, lease_owner = ?, lease_until = ?, started_on = ?
       WHERE id = ? AND retry_count = ? AND ((state_code = 0 AND (postpone_until IS NULL OR postpone_until <= ?)) OR (state_code = 2 AND lease_until < ?))
       RETURNING ${JOB_COLUMNS}, data, post`,
    ).get(owner, new Date(at.getTime() + leaseMs).toISOString(), now, id.toLowerCase(), attempt, dueBy.toISOString(), now);
    if (!row) return { job: this.get(id) };
    return { leased: { job: toJob(row), data: row[JOB_COLUMN_COUNT] as string, post: row[JOB_COLUMN_COUNT + 1] as string | null } };
  }

  /** Gives back leased jobs that were not started (a runner that stops), so they are ready at once. */
  release(ids: readonly string[], owner: string): void {
    const statement = this.#sql("UPDATE system_jobs SET state_code = 0, status_code = 0, lease_owner = NULL, lease_until = NULL, started_on = NULL WHERE id = ? AND lease_owner = ? AND state_code = 2");
    for (const id of ids) statement.run(id, owner);
  }

  /** When the next job becomes ready (now if one is), or undefined when none is waiting. */
  nextDue(): Date | undefined {
    const row = this.#sql<{ due: string | null }>(
        `SELECT min(CASE WHEN state_code = 0 THEN coalesce(postpone_until, created_on) ELSE lease_until END) AS due
         FROM system_jobs WHERE state_code = 0 OR state_code = 2`,
      )
      .get();
    return row?.due ? new Date(row.due) : undefined;
  }

  /**
   * Completes a job the owner still holds; false when the lease was lost (another worker took over).
   * The failure of an earlier attempt is cleared (its retry count and trace logs stay).
   */
  succeed(id: string, owner: string, autoDelete: boolean, at: Date): boolean {
    if (autoDelete) return this.#sql("DELETE FROM system_jobs WHERE id = ? AND lease_owner = ? AND state_code = 2").run(id, owner).changes > 0;
    return (
      this.#sql(
          "UPDATE system_jobs SET state_code = 3, status_code = 30, completed_on = ?, lease_owner = NULL, lease_until = NULL, message = NULL, friendly_message = NULL, error_code = NULL WHERE id = ? AND lease_owner = ? AND state_code = 2",
        )
        .run(at.toISOString(), id, owner).changes > 0
    );
  }

  fail(id: string, owner: string, failure: { message: string; errorCode: number | null }, at: Date): boolean {
    return (
      this.#sql(
          "UPDATE system_jobs SET state_code = 3, status_code = 31, completed_on = ?, lease_owner = NULL, lease_until = NULL, message = ?, friendly_message = ?, error_code = ? WHERE id = ? AND lease_owner = ? AND state_code = 2",
        )
        .run(at.toISOString(), failure.message, failure.message, failure.errorCode, id, owner).changes > 0
    );
  }

  /** Puts the job back to wait until `at`, counting the attempt. */
  retryLater(id: string, owner: string, at: Date, failure: { message: string; errorCode: number | null }): boolean {
    return (
      this.#sql(
          "UPDATE system_jobs SET state_code = 0, status_code = 10, retry_count = retry_count + 1, postpone_until = ?, lease_owner = NULL, lease_until = NULL, message = ?, error_code = ? WHERE id = ? AND lease_owner = ? AND state_code = 2",
        )
        .run(at.toISOString(), failure.message, failure.errorCode, id, owner).changes > 0
    );
  }

  /**
   * Puts a job back to wait until `at` for a resource it could not have (a sandbox worker), without
   * counting an attempt: Ready, Waiting For Resources, with the reason in its message.
   */
  waitForResources(id: string, owner: string, at: Date, message: string): boolean {
    return (
      this.#sql(
          "UPDATE system_jobs SET state_code = 0, status_code = 0, postpone_until = ?, lease_owner = NULL, lease_until = NULL, message = ? WHERE id = ? AND lease_owner = ? AND state_code = 2",
        )
        .run(at.toISOString(), message, id, owner).changes > 0
    );
  }

  get(id: string): SystemJob | undefined {
    const row = this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs WHERE id = ?`).get(id.toLowerCase());
    return row ? toJob(row) : undefined;
  }

  /** The job's stored context as text: plugbox JSON, or a serialized context's header and body. */
  data(id: string): { data: string; post: string | null } | undefined {
    return this.#sql<{ data: string; post: string | null }>("SELECT data, post FROM system_jobs WHERE id = ?").get(id.toLowerCase());
  }

  list(filter: { stateCode?: number } = {}): SystemJob[] {
    const rows =
      filter.stateCode === undefined
        ? this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs ORDER BY sequence`).all()
        : this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs WHERE state_code = ? ORDER BY sequence`).all(filter.stateCode);
    return rows.map(toJob);
  }

  /** Moves on the leases the owner holds (its jobs still running or waiting for a lane) to `until`; returns how many. */
  renewLeases(owner: string, until: Date): number {
    return this.#sql("UPDATE system_jobs SET lease_until = ? WHERE lease_owner = ? AND state_code = 2").run(until.toISOString(), owner).changes;
  }

  /** How many jobs have each status code. */
  countByStatus(): Map<number, number> {
    const rows = this.#sql<{ status: number; n: number }>("SELECT status_code AS status, count(*) AS n FROM system_jobs GROUP BY status_code").all();
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /** Makes a job ready again with a fresh set of attempts. */
  reset(id: string): void {
    this.#sql("UPDATE system_jobs SET state_code = 0, status_code = 0, retry_count = 0, postpone_until = NULL, completed_on = NULL, message = NULL, friendly_message = NULL, error_code = NULL WHERE id = ?")
      .run(id);
  }

  /** Completes a job as Canceled. */
  cancel(id: string, at: Date): void {
    this.#sql("UPDATE system_jobs SET state_code = 3, status_code = 32, completed_on = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?").run(at.toISOString(), id);
  }
}

export function describeState(job: Pick<SystemJob, "stateCode" | "statusCode">): string {
  const state = ["Ready", "Suspended", "Locked", "Completed"][job.stateCode] ?? `state ${job.stateCode}`;
  const status: Record<number, string> = { 0: "Waiting For Resources", 10: "Waiting", 20: "In Progress", 21: "Pausing", 22: "Canceling", 30: "Succeeded", 31: "Failed", 32: "Canceled" };
  return `${state} (${status[job.statusCode] ?? job.statusCode})`;
}
