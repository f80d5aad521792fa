import { and, desc, eq, inArray, isNotNull, isNull, lt } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Attachment, attachments, jobs } from "../../db/schema.ts";
import { type ActivityContext, recordActivity } from "./activity.ts";
import type { User } from "../auth/auth.ts";
import type { AppDeps } from "../deps.ts";
import { ApiError } from "../core/errors.ts";
import { enqueueProcessing } from "../processing/jobs.ts";
import { enqueueWebhook } from "../webhooks/events.ts";
import { subtitleObjectsOf } from "./subtitles.ts";

/** Every stored file of an attachment. */
export function storedKeys(attachment: Attachment): string[] {
  return [
    attachment.storageKey,
    attachment.thumbnailKey,
    attachment.posterKey,
    attachment.strippedKey,
    attachment.playbackKey,
    attachment.storyboardKey,
    attachment.hlsKey,
    ...subtitleObjectsOf(attachment),
  ].filter((key): key is string => key !== null);
}

/**
 * Deletes an attachment (its uploader or an admin): the row is marked
 * deleted, its open jobs dropped, `attachment.delete` logged and the
 * `attachment.deleted` webhook queued in one transaction, then its files
 * are removed and `files_removed_at` set. A process killed in between
 * leaves that column NULL, and the sweep finishes the deletion ({@linkcode finishDeletions}).
 */
export async function deleteAttachment(
  deps: Pick<AppDeps, "db" | "storage" | "clock" | "config">,
  attachment: Attachment,
  options: { user: User; actor: ActivityContext },
): Promise<void> {
  const { user, actor } = options;
  if (attachment.uploaderId !== user.id && !user.admin) {
    throw new ApiError("forbidden", "Only the uploader or an admin can delete this attachment");
  }
  const now = deps.clock();
  const marked = await deps.db.transaction(async (tx) => {
    const rows = await tx.update(attachments).set({ deletedAt: now.getTime() })
      .where(and(eq(attachments.id, attachment.id), isNull(attachments.deletedAt)))
      .returning();
    if (rows.length === 0) return null;
    await tx.delete(jobs).where(and(
      eq(jobs.attachmentId, attachment.id),
      inArray(jobs.status, ["queued", "running"]),
    ));
    await recordActivity(tx, {
      action: "attachment.delete",
      conversationId: attachment.conversationId,
      attachmentId: attachment.id,
      detail: { file_name: attachment.fileName, file_size: attachment.fileSize },
    }, { context: actor, at: now });
    await enqueueWebhook(tx, deps.config.webhook, "attachment.deleted", rows[0]!, now);
    return rows[0]!;
  });
  if (!marked) throw new ApiError("not_found", "Attachment not found");
  await removeFiles(deps, marked);
}

/** Removes a deleted attachment's files, then notes that they are gone. */
async function removeFiles(
  deps: Pick<AppDeps, "db" | "storage" | "clock">,
  attachment: Attachment,
): Promise<void> {
  await Promise.all(storedKeys(attachment).map((key) => deps.storage.delete(key)));
  await deps.db.update(attachments).set({ filesRemovedAt: deps.clock().getTime() })
    .where(eq(attachments.id, attachment.id));
}

/**
 * Finishes deletions whose files were never removed (the process that
 * committed them died first): at most `limit` of those deleted more than
 * `graceMs` ago, so that a deletion still running in another process is left
 * to it (removing a file twice would be harmless anyway). Returns how many it
 * finished. Run by the sweep of `main.ts serve` and `worker`.
 */
export async function finishDeletions(
  deps: Pick<AppDeps, "db" | "storage" | "clock">,
  options: { graceMs: number; limit: number },
): Promise<number> {
  const before = deps.clock().getTime() - options.graceMs;
  const unfinished = await deps.db.select().from(attachments)
    .where(and(
      isNotNull(attachments.deletedAt),
      isNull(attachments.filesRemovedAt),
      lt(attachments.deletedAt, before),
    ))
    .limit(options.limit);
  for (const attachment of unfinished) await removeFiles(deps, attachment);
  return unfinished.length;
}

/** Live attachments by status for the admin view, newest first. */
export async function listAttachmentsByStatus(
  db: Database,
  options: { status?: Attachment["status"]; limit: number; before?: string },
): Promise<Attachment[]> {
  return await db.select().from(attachments)
    .where(and(
      isNull(attachments.deletedAt),
      options.status ? eq(attachments.status, options.status) : undefined,
      options.before ? lt(attachments.id, options.before) : undefined,
    ))
    .orderBy(desc(attachments.id))
    .limit(options.limit);
}

/**
 * Queues an attachment's processing again (an admin's answer to a failed or
 * stuck one): open jobs are dropped, fresh ones queued, status back to
 * `processing`, and `attachment.reprocess` logged, in one transaction.
 */
export async function reprocessAttachment(
  deps: Pick<AppDeps, "db" | "clock" | "jobs">,
  attachment: Attachment,
  actor: ActivityContext,
): Promise<Attachment> {
  const now = deps.clock();
  const updated = await deps.db.transaction(async (tx) => {
    await tx.delete(jobs).where(eq(jobs.attachmentId, attachment.id));
    await enqueueProcessing(tx, attachment.id, { now });
    const [row] = await tx.update(attachments)
      .set({ status: "processing", error: null, processedAt: null })
      .where(eq(attachments.id, attachment.id))
      .returning();
    await recordActivity(tx, {
      action: "attachment.reprocess",
      conversationId: attachment.conversationId,
      attachmentId: attachment.id,
      detail: { previous_status: attachment.status },
    }, { context: actor, at: now });
    return row!;
  });
  deps.jobs.notify();
  return updated;
}
