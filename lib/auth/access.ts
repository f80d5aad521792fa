import { and, count, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import {
  type Attachment,
  attachments,
  conversationParticipants,
  type Message,
  messages,
} from "../../db/schema.ts";
import type { User } from "./auth.ts";
import { ApiError, notFound } from "../core/errors.ts";

/** Who and where, for {@linkcode isParticipant} and {@linkcode requireParticipant}. */
export interface Membership {
  conversationId: string;
  userId: string;
}

/** True when the user is in the conversation. */
export async function isParticipant(db: Database, membership: Membership): Promise<boolean> {
  const { conversationId, userId } = membership;
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
export async function requireParticipant(db: Database, membership: Membership): Promise<void> {
  if (!(await isParticipant(db, membership))) throw notFound("Conversation");
}

/** A message the user can see: they are in its conversation or an admin (404 otherwise). */
export async function loadVisibleMessage(
  db: Database,
  messageId: string,
  user: User,
): Promise<Message> {
  const [message] = await db.select().from(messages).where(eq(messages.id, messageId));
  if (!message) throw notFound("Message");
  const member = user.admin ||
    await isParticipant(db, { conversationId: message.conversationId, userId: user.id });
  if (!member) throw notFound("Message");
  return message;
}

/**
 * The message a user may attach a video to: visible to them (404), sent by
 * them (409) and with room for one more video (409, see
 * {@linkcode assertRoomForAttachment}).
 */
export async function loadMessageForUpload(
  db: Database,
  messageId: string,
  options: { user: User; maxAttachments: number },
): Promise<Message> {
  const message = await loadVisibleMessage(db, messageId, options.user);
  if (message.senderId !== options.user.id) {
    throw new ApiError("conflict", "Videos can only be attached to your own messages");
  }
  await assertRoomForAttachment(db, message.id, options.maxAttachments);
  return message;
}

/**
 * Throws 409 when a message already carries `maxAttachments` live videos:
 * every page of messages embeds each message's attachments, each with its
 * signed URLs, so a message must not grow without bound. Checked before an
 * upload's body is read, and again in the transaction that inserts the
 * attachment (pass that transaction), so concurrent uploads cannot pass it.
 */
export async function assertRoomForAttachment(
  db: Pick<Database, "select">,
  messageId: string,
  maxAttachments: number,
): Promise<void> {
  const [live] = await db.select({ n: count() }).from(attachments)
    .where(and(eq(attachments.messageId, messageId), isNull(attachments.deletedAt)));
  if ((live?.n ?? 0) >= maxAttachments) {
    throw new ApiError(
      "conflict",
      `A message carries at most ${maxAttachments} videos: send more in another message`,
    );
  }
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
