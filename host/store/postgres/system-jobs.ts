/**
 * The system_jobs table on PostgreSQL: the same states, codes and answers as SQLite's
 * (../system-jobs.ts, which describes them), for many hosts sharing one database.
 *
 * Leasing is one statement that locks the rows it picks and skips those another host's lease has
 * locked (`FOR UPDATE SKIP LOCKED`), so hosts leasing at once never take the same job and never
 * wait for each other. A job is completed only by the owner that still holds its lease.
 */
import { JOB_COLUMN_COUNT, JOB_COLUMNS, toJob, type Column, type LeasedJob, type NewJobRow, type SystemJob } from "../system-jobs.js";
import type { SystemJobsStore } from "../engine.js";
import { prepared, preparedRows } from "./prepared.js";
import type { PgQueryable } from "./schema.js";

const COLUMN_NAMES = JOB_COLUMNS.split(",").map((column) => column.trim());
const [SEQUENCE, ERROR_CODE] = [COLUMN_NAMES.indexOf("sequence"), COLUMN_NAMES.indexOf("error_code")];
const [DATA, POST] = [JOB_COLUMN_COUNT, JOB_COLUMN_COUNT + 1];
/** JOB_COLUMNS of the table `j`, for a statement that joins it. */
const J_COLUMNS = COLUMN_NAMES.map((column) => `j.${column}`).join(", ");

/** pg reads bigint as a string: the sequence (an identity, far below 2^53) and the error code are numbers again. */
function fromRow(row: Column[]): SystemJob {
  row[SEQUENCE] = Number(row[SEQUENCE]);
  if (row[ERROR_CODE] !== null) row[ERROR_CODE] = Number(row[ERROR_CODE]);
  return toJob(row);
}

export class PostgresSystemJobsTable implements SystemJobsStore {
  readonly #db: PgQueryable;
  constructor(db: PgQueryable) {
    this.#db = db;
  }

  async #rows(text: string, values: unknown[]): Promise<Column[][]> {
    return (await this.#db.query<Column[]>(preparedRows(text, values))).rows;
  }

