import { and, eq, isNull } from "drizzle-orm";
import { type Attachment, attachments } from "../../db/schema.ts";
import { type ActivityContext, recordActivity } from "./activity.ts";
import type { User } from "../auth/auth.ts";
import type { AppDeps } from "../deps.ts";
import { ApiError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { candidateFile, makePoster, THUMBNAIL_FILE } from "../media/poster.ts";
import { posterSourceOf } from "../processing/processing.ts";
import { memberKey, storageKey } from "../storage/storage.ts";

/** The uploader's choice: one of the candidates, or a time in seconds. */
export type PosterChoice = { candidate: number } | { time: number };

/** The candidates' times of an attachment (none for a row made before candidates were kept). */
export function posterCandidatesOf(attachment: Attachment): number[] {
  try {
    const times = JSON.parse(attachment.posterCandidates ?? "[]");
    return Array.isArray(times) ? times.filter((t) => typeof t === "number") : [];
  } catch {
    return [];
  }
}

/**
 * Makes the poster, thumbnail and ThumbHash again from the chosen frame, in
 * a new generation directory (new keys, so new ETags) that carries the
 * candidates over, and records it with `attachment.poster` in one
 * transaction; the replaced generation is removed after. Only the uploader
 * or an admin may choose. A concurrent choice or reprocess that replaced
 * the generation first wins: this one answers 409 and leaves nothing behind.
 */
export async function choosePoster(
  deps: Pick<AppDeps, "db" | "storage" | "media" | "clock">,
  attachment: Attachment,
  options: { user: User; actor: ActivityContext; choice: PosterChoice },
): Promise<Attachment> {
  const { user, actor, choice } = options;
  if (attachment.uploaderId !== user.id && !user.admin) {
    throw new ApiError("forbidden", "Only the uploader or an admin can choose the poster");
  }
  if (!attachment.thumbnailKey) {
    throw new ApiError("conflict", "The video's frames are still being made; try again later", {
      "retry-after": "2",
    });
  }
  const candidates = posterCandidatesOf(attachment);
  let at: number;
  if ("candidate" in choice) {
    at = candidates[choice.candidate] ?? NaN;
    if (!Number.isFinite(at)) {
      throw new ApiError(
        "invalid_request",
        `Field "candidate": this video has ${candidates.length} candidates (0 to ${
          candidates.length - 1
        })`,
      );
    }
  } else {
    at = choice.time;
    if (attachment.duration !== null && at > attachment.duration) {
      throw new ApiError(
        "invalid_request",
        `Field "time": past the end (${attachment.duration} s)`,
      );
    }
  }
  const id = newId();
  const key = storageKey("posters", { at: new Date(attachment.uploadedAt), id });
  const temp = `${deps.storage.tempDir()}/${id}.posters`;
  await Deno.mkdir(temp, { recursive: true });
  let stored = false;
  try {
    const poster = await deps.storage.withLocalCopy(
      attachment.storageKey,
      (path) => makePoster(deps.media, posterSourceOf(attachment, path), { at, outDir: temp }),
    );
    if (attachment.posterKey) {
      const from = attachment.posterKey;
      for (const [i] of candidates.entries()) {
        await deps.storage.withLocalCopy(
          memberKey(from, candidateFile(i)),
          (path) => Deno.copyFile(path, `${temp}/${candidateFile(i)}`),
        );
      }
    }
    await deps.storage.putDirectory(temp, key);
    stored = true;
    const updated = await deps.db.transaction(async (tx) => {
      const [row] = await tx.update(attachments).set({
        posterKey: key,
        thumbnailKey: memberKey(key, THUMBNAIL_FILE),
        posterTime: poster.time,
        thumbhash: poster.thumbhash,
      }).where(and(
        eq(attachments.id, attachment.id),
        isNull(attachments.deletedAt),
        eq(attachments.thumbnailKey, attachment.thumbnailKey!),
      )).returning();
      if (!row) return null;
      await recordActivity(tx, {
        action: "attachment.poster",
        conversationId: attachment.conversationId,
        attachmentId: attachment.id,
        detail: { time: poster.time, ...("candidate" in choice ? choice : {}) },
      }, { context: actor, at: deps.clock() });
      return row;
    });
    if (!updated) {
      throw new ApiError("conflict", "The poster was changed meanwhile; try again");
    }
    stored = false;
    // The replaced generation: a directory, or the single thumbnail of an older row.
    await deps.storage.delete(attachment.posterKey ?? attachment.thumbnailKey);
    return updated;
  } finally {
    if (stored) await deps.storage.delete(key);
    await Deno.remove(temp, { recursive: true }).catch(() => {});
  }
}
