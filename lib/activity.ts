import type { Database } from "../db/client.ts";
import { activityLog } from "../db/schema.ts";
import { newId } from "./ids.ts";
import { stripUnsafeCharacters } from "./unsafe_text.ts";

/** The actions written to the activity log. */
export type ActivityAction =
  | "video.upload"
  | "video.download"
  | "attachment.delete"
  | "attachment.reprocess"
  | "conversation.create"
  | "participant.add"
  | "participant.remove";

/** Who did it and from where. */
export interface ActivityContext {
  actorId: string;
  ip: string | null;
  userAgent: string | null;
}

/** One activity row to write. */
export interface ActivityEntry {
  action: ActivityAction;
  conversationId?: string | null;
  attachmentId?: string | null;
  detail?: Record<string, unknown>;
}

type Writer = Pick<Database, "insert">;

/** Writes one activity row, inside the caller's transaction when given one. */
export async function recordActivity(
  db: Writer,
  context: ActivityContext,
  entry: ActivityEntry,
  at: Date,
): Promise<void> {
  await db.insert(activityLog).values({
    id: newId(),
    at: at.getTime(),
    actorId: context.actorId,
    action: entry.action,
    conversationId: entry.conversationId ?? null,
    attachmentId: entry.attachmentId ?? null,
    ip: context.ip?.slice(0, 64) ?? null,
    // A header value may carry C1 controls (obs-text bytes read as Latin-1): an
    // admin reading the log in a terminal must not get escape sequences.
    userAgent: context.userAgent ? stripUnsafeCharacters(context.userAgent.slice(0, 512)) : null,
    detail: entry.detail ? JSON.stringify(entry.detail) : null,
  });
}
