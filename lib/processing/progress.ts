import { eq } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { attachments, jobs } from "../../db/schema.ts";

/** The outputs of processing a receiver can use, in the order they are made. */
export type OutputKind = "thumbnail" | "stripped" | "progressive" | "hls" | "storyboard";

/** An attachment's processing state as the events stream reports it. */
export interface ProcessingSnapshot {
  status: "processing" | "ready" | "failed";
  error: string | null;
  /** Whole percent of the processing done, 0–100. */
  percent: number;
  /** The outputs that exist now. */
  outputs: OutputKind[];
  /** Who uploaded it, and what decides {@linkcode isPlayable}. */
  playability: Playability;
}

/** The columns {@linkcode isPlayable} looks at. */
export interface Playability {
  status: "processing" | "ready" | "failed";
  uploaderId: string;
  playback: string | null;
  strippedKey: string | null;
  playbackKey: string | null;
  hlsKey: string | null;
}

/**
 * Whether `userId` can play the video now, before every output exists: it
 * is ready, or the adaptive ladder is made, or the stream has what it will
 * serve for good: the progressive rendition or, when the original plays as
 * it is, the copy without metadata (or the original itself, for its
 * uploader, whose bytes they are).
 */
export function isPlayable(attachment: Playability, userId: string): boolean {
  if (attachment.status === "failed") return false;
  if (attachment.status === "ready" || attachment.hlsKey || attachment.playbackKey) return true;
  if (attachment.playback !== "original") return false;
  return attachment.strippedKey !== null || attachment.uploaderId === userId;
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
    uploaderId: attachments.uploaderId,
    playback: attachments.playback,
    thumbnailKey: attachments.thumbnailKey,
    strippedKey: attachments.strippedKey,
    playbackKey: attachments.playbackKey,
    hlsKey: attachments.hlsKey,
    storyboardKey: attachments.storyboardKey,
  }).from(attachments).where(eq(attachments.id, attachmentId));
  if (!attachment || attachment.deletedAt !== null) return null;
  const made: [OutputKind, string | null][] = [
    ["thumbnail", attachment.thumbnailKey],
    ["stripped", attachment.strippedKey],
    ["progressive", attachment.playbackKey],
    ["hls", attachment.hlsKey],
    ["storyboard", attachment.storyboardKey],
  ];
  const outputs = made.filter(([, key]) => key !== null).map(([kind]) => kind);
  const known = { outputs, playability: attachment };
  if (attachment.status !== "processing") {
    return { status: attachment.status, error: attachment.error, percent: 100, ...known };
  }
  const rows = await db.select({ status: jobs.status, progress: jobs.progress }).from(jobs)
    .where(eq(jobs.attachmentId, attachmentId));
  const done = rows.reduce(
    (sum, job) =>
      sum + (job.status === "done" ? 1 : job.status === "running" ? job.progress ?? 0 : 0),
    0,
  );
  const percent = rows.length === 0 ? 0 : Math.floor((done / rows.length) * 100);
  return { status: "processing", error: null, percent: Math.min(99, percent), ...known };
}
