import { eq } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { attachments, jobs } from "../../db/schema.ts";

/** An attachment's processing state as the events stream reports it. */
export interface ProcessingSnapshot {
  status: "processing" | "ready" | "failed";
  error: string | null;
  /** Whole percent of the processing done, 0–100. */
  percent: number;
}

/**
 * Reads the state from the database, not process memory, so any API process
 * can report on a job that any worker process runs. Each job counts equally;
 * a running one counts by the progress ffmpeg reported.
 */
export async function processingSnapshot(
  db: Database,
  attachmentId: string,
): Promise<ProcessingSnapshot | null> {
  const [attachment] = await db.select({
    status: attachments.status,
    error: attachments.error,
    deletedAt: attachments.deletedAt,
  }).from(attachments).where(eq(attachments.id, attachmentId));
  if (!attachment || attachment.deletedAt !== null) return null;
  if (attachment.status !== "processing") {
    return { status: attachment.status, error: attachment.error, percent: 100 };
  }
  const rows = await db.select({ status: jobs.status, progress: jobs.progress }).from(jobs)
    .where(eq(jobs.attachmentId, attachmentId));
  const done = rows.reduce(
    (sum, job) =>
      sum + (job.status === "done" ? 1 : job.status === "running" ? job.progress ?? 0 : 0),
    0,
  );
  const percent = rows.length === 0 ? 0 : Math.floor((done / rows.length) * 100);
  return { status: "processing", error: null, percent: Math.min(99, percent) };
}
