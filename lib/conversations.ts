import { and, asc, desc, eq, inArray, isNull, lt } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import {
  type Attachment,
  attachments,
  type Conversation,
  conversationParticipants,
  conversations,
  type Message,
  messages,
} from "../db/schema.ts";
import { type ActivityContext, recordActivity } from "./activity.ts";
import { ApiError, notFound } from "./errors.ts";
import { newId } from "./ids.ts";

/** A participant row as the serializers take it. */
export interface ParticipantRow {
  userId: string;
  role: string;
  joinedAt: number;
}

/** Participants of several conversations, grouped by conversation id. */
export async function participantsOf(
  db: Database,
  conversationIds: string[],
): Promise<Map<string, ParticipantRow[]>> {
  const grouped = new Map<string, ParticipantRow[]>(conversationIds.map((id) => [id, []]));
  if (conversationIds.length === 0) return grouped;
  const rows = await db.select().from(conversationParticipants)
    .where(inArray(conversationParticipants.conversationId, conversationIds))
    .orderBy(asc(conversationParticipants.joinedAt), asc(conversationParticipants.userId));
  for (const row of rows) grouped.get(row.conversationId)?.push(row);
  return grouped;
}

/** Creates a conversation whose creator is its owner and first participant. */
export async function createConversation(
  db: Database,
  actor: ActivityContext,
  input: { title?: string; participantIds: string[] },
  now: Date,
): Promise<Conversation> {
  const conversation: Conversation = {
    id: newId(),
    title: input.title || null,
    createdBy: actor.actorId,
    createdAt: now.getTime(),
  };
  const others = [...new Set(input.participantIds)].filter((id) => id !== actor.actorId);
  await db.transaction(async (tx) => {
    await tx.insert(conversations).values(conversation);
    await tx.insert(conversationParticipants).values([
      {
        conversationId: conversation.id,
        userId: actor.actorId,
        role: "owner",
        joinedAt: now.getTime(),
      },
      ...others.map((userId) => ({
        conversationId: conversation.id,
        userId,
        role: "member",
        joinedAt: now.getTime(),
      })),
    ]);
    await recordActivity(tx, actor, {
      action: "conversation.create",
      conversationId: conversation.id,
      detail: { participant_ids: others },
    }, now);
  });
  return conversation;
}

/** The conversations a user is in, newest first. */
export async function listConversations(db: Database, userId: string): Promise<Conversation[]> {
  const rows = await db.select({ conversation: conversations }).from(conversations)
    .innerJoin(
      conversationParticipants,
      eq(conversationParticipants.conversationId, conversations.id),
    )
    .where(eq(conversationParticipants.userId, userId))
    .orderBy(desc(conversations.createdAt), desc(conversations.id));
  return rows.map((r) => r.conversation);
}

/** One conversation (the caller has already been checked as a participant). */
export async function getConversation(db: Database, id: string): Promise<Conversation> {
  const [conversation] = await db.select().from(conversations).where(eq(conversations.id, id));
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

/** Adds a participant (only an owner may add an owner); adding one who is already in changes nothing. */
export async function addParticipant(
  db: Database,
  actor: ActivityContext,
  conversationId: string,
  participant: { userId: string; role: string },
  now: Date,
): Promise<void> {
  if (participant.role === "owner") {
    const [me] = await db.select({ role: conversationParticipants.role })
      .from(conversationParticipants)
      .where(and(
        eq(conversationParticipants.conversationId, conversationId),
        eq(conversationParticipants.userId, actor.actorId),
      ));
    if (me?.role !== "owner") throw new ApiError("forbidden", "Only an owner can add an owner");
  }
  await db.transaction(async (tx) => {
    const inserted = await tx.insert(conversationParticipants).values({
      conversationId,
      userId: participant.userId,
      role: participant.role,
      joinedAt: now.getTime(),
    }).onConflictDoNothing().returning({ userId: conversationParticipants.userId });
    if (inserted.length > 0) {
      await recordActivity(tx, actor, {
        action: "participant.add",
        conversationId,
        detail: { user_id: participant.userId, role: participant.role },
      }, now);
    }
  });
}

/**
 * Removes a participant: anyone may leave, only an owner may remove someone
 * else. Their access to the conversation's media ends with it.
 */
export async function removeParticipant(
  db: Database,
  actor: ActivityContext,
  conversationId: string,
  userId: string,
  now: Date,
): Promise<void> {
  const rows = await db.select().from(conversationParticipants)
    .where(eq(conversationParticipants.conversationId, conversationId));
  const me = rows.find((r) => r.userId === actor.actorId);
  if (!me) throw notFound("Conversation");
  if (!rows.some((r) => r.userId === userId)) throw notFound("Participant");
  if (userId !== actor.actorId && me.role !== "owner") {
    throw new ApiError("forbidden", "Only an owner can remove other participants");
  }
  await db.transaction(async (tx) => {
    await tx.delete(conversationParticipants).where(and(
      eq(conversationParticipants.conversationId, conversationId),
      eq(conversationParticipants.userId, userId),
    ));
    await recordActivity(tx, actor, {
      action: "participant.remove",
      conversationId,
      detail: { user_id: userId },
    }, now);
  });
}

/** Posts a message. */
export async function createMessage(
  db: Database,
  conversationId: string,
  senderId: string,
  body: string,
  now: Date,
): Promise<Message> {
  const message: Message = {
    id: newId(),
    conversationId,
    senderId,
    body,
    createdAt: now.getTime(),
  };
  await db.insert(messages).values(message);
  return message;
}

/** A page of messages, oldest first, with the cursor to the older page. */
export async function listMessages(
  db: Database,
  conversationId: string,
  page: { limit: number; before?: string },
): Promise<{ messages: Message[]; nextCursor: string | null }> {
  const rows = await db.select().from(messages)
    .where(and(
      eq(messages.conversationId, conversationId),
      page.before ? lt(messages.id, page.before) : undefined,
    ))
    .orderBy(desc(messages.id))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit).reverse();
  return { messages: pageRows, nextCursor: more ? pageRows[0]!.id : null };
}

/** The live attachments of some messages, grouped by message id, oldest first. */
export async function attachmentsOfMessages(
  db: Database,
  messageIds: string[],
): Promise<Map<string, Attachment[]>> {
  const grouped = new Map<string, Attachment[]>(messageIds.map((id) => [id, []]));
  if (messageIds.length === 0) return grouped;
  const rows = await db.select().from(attachments)
    .where(and(inArray(attachments.messageId, messageIds), isNull(attachments.deletedAt)))
    .orderBy(asc(attachments.uploadedAt), asc(attachments.id));
  for (const row of rows) grouped.get(row.messageId)?.push(row);
  return grouped;
}
