import { eq } from "drizzle-orm";
import { attachments, type Job } from "../db/schema.ts";
import type { AppDeps } from "./deps.ts";
import { makeThumbnail } from "./media/thumbnail.ts";
import { demuxerFor } from "./media/sniff.ts";
import { storageKey } from "./storage.ts";

type ProcessingDeps = Pick<AppDeps, "db" | "storage" | "media">;

async function thumbnailJob(deps: ProcessingDeps, job: Job): Promise<void> {
  const [attachment] = await deps.db.select().from(attachments)
    .where(eq(attachments.id, job.attachmentId));
  if (!attachment || attachment.deletedAt !== null) return;
  if (!(await deps.storage.stat(attachment.storageKey))) {
    throw new Error("The stored video file is missing");
  }
  const temp = `${deps.storage.tempDir()}/${job.id}.jpg`;
  await Deno.mkdir(deps.storage.tempDir(), { recursive: true });
  try {
    await makeThumbnail(deps.media, {
      path: deps.storage.localPath(attachment.storageKey),
      demuxer: demuxerFor(attachment.container),
      duration: attachment.duration,
    }, temp);
    const key = storageKey("thumbnails", new Date(attachment.uploadedAt), attachment.id, "jpg");
    await deps.storage.putFile(temp, key);
    const [still] = await deps.db.update(attachments).set({ thumbnailKey: key })
      .where(eq(attachments.id, attachment.id))
      .returning({ deletedAt: attachments.deletedAt });
    // Deleted while the thumbnail was being made: do not leave the file behind.
    if (!still || still.deletedAt !== null) await deps.storage.delete(key);
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

/** Runs one claimed job; throws to have it retried. */
export async function runJob(deps: ProcessingDeps, job: Job): Promise<void> {
  switch (job.kind) {
    case "thumbnail":
      return await thumbnailJob(deps, job);
    default:
      throw new Error(`Unknown job kind "${job.kind}"`);
  }
}
