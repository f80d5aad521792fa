import { eq } from "drizzle-orm";
import { activityLog, type Attachment, attachments, type Message } from "../../db/schema.ts";
import { assertRoomForAttachment } from "../auth/access.ts";
import type { ActivityContext } from "../chat/activity.ts";
import { recordActivity } from "../chat/activity.ts";
import type { Database } from "../../db/client.ts";
import type { Config } from "../config/config.ts";
import type { Clock } from "../core/clock.ts";
import { ApiError } from "../core/errors.ts";
import { sanitizeFileName } from "../core/file_name.ts";
import { newId } from "../core/ids.ts";
import { enqueueProcessing, startQueuedJobs } from "../processing/jobs.ts";
import type { JobSignal } from "../processing/job_signal.ts";
import { assertWithinLimits } from "../media/limits.ts";
import { probeVideo } from "../media/probe.ts";
import type { MediaTools } from "../media/tools.ts";
import { CONTAINERS, readHead, sniffContainer } from "../media/containers.ts";
import { type Storage, storageKey } from "../storage/storage.ts";

/** A complete upload sitting in a temporary file. */
export interface UploadedFile {
  tempPath: string;
  size: number;
  sha256: string;
  fileName: string;
}

/** What {@linkcode ingestVideo} uses: the parts of the app's dependencies it needs. */
export interface IngestDeps {
  config: Config;
  db: Database;
  storage: Storage;
  media: MediaTools;
  clock: Clock;
  jobs: JobSignal;
}

/** Options for {@linkcode ingestVideo}. */
export interface IngestOptions {
  /** The message the video is attached to, already checked for the uploader. */
  message: Message;
  /** Who uploads it, for the activity log. */
  actor: ActivityContext;
}

/**
 * Turns a received file into an attachment: sniff the content, probe it under
 * the hardened flags, then write the row, its jobs and the `video.upload`
 * activity in one transaction and move the file into place. Whatever fails,
 * the temporary file is gone afterwards and no row is left half-made.
 */
