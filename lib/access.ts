import { and, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import {
  type Attachment,
  attachments,
  conversationParticipants,
  type Message,
  messages,
} from "../db/schema.ts";
import type { User } from "./auth.ts";
import { ApiError, notFound } from "./errors.ts";

/** True when the user is in the conversation. */
export async function isParticipant(
  db: Database,
  conversationId: string,
  userId: string,
): Promise<boolean> {
  const rows = await db.select({ userId: conversationParticipants.userId })
    .from(conversationParticipants)
    .where(and(
      eq(conversationParticipants.conversationId, conversationId),
      eq(conversationParticipants.userId, userId),
    ))
    .limit(1);
  return rows.length > 0;
}

/** Throws the same 404 for a missing conversation and one the user is not in. */
export async function requireParticipant(
  db: Database,
  conversationId: string,
  userId: string,
): Promise<void> {
  if (!(await isParticipant(db, conversationId, userId))) throw notFound("Conversation");
}

/** A message the user can see: they are in its conversation or an admin (404 otherwise). */
export async function loadVisibleMessage(
  db: Database,
  messageId: string,
  user: User,
): Promise<Message> {
  const [message] = await db.select().from(messages).where(eq(messages.id, messageId));
  if (!message || !(user.admin || await isParticipant(db, message.conversationId, user.id))) {
    throw notFound("Message");
  }
  return message;
}

/**
 * The message a user may attach a video to: visible to them (404) and sent
 * by them (409).
 */
export async function loadMessageForUpload(
  db: Database,
  messageId: string,
  user: User,
): Promise<Message> {
  const message = await loadVisibleMessage(db, messageId, user);
  if (message.senderId !== user.id) {
    throw new ApiError("conflict", "Videos can only be attached to your own messages");
  }
  return message;
}

/**
 * An attachment the user may see: not deleted, and the user is in its
 * conversation or is an admin. Anything else is the same 404.
 */
export async function loadVisibleAttachment(
  db: Database,
  attachmentId: string,
  user: User,
): Promise<Attachment> {
  // One query: media range requests come often, and each statement blocks the event loop.
  // Written out with an alias: drizzle renders a column inside a `sql` subquery
  // without its table, and an unqualified `conversation_id = conversation_id`
  // compared the participants table with itself, so a participant of any
  // conversation could see every attachment.
  const [row] = await db.select({
    attachment: attachments,
    member: sql<number>`EXISTS (SELECT 1 FROM conversation_participants AS cp
      WHERE cp.conversation_id = "attachments"."conversation_id" AND cp.user_id = ${user.id})`,
  }).from(attachments)
    .where(and(eq(attachments.id, attachmentId), isNull(attachments.deletedAt)));
  if (!row || !(user.admin || Number(row.member) === 1)) throw notFound("Attachment");
  return row.attachment;
}
