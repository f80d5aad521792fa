import { and, desc, eq, gte, lt, lte } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Activity, activityLog } from "../../db/schema.ts";

/** Filters for the admin activity view. */
export interface ActivityFilter {
  actorId?: string;
  action?: string;
  conversationId?: string;
  attachmentId?: string;
  since?: Date;
  until?: Date;
  before?: string;
  limit: number;
}

/** Activity rows, newest first, with the cursor to the next (older) page. */
export async function listActivity(
  db: Database,
  filter: ActivityFilter,
): Promise<{ items: Activity[]; nextCursor: string | null }> {
  const rows = await db.select().from(activityLog)
    .where(and(
      filter.actorId ? eq(activityLog.actorId, filter.actorId) : undefined,
      filter.action ? eq(activityLog.action, filter.action) : undefined,
      filter.conversationId ? eq(activityLog.conversationId, filter.conversationId) : undefined,
      filter.attachmentId ? eq(activityLog.attachmentId, filter.attachmentId) : undefined,
      filter.since ? gte(activityLog.at, filter.since.getTime()) : undefined,
      filter.until ? lte(activityLog.at, filter.until.getTime()) : undefined,
      filter.before ? lt(activityLog.id, filter.before) : undefined,
    ))
    .orderBy(desc(activityLog.id))
    .limit(filter.limit + 1);
  const more = rows.length > filter.limit;
  const items = rows.slice(0, filter.limit);
  return { items, nextCursor: more ? items[items.length - 1]!.id : null };
}