export async function ingestVideo(
  deps: IngestDeps,
  upload: UploadedFile,
  options: IngestOptions,
): Promise<Attachment> {
  const { message, actor } = options;
  let staged: string | null = null;
  try {
    if (upload.size === 0) throw new ApiError("invalid_video", "The file is empty");
    const container = sniffContainer(await readHead(upload.tempPath));
    if (!container) {
      throw new ApiError(
        "unsupported_media_type",
        `The content is not a video in an accepted container (${
          CONTAINERS.map((c) => c.label).join(", ")
        })`,
      );
    }
    const metadata = await probeVideo(deps.media, upload.tempPath, { container });
    assertWithinLimits(metadata.inventory, deps.media.limits);
    const now = deps.clock();
    const id = newId();
    const key = storageKey("media", { at: now, id, extension: container.extensions[0]! });
    const row: Attachment = {
      id,
      messageId: message.id,
      conversationId: message.conversationId,
      uploaderId: actor.actorId,
      fileName: sanitizeFileName(upload.fileName, {
        fallback: `video.${container.extensions[0]}`,
      }),
      fileType: "video",
      mimeType: container.mimeTypes[0],
      fileSize: upload.size,
      sha256: upload.sha256,
      storageKey: key,
      status: "processing",
      error: null,
      duration: metadata.duration,
      width: metadata.width,
      height: metadata.height,
      rotation: metadata.rotation,
      bitrate: metadata.bitrate,
      codec: metadata.codec,
      audioCodec: metadata.audioCodec,
      fps: metadata.fps,
      pixFmt: metadata.pixFmt,
      colorSpace: metadata.colorSpace,
      hdr: metadata.hdr,
      hasAudio: metadata.hasAudio,
      audioChannels: metadata.audioChannels,
      audioSampleRate: metadata.audioSampleRate,
      container: container.name,
      playback: null,
      storyboardLayout: null,
      thumbnailKey: null,
      posterKey: null,
      posterCandidates: null,
      posterTime: null,
      thumbhash: null,
      strippedKey: null,
      playbackKey: null,
      storyboardKey: null,
      hlsKey: null,
      hlsLadder: null,
      playbackMeta: null,
      uploadedAt: now.getTime(),
      processedAt: null,
      deletedAt: null,
      filesRemovedAt: null,
      subtitles: null,
      // No subtitle stream at all: nothing to extract, and the `subtitles` job runs no ffprobe.
      subtitlesSkipped: metadata.inventory.streams.some((s) => s.type === "subtitle") ? null : 0,
    };
    // Crash safety: the file first takes a name that carries the attachment id, in this
    // process's temp directory. A process killed after the commit below and before the
    // move leaves `ingest-<id>.<ext>` there, which the next sweep of dead processes' temp
    // directories moves into place (adoptInterruptedIngest); the jobs wait INGEST_GRACE_MS
    // for that, so that no worker finds the row without its file in the meantime.
    staged = `${deps.storage.tempDir()}/${INGEST_PREFIX}${id}.${container.extensions[0]}`;
    await Deno.rename(upload.tempPath, staged);
    await deps.db.transaction(async (tx) => {
      await assertRoomForAttachment(tx, message.id, deps.config.maxAttachmentsPerMessage);
      await tx.insert(attachments).values(row);
      await enqueueProcessing(tx, id, { now, runAfter: new Date(now.getTime() + INGEST_GRACE_MS) });
      await recordActivity(tx, {
        action: "video.upload",
        conversationId: message.conversationId,
        attachmentId: id,
        detail: { file_size: upload.size, container: container.name, sha256: upload.sha256 },
      }, { context: actor, at: now });
    });
    try {
      await deps.storage.putFile(staged, key);
    } catch (error) {
      // The row must not point at a file that never arrived, nor the log at such a row.
      await deps.db.transaction(async (tx) => {
        await tx.delete(activityLog).where(eq(activityLog.attachmentId, id));
        await tx.delete(attachments).where(eq(attachments.id, id));
      });
      throw error;
    }
    await startQueuedJobs(deps.db, id, deps.clock());
    deps.jobs.notify();
    return row;
  } finally {
    await Deno.remove(upload.tempPath).catch(() => {});
    if (staged) await Deno.remove(staged).catch(() => {});
  }
}

/** The name an upload takes in its process's temp directory just before its row is written. */
const INGEST_PREFIX = "ingest-";
/**
 * How long a new attachment's jobs wait for its file to be moved into place
 * after its row is written, should the process die in between: more than
 * the sweep that moves it (`SWEEP_INTERVAL_MS` in main.ts, 30 s). The
 * upload itself makes them runnable at once when the move succeeds.
 */
export const INGEST_GRACE_MS = 60_000;

/**
 * Finishes an upload that a killed process left between its row and its
 * final place: given a file of a dead process's temp directory named
 * `ingest-<attachment id>.<ext>`, moves it to the live attachment's storage
 * key when that key has no file, and makes the attachment's jobs runnable.
 * Returns true when it moved the file; anything else is left to be removed.
 */
export async function adoptInterruptedIngest(
  deps: Pick<IngestDeps, "db" | "storage" | "clock" | "jobs">,
  path: string,
): Promise<boolean> {
  const match = /\/ingest-([0-9a-f-]{36})\.[a-z0-9]+$/.exec(path);
  if (!match) return false;
  const [attachment] = await deps.db.select().from(attachments)
    .where(eq(attachments.id, match[1]!));
  if (!attachment || attachment.deletedAt !== null) return false;
  if (await deps.storage.stat(attachment.storageKey)) return false;
  await deps.storage.putFile(path, attachment.storageKey);
  await startQueuedJobs(deps.db, attachment.id, deps.clock());
  deps.jobs.notify();
  return true;
}
