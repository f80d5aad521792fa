import { and, eq, ne, type SQL, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { attachments, type Job, jobs } from "../../db/schema.ts";
import { newId } from "../core/ids.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";
import type { Clock } from "../core/clock.ts";
import type { WebhookConfig } from "../config/config.ts";
import { enqueueWebhook } from "../webhooks/events.ts";

/** Kinds of processing work. */
export type JobKind = "thumbnail" | "strip" | "subtitles" | "rendition" | "hls" | "storyboard";

/**
 * The jobs every upload gets, in the order they are claimed, which is the
 * order that lets a receiver start watching soonest: the poster; the copy
 * receivers download, which is also what they play when the original plays
 * as it is; the text subtitle tracks (seconds of work, and a receiver may
 * want them from the first frame); the progressive rendition (the first playable output of any
 * other video); then the adaptive ladder, which takes longest, and the
 * storyboard, which only helps seeking.
 */
export const PROCESSING_JOBS: readonly JobKind[] = [
  "thumbnail",
  "strip",
  "subtitles",
  "rendition",
  "hls",
  "storyboard",
];

/** One job to queue: what to do, for which attachment. */
export interface JobToQueue {
  attachmentId: string;
  kind: JobKind;
}

/**
 * Queues jobs inside the caller's transaction, in the order given (their ids
 * are time-ordered, which makes it the claim order among jobs queued at the
 * same time). A backfill's jobs carry its `batchId`, which also puts them
 * behind every upload's in {@linkcode JobQueue.claim}.
 */
export async function enqueueJobs(
  db: Pick<Database, "insert">,
  queued: readonly JobToQueue[],
  options: { now: Date; batchId?: string; runAfter?: Date },
): Promise<void> {
  if (queued.length === 0) return;
  const t = options.now.getTime();
  const runAfter = options.runAfter?.getTime() ?? t;
  await db.insert(jobs).values(queued.map(({ attachmentId, kind }) => ({
    id: newId(),
    kind,
    attachmentId,
    status: "queued" as const,
    maxAttempts: 3,
    runAfter,
    batchId: options.batchId ?? null,
    createdAt: t,
    updatedAt: t,
  })));
}

/**
 * Queues an attachment's processing jobs ({@linkcode PROCESSING_JOBS}) inside
 * the caller's transaction, so the jobs exist exactly when the attachment does.
 */
export async function enqueueProcessing(
  db: Pick<Database, "insert">,
  attachmentId: string,
  options: { now: Date; runAfter?: Date },
): Promise<void> {
  await enqueueJobs(db, PROCESSING_JOBS.map((kind) => ({ attachmentId, kind })), options);
}

/** Makes an attachment's queued jobs runnable now (after {@linkcode enqueueProcessing}'s `runAfter`). */
export async function startQueuedJobs(
  db: Pick<Database, "update">,
  attachmentId: string,
  now: Date,
): Promise<void> {
  await db.update(jobs).set({ runAfter: now.getTime() })
    .where(and(eq(jobs.attachmentId, attachmentId), eq(jobs.status, "queued")));
}

/** Delay before retry number `attempt` (1-based): 2 s, 8 s, 32 s … capped at 10 min. */
export function retryDelayMs(attempt: number): number {
  return Math.min(2000 * 4 ** (attempt - 1), 600_000);
}

/**
 * Narrows the runnable jobs a claim may take: a remote runner asks only for
 * the kinds it can do, and accepts one job by its id (lib/runners/).
 */
export interface RunnableFilter {
  id?: string;
  kinds?: readonly string[];
}

/**
 * The id of the next runnable job at `t` in claim order (as a subquery): a
 * queued job whose time has come, or a running job whose lease expired.
 * Jobs of a backfill (with a `batch_id`) come after every other.
 */
export function nextRunnable(t: number, only: RunnableFilter = {}): SQL {
  const filters: SQL[] = [];
  if (only.id !== undefined) filters.push(sql` AND id = ${only.id}`);
  if (only.kinds !== undefined) {
    filters.push(
      only.kinds.length === 0
        ? sql` AND 0`
        : sql` AND kind IN (${sql.join(only.kinds.map((kind) => sql`${kind}`), sql`, `)})`,
    );
  }
  return sql`
         SELECT id FROM jobs
          WHERE ((status = 'queued' AND run_after <= ${t})
             OR (status = 'running' AND locked_until < ${t} AND attempts < max_attempts))${
    sql.join(filters, sql``)
  }
          ORDER BY batch_id IS NOT NULL, run_after, id
          LIMIT 1`;
}

/** What a {@linkcode JobQueue} is built from. */
export interface JobQueueOptions {
  db: Database;
  /** Written to `locked_by` on every claim; it names the process holding a job. */
  workerId: string;
  /** How long a claimed job is ours before another worker may take it over. */
  leaseMs: number;
  clock: Clock;
  /**
   * The webhook receiver (`config.webhook`): an attachment that becomes
   * ready or failed queues its event in the same transaction.
   */
  webhook?: WebhookConfig;
}

/**
 * The `jobs` table seen by one worker: claim by lease, keep the lease,
 * report, finish. Every write after the claim is keyed by the claimed
 * generation (the job's id, this worker and its `attempts`), so a run that
 * lost its lease — and whose job was claimed again, possibly by another
 * slot of this same worker — cannot extend, report on, finish or fail the
 * run that replaced it.
 *
 * @example
 * ```ts
 * const queue = new JobQueue({ db, workerId: "worker-1", leaseMs: 60_000, clock: () => new Date() });
 * const job = await queue.claim();
 * if (job) await queue.complete(job);
 * ```
 */
export class JobQueue {
  readonly workerId: string;
  readonly #db: Database;
  readonly #leaseMs: number;
  readonly #clock: Clock;
  readonly #webhook: WebhookConfig | undefined;

  constructor(options: JobQueueOptions) {
    this.workerId = options.workerId;
    this.#webhook = options.webhook;
    this.#db = options.db;
    this.#leaseMs = options.leaseMs;
    this.#clock = options.clock;
  }

  /**
   * Claims the next runnable job by lease in one statement, so two workers
   * never get the same job: a queued job whose time has come, or a running
   * job whose lease expired (its worker crashed). Jobs of a backfill (with a
   * `batch_id`) come after every runnable job of an upload or a reprocess: a
   * backfill of the whole library must not keep a new upload waiting. `only`
   * narrows it to some kinds or one job ({@linkcode nextRunnable}).
   */
  async claim(only: RunnableFilter = {}): Promise<Job | null> {
    await this.failAbandoned();
    const t = this.#clock().getTime();
    const rows = await this.#db.all<Record<string, unknown>>(sql`
      UPDATE jobs
         SET status = 'running', locked_by = ${this.workerId},
             locked_until = ${t + this.#leaseMs},
             attempts = attempts + 1, progress = NULL, updated_at = ${t}
       WHERE id = (${nextRunnable(t, only)})
      RETURNING *`);
    const row = rows[0];
    if (!row) return null;
    return {
      id: String(row.id),
      kind: String(row.kind),
      attachmentId: String(row.attachment_id),
      status: "running",
      attempts: Number(row.attempts),
      maxAttempts: Number(row.max_attempts),
      runAfter: Number(row.run_after),
      lockedBy: this.workerId,
      lockedUntil: Number(row.locked_until),
      lastError: row.last_error === null ? null : String(row.last_error),
      progress: null,
      batchId: row.batch_id === null || row.batch_id === undefined ? null : String(row.batch_id),
      createdAt: Number(row.created_at),
      updatedAt: t,
    };
  }

  /**
   * Fails jobs whose lease expired on their last attempt: a file that kills
   * its worker every time must not be retried forever. Their attachments fail
   * too while still `processing` (a `ready` one keeps playing what it has, as
   * in {@linkcode JobQueue.fail}). {@linkcode JobQueue.claim} calls it first.
   */
  async failAbandoned(): Promise<number> {
    const t = this.#clock().getTime();
    return await this.#db.transaction(async (tx) => {
      const failed = await tx.all<{ attachment_id: string; attempts: number }>(sql`
        UPDATE jobs
           SET status = 'failed', locked_by = NULL, locked_until = NULL, updated_at = ${t},
               last_error = 'The worker stopped responding on every attempt'
         WHERE status = 'running' AND locked_until < ${t} AND attempts >= max_attempts
        RETURNING attachment_id, attempts`);
      for (const job of failed) {
        const [attachment] = await tx.update(attachments)
          .set({
            status: "failed",
            error: `Processing stopped responding ${job.attempts} times`,
            processedAt: t,
          })
          .where(and(eq(attachments.id, job.attachment_id), eq(attachments.status, "processing")))
          .returning();
        if (attachment) {
          await enqueueWebhook(tx, this.#webhook, "attachment.failed", attachment, new Date(t));
        }
      }
      return failed.length;
    });
  }

  /** Pushes a running job's lease forward; false when this run no longer holds it. */
  async extend(job: Job): Promise<boolean> {
    const t = this.#clock().getTime();
    const rows = await this.#db.update(jobs)
      .set({ lockedUntil: t + this.#leaseMs, updatedAt: t })
      .where(this.#held(job))
      .returning({ id: jobs.id });
    return rows.length > 0;
  }

  /** Records how far a running job is (0 to 1), while this run holds it. */
  async progress(job: Job, fraction: number): Promise<void> {
    await this.#db.update(jobs)
      .set({ progress: Math.max(0, Math.min(1, fraction)), updatedAt: this.#clock().getTime() })
      .where(this.#held(job));
  }

  /**
   * Marks a job done; when it was the attachment's last open job, the
   * attachment becomes `ready`. Nothing happens when this run no longer holds it.
   */
  async complete(job: Job): Promise<void> {
    const t = this.#clock().getTime();
    await this.#db.transaction(async (tx) => {
      const done = await tx.update(jobs)
        .set({ status: "done", lockedBy: null, lockedUntil: null, progress: 1, updatedAt: t })
        .where(this.#held(job))
        .returning({ id: jobs.id });
      if (done.length === 0) return;
      const open = await tx.select({ id: jobs.id }).from(jobs)
        .where(and(eq(jobs.attachmentId, job.attachmentId), ne(jobs.status, "done")))
        .limit(1);
      if (open.length === 0) {
        const [attachment] = await tx.update(attachments)
          .set({ status: "ready", error: null, processedAt: t })
          .where(and(eq(attachments.id, job.attachmentId), eq(attachments.status, "processing")))
          .returning();
        if (attachment) {
          await enqueueWebhook(tx, this.#webhook, "attachment.ready", attachment, new Date(t));
        }
      }
    });
  }

  /**
   * Records a failed run: queued again with backoff while attempts remain,
   * otherwise the job is `failed` with the reason, and so is its attachment
   * while it is still `processing`. A `ready` attachment stays ready: the job
   * was a later one (a backfill's), and what the attachment had still plays;
   * the job row keeps the reason. Nothing is written when this run no
   * longer holds the job.
   */
  async fail(job: Job, reason: string): Promise<"retry" | "failed"> {
    // The reason quotes ffmpeg, which may quote the file: it is shown to participants.
    const message = stripUnsafeCharacters(reason.slice(0, 2000), { multiline: true });
    const final = job.attempts >= job.maxAttempts;
    const t = this.#clock().getTime();
    await this.#db.transaction(async (tx) => {
      const updated = await tx.update(jobs)
        .set({
          status: final ? "failed" : "queued",
          runAfter: final ? job.runAfter : t + retryDelayMs(job.attempts),
          lockedBy: null,
          lockedUntil: null,
          lastError: message,
          updatedAt: t,
        })
        .where(this.#held(job))
        .returning({ id: jobs.id });
      if (final && updated.length > 0) {
        const [attachment] = await tx.update(attachments)
          .set({ status: "failed", error: message, processedAt: t })
          .where(and(eq(attachments.id, job.attachmentId), eq(attachments.status, "processing")))
          .returning();
        if (attachment) {
          await enqueueWebhook(tx, this.#webhook, "attachment.failed", attachment, new Date(t));
        }
      }
    });
    return final ? "failed" : "retry";
  }

  /**
   * Puts a job that could not run for want of disk space back in the queue
   * for `delayMs`, giving back the attempt it used: a full disk says nothing
   * about the video, and an attachment must not fail for good because the
   * operator's disk filled up. Nothing is written when this run no longer
   * holds the job.
   */
  async postpone(job: Job, options: { reason: string; delayMs: number }): Promise<void> {
    const t = this.#clock().getTime();
    await this.#db.update(jobs)
      .set({
        status: "queued",
        attempts: sql`${jobs.attempts} - 1`,
        runAfter: t + options.delayMs,
        lockedBy: null,
        lockedUntil: null,
        lastError: stripUnsafeCharacters(options.reason.slice(0, 2000), { multiline: true }),
        updatedAt: t,
      })
      .where(this.#held(job));
  }

  /**
   * Puts a running job back in the queue, runnable at once, without counting
   * the attempt: the process is shutting down, not the job failing. Nothing
   * happens when this run no longer holds it.
   */
  async release(job: Job): Promise<boolean> {
    const t = this.#clock().getTime();
    const rows = await this.#db.update(jobs)
      .set({
        status: "queued",
        attempts: sql`${jobs.attempts} - 1`,
        runAfter: t,
        lockedBy: null,
        lockedUntil: null,
        progress: null,
        updatedAt: t,
      })
      .where(this.#held(job))
      .returning({ id: jobs.id });
    return rows.length > 0;
  }

  /**
   * The row of this claim and no later one: a worker's slots share its id,
   * so `locked_by` alone would let a stale slot touch a slot's re-claim.
   */
  #held(job: Job): SQL | undefined {
    return and(
      eq(jobs.id, job.id),
      eq(jobs.status, "running"),
      eq(jobs.lockedBy, this.workerId),
      eq(jobs.attempts, job.attempts),
    );
  }
}

/**
 * Ends the leases of a worker known to be dead (its process's lock,
 * lib/storage/process_temp_dir.ts) at once, instead of when they run out:
 * its running jobs are claimed again as any expired lease is (the attempt
 * counts, so a file that kills its worker is not retried forever, and
 * {@linkcode JobQueue.failAbandoned} fails a job on its last attempt), in
 * their place in the claim order. Returns how many.
 */
export async function expireLeasesOf(
  db: Database,
  workerId: string,
  now: Date,
): Promise<number> {
  const rows = await db.update(jobs)
    .set({ lockedUntil: 0, updatedAt: now.getTime() })
    .where(and(eq(jobs.status, "running"), eq(jobs.lockedBy, workerId)))
    .returning({ id: jobs.id });
  return rows.length;
}
