import { eq } from "drizzle-orm";
import { type Attachment, attachments } from "../../db/schema.ts";
import type { AppDeps } from "../deps.ts";
import type { User } from "../auth/auth.ts";
import { ApiError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";
import { type ActivityContext, recordActivity } from "./activity.ts";
import { type Cue, toWebVtt } from "../media/subtitle_text.ts";
import { storageKey } from "../storage/storage.ts";

/** Where subtitle files are stored: `subtitles/YYYY/MM/DD/<name>.vtt`. */
export const SUBTITLES_PREFIX = "subtitles";

/**
 * One subtitle track of an attachment, as kept in its `subtitles` column.
 * Only the language and a label are kept of what a track said about itself:
 * other metadata (an encoder's tags, a title naming its author) stays out.
 */
export interface SubtitleTrack {
  id: string;
  /** BCP 47 tag (`und` when the upload did not say). */
  language: string;
  label: string;
  source: "embedded" | "sidecar";
  /**
   * Storage key of the WebVTT file: a file of its own for a sidecar, a member
   * (`<n>.vtt`) of the directory its extraction job stored for an embedded one.
   */
  key: string;
}

/**
 * The stored object a track's file belongs to, which deletion removes and
 * fsck owns: an embedded track's job directory, or a sidecar's own file.
 */
export function storedObjectOf(track: SubtitleTrack): string {
  return track.source === "embedded" ? track.key.slice(0, track.key.lastIndexOf("/")) : track.key;
}

/** The stored objects of an attachment's tracks, once each. */
export function subtitleObjectsOf(attachment: Pick<Attachment, "subtitles">): string[] {
  return [...new Set(subtitleTracksOf(attachment).map(storedObjectOf))];
}

/** Most sidecar tracks an attachment may have. */
export const MAX_SIDECAR_TRACKS = 20;

/** The tracks of an attachment (none when the column is NULL). */
export function subtitleTracksOf(attachment: Pick<Attachment, "subtitles">): SubtitleTrack[] {
  if (!attachment.subtitles) return [];
  try {
    const tracks = JSON.parse(attachment.subtitles) as unknown;
    return Array.isArray(tracks) ? tracks as SubtitleTrack[] : [];
  } catch {
    return [];
  }
}

/** `tracks` as the column stores them. */
export function subtitlesColumn(tracks: readonly SubtitleTrack[]): string | null {
  return tracks.length === 0 ? null : JSON.stringify(tracks);
}

/**
 * A BCP 47 language tag, canonicalised (`EN-us` → `en-US`); 400 when it is
 * not one. `fallback` is used for an empty value (an embedded track).
 */
export function languageTag(value: string | null | undefined, fallback?: string): string {
  const text = (value ?? "").trim();
  if (text === "" && fallback !== undefined) return fallback;
  if (text.length > 35 || !/^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$/.test(text)) {
    throw new ApiError("invalid_request", 'Field "language": must be a BCP 47 tag such as "en"');
  }
  try {
    return Intl.getCanonicalLocales(text)[0]!;
  } catch {
    throw new ApiError("invalid_request", 'Field "language": must be a BCP 47 tag such as "en"');
  }
}

/** A label without control or bidi-override characters, at most 100 characters. */
export function trackLabel(value: string | null | undefined): string {
  return stripUnsafeCharacters(value ?? "").trim().slice(0, 100);
}

/** The key of a new subtitle file named `name`, dated by the upload. */
export function subtitleKey(attachment: Attachment, name: string): string {
  return storageKey(SUBTITLES_PREFIX, {
    at: new Date(attachment.uploadedAt),
    id: name,
    extension: "vtt",
  });
}

/** Writes `cues` as a WebVTT temp file and stores it under `key`; the temp file is removed. */
async function storeWebVtt(
  deps: Pick<AppDeps, "storage">,
  cues: readonly Cue[],
  key: string,
): Promise<void> {
  await Deno.mkdir(deps.storage.tempDir(), { recursive: true });
  const temp = `${deps.storage.tempDir()}/${newId()}.vtt`;
  try {
    await Deno.writeTextFile(temp, toWebVtt(cues));
    await deps.storage.putFile(temp, key);
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

function requireUploaderOrAdmin(attachment: Attachment, user: User, doing: string): void {
  if (attachment.uploaderId !== user.id && !user.admin) {
    throw new ApiError("forbidden", `Only the uploader or an admin can ${doing}`);
  }
}

/**
 * Adds a sidecar track (parsed and sanitised cues) to an attachment: the
 * file is stored first, then the track recorded and `subtitle.add` logged
 * in one transaction; when that fails (the attachment was deleted, too
 * many tracks) the file is removed, so nothing is left behind.
 */
export async function addSidecar(
  deps: Pick<AppDeps, "db" | "storage" | "clock">,
  attachment: Attachment,
  sidecar: {
    user: User;
    actor: ActivityContext;
    cues: readonly Cue[];
    language: string;
    label: string;
  },
): Promise<SubtitleTrack> {
  requireUploaderOrAdmin(attachment, sidecar.user, "add subtitles");
  const id = newId();
  const track: SubtitleTrack = {
    id,
    language: sidecar.language,
    label: sidecar.label || sidecar.language,
    source: "sidecar",
    key: subtitleKey(attachment, id),
  };
  await storeWebVtt(deps, sidecar.cues, track.key);
  try {
    const now = deps.clock();
    await deps.db.transaction(async (tx) => {
      const [current] = await tx.select().from(attachments).where(
        eq(attachments.id, attachment.id),
      );
      if (!current || current.deletedAt !== null) {
        throw new ApiError("not_found", "Attachment not found");
      }
      const tracks = subtitleTracksOf(current);
      if (tracks.filter((t) => t.source === "sidecar").length >= MAX_SIDECAR_TRACKS) {
        throw new ApiError("conflict", `The attachment has ${MAX_SIDECAR_TRACKS} subtitle files`);
      }
      await tx.update(attachments).set({ subtitles: subtitlesColumn([...tracks, track]) })
        .where(eq(attachments.id, attachment.id));
      await recordActivity(tx, {
        action: "subtitle.add",
        conversationId: attachment.conversationId,
        attachmentId: attachment.id,
        detail: { subtitle_id: id, language: track.language, cues: sidecar.cues.length },
      }, { context: sidecar.actor, at: now });
    });
  } catch (error) {
    await deps.storage.delete(track.key);
    throw error;
  }
  return track;
}

/**
 * Deletes a track (its uploader or an admin; embedded ones too): the row
 * first, with `subtitle.delete` logged, then its file.
 */
export async function deleteSubtitle(
  deps: Pick<AppDeps, "db" | "storage" | "clock">,
  attachment: Attachment,
  options: { user: User; actor: ActivityContext; subtitleId: string },
): Promise<void> {
  requireUploaderOrAdmin(attachment, options.user, "delete subtitles");
  const now = deps.clock();
  const removed = await deps.db.transaction(async (tx) => {
    const [current] = await tx.select().from(attachments).where(eq(attachments.id, attachment.id));
    if (!current || current.deletedAt !== null) return null;
    const tracks = subtitleTracksOf(current);
    const track = tracks.find((t) => t.id === options.subtitleId);
    if (!track) return null;
    const rest = tracks.filter((t) => t !== track);
    await tx.update(attachments).set({ subtitles: subtitlesColumn(rest) })
      .where(eq(attachments.id, attachment.id));
    await recordActivity(tx, {
      action: "subtitle.delete",
      conversationId: attachment.conversationId,
      attachmentId: attachment.id,
      detail: { subtitle_id: track.id, language: track.language, source: track.source },
    }, { context: options.actor, at: now });
    return { ...track, rest };
  });
  if (!removed) throw new ApiError("not_found", "Subtitle track not found");
  // An embedded track's directory holds its sibling tracks too: it goes with the last of them.
  if (removed.source === "sidecar") await deps.storage.delete(removed.key);
  else if (!removed.rest.some((t) => storedObjectOf(t) === storedObjectOf(removed))) {
    await deps.storage.delete(storedObjectOf(removed));
  }
}