  /** Runs an INSERT, UPDATE or DELETE; true when it changed a row. */
  async #changed(text: string, values: unknown[]): Promise<boolean> {
    return ((await this.#db.query(prepared(text, values))).rowCount ?? 0) > 0;
  }

  async insert(job: NewJobRow): Promise<void> {
    await this.#changed(
      `INSERT INTO system_jobs (id, name, operation_type, state_code, status_code, owning_extension_id, message_name, primary_entity_type, regarding_id, data, post, depth, created_on, auto_delete)
       VALUES ($1, $2, 1, 0, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [job.id, job.name, job.stepId, job.messageName, job.entity, job.regardingId, job.data, job.post, job.depth, job.createdOn.toISOString(), job.autoDelete ? 1 : 0],
    );
  }

  /**
   * Leases up to `limit` jobs: ready ones oldest first, then those whose lease ran out (the longest
   * expired first, then the oldest), sorted by sequence. Each part is read through its index; rows another
   * transaction holds are skipped, not waited for.
   */
  async lease(owner: string, at: Date, leaseMs: number, limit: number): Promise<LeasedJob[]> {
    const now = at.toISOString();
    const until = new Date(at.getTime() + leaseMs).toISOString();
    const rows = await this.#rows(
      `WITH ready AS (
         SELECT id FROM system_jobs WHERE state_code = 0 AND (postpone_until IS NULL OR postpone_until <= $3)
         ORDER BY sequence LIMIT $4 FOR UPDATE SKIP LOCKED
       ), expired AS (
         SELECT id FROM system_jobs WHERE state_code = 2 AND lease_until < $3
         ORDER BY lease_until, sequence LIMIT $4 - (SELECT count(*) FROM ready) FOR UPDATE SKIP LOCKED
       )
       UPDATE system_jobs AS j SET state_code = 2, status_code = 20, lease_owner = $1, lease_until = $2, started_on = $3
       FROM (SELECT id FROM ready UNION ALL SELECT id FROM expired) AS picked WHERE j.id = picked.id
       RETURNING ${J_COLUMNS}, j.data, j.post`,
      [owner, until, now, limit],
    );
    return rows
      .map((row) => ({ job: fromRow(row), data: row[DATA] as string, post: row[POST] as string | null }))
      .sort((a, b) => a.job.sequence - b.job.sequence);
  }

  /** Leases one job by id at one attempt, if it is Ready and due by `dueBy` or its lease ran out (see SystemJobsStore.leaseById). */
  async leaseById(id: string, owner: string, at: Date, leaseMs: number, attempt: number, dueBy: Date): Promise<{ leased: LeasedJob } | { leased?: undefined; job: SystemJob | undefined }> {
    const now = at.toISOString();
    // The row's own lock orders this against a batch lease (which skips it) and a concurrent leaseById (which waits, then finds it leased).
    const [row] = await this.#rows(
      `UPDATE system_jobs SET state_code = 2, status_code = 20, lease_owner = $1, lease_until = $2, started_on = $3
       WHERE id = $4 AND retry_count = $5 AND ((state_code = 0 AND (postpone_until IS NULL OR postpone_until <= $6)) OR (state_code = 2 AND lease_until < $3))
       RETURNING ${JOB_COLUMNS}, data, post`,
      [owner, new Date(at.getTime() + leaseMs).toISOString(), now, id.toLowerCase(), attempt, dueBy.toISOString()],
    );
    if (!row) return { job: await this.get(id) };
    return { leased: { job: fromRow(row), data: row[DATA] as string, post: row[POST] as string | null } };
  }

  /** Gives back leased jobs that were not started (a runner that stops), so they are ready at once. */
  async release(ids: readonly string[], owner: string): Promise<void> {
    if (ids.length === 0) return;
    await this.#changed(
      "UPDATE system_jobs SET state_code = 0, status_code = 0, lease_owner = NULL, lease_until = NULL, started_on = NULL WHERE id = ANY($1::text[]) AND lease_owner = $2 AND state_code = 2",
      [ids, owner],
    );
  }

  /** When the next job becomes ready (now if one is), or undefined when none is waiting. */
  async nextDue(): Promise<Date | undefined> {
    const { rows } = await this.#db.query<{ due: string | null }>(
      prepared(`SELECT min(CASE WHEN state_code = 0 THEN coalesce(postpone_until, created_on) ELSE lease_until END) AS due
                FROM system_jobs WHERE state_code = 0 OR state_code = 2`),
    );
    const due = rows[0]?.due;
    return due ? new Date(due) : undefined;
  }

  /** Completes a job the owner still holds; false when the lease was lost. The failure of an earlier attempt is cleared. */
  succeed(id: string, owner: string, autoDelete: boolean, at: Date): Promise<boolean> {
    if (autoDelete) return this.#changed("DELETE FROM system_jobs WHERE id = $1 AND lease_owner = $2 AND state_code = 2", [id, owner]);
    return this.#changed(
      "UPDATE system_jobs SET state_code = 3, status_code = 30, completed_on = $3, lease_owner = NULL, lease_until = NULL, message = NULL, friendly_message = NULL, error_code = NULL WHERE id = $1 AND lease_owner = $2 AND state_code = 2",
      [id, owner, at.toISOString()],
    );
  }

  fail(id: string, owner: string, failure: { message: string; errorCode: number | null }, at: Date): Promise<boolean> {
    return this.#changed(
      "UPDATE system_jobs SET state_code = 3, status_code = 31, completed_on = $3, lease_owner = NULL, lease_until = NULL, message = $4, friendly_message = $4, error_code = $5 WHERE id = $1 AND lease_owner = $2 AND state_code = 2",
      [id, owner, at.toISOString(), failure.message, failure.errorCode],
    );
  }

  /** Puts the job back to wait until `at`, counting the attempt. */
  retryLater(id: string, owner: string, at: Date, failure: { message: string; errorCode: number | null }): Promise<boolean> {
    return this.#changed(
      "UPDATE system_jobs SET state_code = 0, status_code = 10, retry_count = retry_count + 1, postpone_until = $3, lease_owner = NULL, lease_until = NULL, message = $4, error_code = $5 WHERE id = $1 AND lease_owner = $2 AND state_code = 2",
      [id, owner, at.toISOString(), failure.message, failure.errorCode],
    );
  }

  /** Puts a job back to wait until `at` for a resource it could not have, without counting an attempt. */
  waitForResources(id: string, owner: string, at: Date, message: string): Promise<boolean> {
    return this.#changed(
      "UPDATE system_jobs SET state_code = 0, status_code = 0, postpone_until = $3, lease_owner = NULL, lease_until = NULL, message = $4 WHERE id = $1 AND lease_owner = $2 AND state_code = 2",
      [id, owner, at.toISOString(), message],
    );
  }

  async get(id: string): Promise<SystemJob | undefined> {
    const [row] = await this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs WHERE id = $1`, [id.toLowerCase()]);
    return row ? fromRow(row) : undefined;
  }

  /** The job's stored context as text: plugbox JSON, or a serialized context's header and body. */
  async data(id: string): Promise<{ data: string; post: string | null } | undefined> {
    return (await this.#db.query<{ data: string; post: string | null }>(prepared("SELECT data, post FROM system_jobs WHERE id = $1", [id.toLowerCase()]))).rows[0];
  }

  async list(filter: { stateCode?: number } = {}): Promise<SystemJob[]> {
    const rows =
      filter.stateCode === undefined
        ? await this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs ORDER BY sequence`, [])
        : await this.#rows(`SELECT ${JOB_COLUMNS} FROM system_jobs WHERE state_code = $1 ORDER BY sequence`, [filter.stateCode]);
    return rows.map(fromRow);
  }

  async renewLeases(owner: string, until: Date): Promise<number> {
    const result = await this.#db.query(prepared("UPDATE system_jobs SET lease_until = $1 WHERE lease_owner = $2 AND state_code = 2", [until.toISOString(), owner]));
    return result.rowCount ?? 0;
  }

  async countByStatus(): Promise<Map<number, number>> {
    const { rows } = await this.#db.query<{ status: number; n: number }>(prepared("SELECT status_code AS status, count(*)::int AS n FROM system_jobs GROUP BY status_code"));
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /** Makes a job ready again with a fresh set of attempts. */
  async reset(id: string): Promise<void> {
    await this.#changed(
      "UPDATE system_jobs SET state_code = 0, status_code = 0, retry_count = 0, postpone_until = NULL, completed_on = NULL, message = NULL, friendly_message = NULL, error_code = NULL WHERE id = $1",
      [id],
    );
  }

  /** Completes a job as Canceled. */
  async cancel(id: string, at: Date): Promise<void> {
    await this.#changed("UPDATE system_jobs SET state_code = 3, status_code = 32, completed_on = $2, lease_owner = NULL, lease_until = NULL WHERE id = $1", [id, at.toISOString()]);
  }
}
