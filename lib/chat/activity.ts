import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Activity, activityLog } from "../../db/schema.ts";
import { newId } from "../core/ids.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";

/** The actions written to the activity log. */
export type ActivityAction =
  | "video.upload"
  | "video.download"
  | "attachment.delete"
  | "attachment.reprocess"
  | "attachment.poster"
  | "admin.backfill"
  | "conversation.create"
  | "participant.add"
  | "participant.remove"
  | "subtitle.add"
  | "subtitle.delete";

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

/** Who did it, from where and when: options for {@linkcode recordActivity}. */
export interface RecordActivityOptions {
  /** Who did it and from where. */
  context: ActivityContext;
  /** When it happened. */
  at: Date;
}

/** Writes one activity row, inside the caller's transaction when given one. */
export async function recordActivity(
  db: Writer,
  entry: ActivityEntry,
  options: RecordActivityOptions,
): Promise<void> {
  await db.insert(activityLog).values(activityRow(entry, options));
}

/** Options for {@linkcode recordActivityOnce}. */
export interface RecordActivityOnceOptions extends RecordActivityOptions {
  /** No second row for the same actor, action and attachment within this many milliseconds. */
  windowMs: number;
}

/**
 * Writes one activity row unless the same actor already has a row of the
 * same action on the same attachment less than `windowMs` old; returns
 * whether it wrote. The check and the insert are one statement, so
 * concurrent requests, in this process or in others sharing the database,
 * write one row between them (SQLite runs one write statement at a time).
 */
export async function recordActivityOnce(
  db: Pick<Database, "run">,
  entry: ActivityEntry & { attachmentId: string },
  options: RecordActivityOnceOptions,
): Promise<boolean> {
  const row = activityRow(entry, options);
  const since = row.at - options.windowMs;
  // drizzle's builder cannot say INSERT … SELECT without a FROM; the values
  // are still bound as parameters.
  const result = await db.run(sql`
    INSERT INTO activity_log
      (id, at, actor_id, action, conversation_id, attachment_id, ip, user_agent, detail)
    SELECT ${row.id}, ${row.at}, ${row.actorId}, ${row.action}, ${row.conversationId},
      ${row.attachmentId}, ${row.ip}, ${row.userAgent}, ${row.detail}
    WHERE NOT EXISTS (
      SELECT 1 FROM activity_log
      WHERE attachment_id = ${row.attachmentId} AND actor_id = ${row.actorId}
        AND action = ${row.action} AND at > ${since}
    )`);
  return result.rowsAffected > 0;
}

function activityRow(entry: ActivityEntry, options: RecordActivityOptions): Activity {
  const { context, at } = options;
  return {
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
  };
}
