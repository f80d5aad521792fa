import { and, eq, ne, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { attachments, type Job, jobs } from "../../db/schema.ts";
import { newId } from "../core/ids.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";

/** Kinds of processing work. */
export type JobKind = "thumbnail" | "rendition" | "storyboard";

/** The jobs every upload gets, in the order they are claimed: the poster, then playback. */
export const PROCESSING_JOBS: readonly JobKind[] = ["thumbnail", "rendition", "storyboard"];

type Writer = Pick<Database, "insert">;

/** Queues a job, inside the caller's transaction when given one. */
export async function enqueueJob(
  db: Writer,
  job: { kind: JobKind; attachmentId: string; maxAttempts?: number },
  now: Date,
): Promise<string> {
  const id = newId();
  await db.insert(jobs).values({
    id,
    kind: job.kind,
    attachmentId: job.attachmentId,
    status: "queued",
    maxAttempts: job.maxAttempts ?? 3,
    runAfter: now.getTime(),
    createdAt: now.getTime(),
    updatedAt: now.getTime(),
  });
  return id;
}

/**
 * Claims the next runnable job by lease in one statement, so two workers
 * never get the same job: a queued job whose time has come, or a running
 * job whose lease expired (its worker crashed).
 */
export async function claimJob(
  db: Database,
  workerId: string,
  leaseMs: number,
  now: Date,
): Promise<Job | null> {
  const t = now.getTime();
  await failAbandonedJobs(db, now);
  const rows = await db.all<Record<string, unknown>>(sql`
    UPDATE jobs
       SET status = 'running', locked_by = ${workerId}, locked_until = ${t + leaseMs},
           attempts = attempts + 1, progress = NULL, updated_at = ${t}
     WHERE id = (
       SELECT id FROM jobs
        WHERE (status = 'queued' AND run_after <= ${t})
           OR (status = 'running' AND locked_until < ${t} AND attempts < max_attempts)
        ORDER BY run_after, id
        LIMIT 1)
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
    lockedBy: workerId,
    lockedUntil: Number(row.locked_until),
    lastError: row.last_error === null ? null : String(row.last_error),
    progress: null,
    createdAt: Number(row.created_at),
    updatedAt: t,
  };
}

/**
 * Fails jobs whose lease expired on their last attempt: a file that kills its
 * worker every time must not be retried forever. Their attachments fail too.
 */
export async function failAbandonedJobs(db: Database, now: Date): Promise<number> {
  const t = now.getTime();
  return await db.transaction(async (tx) => {
    const failed = await tx.all<{ attachment_id: string; attempts: number }>(sql`
      UPDATE jobs
         SET status = 'failed', locked_by = NULL, locked_until = NULL, updated_at = ${t},
             last_error = 'The worker stopped responding on every attempt'
       WHERE status = 'running' AND locked_until < ${t} AND attempts >= max_attempts
      RETURNING attachment_id, attempts`);
    for (const job of failed) {
      await tx.update(attachments)
        .set({
          status: "failed",
          error: `Processing stopped responding ${job.attempts} times`,
          processedAt: t,
        })
        .where(and(eq(attachments.id, job.attachment_id), eq(attachments.status, "processing")));
    }
    return failed.length;
  });
}

/** Pushes a running job's lease forward; false when this worker no longer holds it. */
export async function extendLease(
  db: Database,
  job: Job,
  workerId: string,
  leaseMs: number,
  now: Date,
): Promise<boolean> {
  const rows = await db.update(jobs)
    .set({ lockedUntil: now.getTime() + leaseMs, updatedAt: now.getTime() })
    .where(and(eq(jobs.id, job.id), eq(jobs.lockedBy, workerId), eq(jobs.status, "running")))
    .returning({ id: jobs.id });
  return rows.length > 0;
}

/** Records how far a running job is (0 to 1), while this worker holds it. */
export async function reportProgress(
  db: Database,
  job: Job,
  workerId: string,
  fraction: number,
  now: Date,
): Promise<void> {
  await db.update(jobs)
    .set({ progress: Math.max(0, Math.min(1, fraction)), updatedAt: now.getTime() })
    .where(and(eq(jobs.id, job.id), eq(jobs.lockedBy, workerId), eq(jobs.status, "running")));
}

/**
 * Marks a job done; when it was the attachment's last open job, the
 * attachment becomes `ready`.
 */
export async function completeJob(
  db: Database,
  job: Job,
  workerId: string,
  now: Date,
): Promise<void> {
  await db.transaction(async (tx) => {
    const done = await tx.update(jobs)
      .set({
        status: "done",
        lockedBy: null,
        lockedUntil: null,
        progress: 1,
        updatedAt: now.getTime(),
      })
      .where(and(eq(jobs.id, job.id), eq(jobs.lockedBy, workerId)))
      .returning({ id: jobs.id });
    if (done.length === 0) return;
    const open = await tx.select({ id: jobs.id }).from(jobs)
      .where(and(eq(jobs.attachmentId, job.attachmentId), ne(jobs.status, "done")))
      .limit(1);
    if (open.length === 0) {
      await tx.update(attachments)
        .set({ status: "ready", error: null, processedAt: now.getTime() })
        .where(and(eq(attachments.id, job.attachmentId), eq(attachments.status, "processing")));
    }
  });
}

/** Delay before retry number `attempt` (1-based): 2 s, 8 s, 32 s … capped at 10 min. */
export function retryDelayMs(attempt: number): number {
  return Math.min(2000 * 4 ** (attempt - 1), 600_000);
}

/**
 * Records a failed run: queued again with backoff while attempts remain,
 * otherwise the job and its attachment are `failed` with the reason.
 */
export async function failJob(
  db: Database,
  job: Job,
  workerId: string,
  reason: string,
  now: Date,
): Promise<"retry" | "failed"> {
  // The reason quotes ffmpeg, which may quote the file: it is shown to participants.
  const message = stripUnsafeCharacters(reason.slice(0, 2000), { multiline: true });
  const final = job.attempts >= job.maxAttempts;
  await db.transaction(async (tx) => {
    const updated = await tx.update(jobs)
      .set({
        status: final ? "failed" : "queued",
        runAfter: final ? job.runAfter : now.getTime() + retryDelayMs(job.attempts),
        lockedBy: null,
        lockedUntil: null,
        lastError: message,
        updatedAt: now.getTime(),
      })
      .where(and(eq(jobs.id, job.id), eq(jobs.lockedBy, workerId)))
      .returning({ id: jobs.id });
    if (final && updated.length > 0) {
      await tx.update(attachments)
        .set({ status: "failed", error: message, processedAt: now.getTime() })
        .where(eq(attachments.id, job.attachmentId));
    }
  });
  return final ? "failed" : "retry";
}
