import { and, asc, count, desc, eq, gt, inArray, isNull, lt, lte, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import {
  activityLog,
  type Attachment,
  attachments,
  type Conversation,
  conversationParticipants,
  conversations,
  type Message,
  messages,
} from "../../db/schema.ts";
import { type ActivityContext, recordActivity } from "./activity.ts";
import { ApiError, notFound } from "../core/errors.ts";
import { newId } from "../core/ids.ts";

/** A participant row as the serializers take it. */
export interface ParticipantRow {
  userId: string;
  role: string;
  joinedAt: number;
}

/**
 * How many participants a Conversation JSON embeds: a page of conversations
 * stays small whatever the participant cap; the rest is paged by
 * {@linkcode listParticipants}.
 */
export const EMBEDDED_PARTICIPANTS = 20;

const HOUR_MS = 3_600_000;

/** The limits on conversations and who is in them (the configuration has these fields). */
export interface ConversationLimits {
  /** Participants one conversation may have, its creator included. */
  maxParticipants: number;
  /** Conversations one user may create in any hour; 0 = unlimited. */
  maxConversationsPerHour: number;
  /** Participants one user may add to existing conversations in any hour; 0 = unlimited. */
  maxParticipantAddsPerHour: number;
}

/** When a write happens and the limits it is held to. */
export interface WriteOptions {
  now: Date;
  limits: ConversationLimits;
}

/** Options for {@linkcode createConversation}. */
export interface CreateConversationOptions extends WriteOptions {
  title?: string;
  /** The other participants; the creator is added as the owner whether listed or not. */
  participantIds: string[];
}

/** Options for {@linkcode addParticipant}. */
export interface AddParticipantOptions extends WriteOptions {
  conversationId: string;
  /** Who is added. */
  userId: string;
  role: string;
}

/** Options for {@linkcode removeParticipant}. */
export interface RemoveParticipantOptions {
  conversationId: string;
  /** Who is removed: the actor themselves to leave. */
  userId: string;
  now: Date;
}

/** Options for {@linkcode createMessage}. */
export interface CreateMessageOptions {
  conversationId: string;
  senderId: string;
  body: string;
  now: Date;
}

/** The participants a conversation embeds, and how many it has in all. */
export interface ParticipantPreview {
  participants: ParticipantRow[];
  count: number;
}

/**
 * The first {@linkcode EMBEDDED_PARTICIPANTS} participants (by user id, as
 * {@linkcode listParticipants} pages them) and the participant count of
 * several conversations, grouped by conversation id.
 */
export async function participantPreviews(
  db: Database,
  conversationIds: string[],
): Promise<Map<string, ParticipantPreview>> {
  const grouped = new Map<string, ParticipantPreview>(
    conversationIds.map((id) => [id, { participants: [], count: 0 }]),
  );
  if (conversationIds.length === 0) return grouped;
  // One statement for the whole page (each blocks the event loop while it runs).
  const ranked = db.select({
    conversationId: conversationParticipants.conversationId,
    userId: conversationParticipants.userId,
    role: conversationParticipants.role,
    joinedAt: conversationParticipants.joinedAt,
    rank: sql<number>`row_number() OVER (PARTITION BY ${conversationParticipants.conversationId}
      ORDER BY ${conversationParticipants.userId})`.as("rank"),
    total: sql<number>`count(*) OVER (PARTITION BY ${conversationParticipants.conversationId})`
      .as("total"),
  }).from(conversationParticipants)
    .where(inArray(conversationParticipants.conversationId, conversationIds))
    .as("ranked");
  const rows = await db.select().from(ranked)
    .where(lte(ranked.rank, EMBEDDED_PARTICIPANTS))
    .orderBy(asc(ranked.conversationId), asc(ranked.rank));
  for (const row of rows) {
    const preview = grouped.get(row.conversationId);
    if (!preview) continue;
    preview.participants.push({ userId: row.userId, role: row.role, joinedAt: row.joinedAt });
    preview.count = Number(row.total);
  }
  return grouped;
}

/** A page of a conversation's participants, by user id, with the cursor to the next page. */
export async function listParticipants(
  db: Database,
  conversationId: string,
  page: { limit: number; after?: string },
): Promise<{ participants: ParticipantRow[]; nextCursor: string | null }> {
  const rows = await db.select({
    userId: conversationParticipants.userId,
    role: conversationParticipants.role,
    joinedAt: conversationParticipants.joinedAt,
  }).from(conversationParticipants)
    .where(and(
      eq(conversationParticipants.conversationId, conversationId),
      page.after === undefined ? undefined : gt(conversationParticipants.userId, page.after),
    ))
    .orderBy(asc(conversationParticipants.userId))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const pageRows = rows.slice(0, page.limit);
  return { participants: pageRows, nextCursor: more ? pageRows.at(-1)!.userId : null };
}

/**
 * A 429 for an hourly limit: `Retry-After` is when `oldestCounted`, the
 * oldest event that keeps the user at the limit, leaves the hour.
 */
function overHourlyLimit(
  message: string,
  times: { oldestCounted: number; now: Date },
): ApiError {
  const { oldestCounted, now } = times;
  const seconds = Math.max(1, Math.ceil((oldestCounted + HOUR_MS - now.getTime()) / 1000));
  return new ApiError("too_many_requests", `${message}; try again in ${seconds} seconds`, {
    "retry-after": String(seconds),
  });
}

/**
 * Creates a conversation whose creator is its owner and first participant.
 * At most `maxParticipants` participants (400), and at most
 * `maxConversationsPerHour` creations by one user in any hour (429), counted
 * in the database inside the insert's write transaction, so concurrent
 * requests and other processes cannot pass it.
 */
export async function createConversation(
  db: Database,
  actor: ActivityContext,
  options: CreateConversationOptions,
): Promise<Conversation> {
  const { now, limits } = options;
  const conversation: Conversation = {
    id: newId(),
    title: options.title || null,
    createdBy: actor.actorId,
    createdAt: now.getTime(),
  };
  const others = [...new Set(options.participantIds)].filter((id) => id !== actor.actorId);
  if (others.length + 1 > limits.maxParticipants) {
    throw new ApiError(
      "invalid_request",
      `Field "participant_ids": a conversation has at most ${limits.maxParticipants} ` +
        `participants, its creator included; ${others.length + 1} were asked for`,
    );
  }
  await db.transaction(async (tx) => {
    const perHour = limits.maxConversationsPerHour;
    if (perHour > 0) {
      // The perHour-th newest creation in the hour: when it leaves the hour, one more fits.
      const [limiting] = await tx.select({ at: conversations.createdAt }).from(conversations)
        .where(and(
          eq(conversations.createdBy, actor.actorId),
          gt(conversations.createdAt, now.getTime() - HOUR_MS),
        ))
        .orderBy(desc(conversations.createdAt))
        .limit(1)
        .offset(perHour - 1);
      if (limiting) {
        throw overHourlyLimit(`At most ${perHour} conversations may be created an hour`, {
          oldestCounted: limiting.at,
          now,
        });
      }
    }
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
    await recordActivity(tx, {
      action: "conversation.create",
      conversationId: conversation.id,
      detail: { participant_ids: others },
    }, { context: actor, at: now });
  });
  return conversation;
}

/** A page of the conversations a user is in, newest first, with the cursor to the older page. */
export async function listConversations(
  db: Database,
  userId: string,
  page: { limit: number; before?: string },
): Promise<{ conversations: Conversation[]; nextCursor: string | null }> {
  // Ids are UUIDv7, so newest first is by id: a cursor that is unique and never
  // moves, read as a range of the (user_id, conversation_id) index.
  const rows = await db.select({ conversation: conversations }).from(conversationParticipants)
    .innerJoin(conversations, eq(conversations.id, conversationParticipants.conversationId))
    .where(and(
      eq(conversationParticipants.userId, userId),
      page.before === undefined
        ? undefined
        : lt(conversationParticipants.conversationId, page.before),
    ))
    .orderBy(desc(conversationParticipants.conversationId))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const list = rows.slice(0, page.limit).map((r) => r.conversation);
  return { conversations: list, nextCursor: more ? list.at(-1)!.id : null };
}

/** One conversation (the caller has already been checked as a participant). */
export async function getConversation(db: Database, id: string): Promise<Conversation> {
  const [conversation] = await db.select().from(conversations).where(eq(conversations.id, id));
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

/**
 * Adds a participant. Any participant may add a member; only an owner may
 * add an owner (403). Adding one who is already in changes nothing. The
 * conversation holds at most `maxParticipants` (409), and one user adds at
 * most `maxParticipantAddsPerHour` participants in any hour (429, counted
 * from the `participant.add` rows of the activity log). Everything is
 * checked in the insert's write transaction, so concurrent adds, in this
 * process or another, cannot pass a limit.
 */
export async function addParticipant(
  db: Database,
  actor: ActivityContext,
  options: AddParticipantOptions,
): Promise<void> {
  const { conversationId, userId, role, now, limits } = options;
  await db.transaction(async (tx) => {
    const rows = await tx.select({
      userId: conversationParticipants.userId,
      role: conversationParticipants.role,
    }).from(conversationParticipants)
      .where(and(
        eq(conversationParticipants.conversationId, conversationId),
        inArray(conversationParticipants.userId, [actor.actorId, userId]),
      ));
    const me = rows.find((r) => r.userId === actor.actorId);
    if (!me) throw notFound("Conversation");
    if (role === "owner" && me.role !== "owner") {
      throw new ApiError("forbidden", "Only an owner can add an owner");
    }
    if (rows.some((r) => r.userId === userId)) return;
    const perHour = limits.maxParticipantAddsPerHour;
    if (perHour > 0) {
      const [limiting] = await tx.select({ at: activityLog.at }).from(activityLog)
        .where(and(
          eq(activityLog.actorId, actor.actorId),
          eq(activityLog.action, "participant.add"),
          gt(activityLog.at, now.getTime() - HOUR_MS),
        ))
        .orderBy(desc(activityLog.at))
        .limit(1)
        .offset(perHour - 1);
      if (limiting) {
        throw overHourlyLimit(`At most ${perHour} participants may be added an hour`, {
          oldestCounted: limiting.at,
          now,
        });
      }
    }
    const [size] = await tx.select({ n: count() }).from(conversationParticipants)
      .where(eq(conversationParticipants.conversationId, conversationId));
    if ((size?.n ?? 0) >= limits.maxParticipants) {
      throw new ApiError(
        "conflict",
        `Conversation is full: it has the most participants allowed, ${limits.maxParticipants}`,
      );
    }
    await tx.insert(conversationParticipants).values({
      conversationId,
      userId,
      role,
      joinedAt: now.getTime(),
    });
    await recordActivity(tx, {
      action: "participant.add",
      conversationId,
      detail: { user_id: userId, role },
    }, { context: actor, at: now });
  });
}

/**
 * Removes a participant: anyone may leave, only an owner may remove someone
 * else. Their access to the conversation's media ends with it.
 */
export async function removeParticipant(
  db: Database,
  actor: ActivityContext,
  options: RemoveParticipantOptions,
): Promise<void> {
  const { conversationId, userId, now } = options;
  const rows = await db.select().from(conversationParticipants)
    .where(and(
      eq(conversationParticipants.conversationId, conversationId),
      inArray(conversationParticipants.userId, [actor.actorId, userId]),
    ));
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
    await recordActivity(tx, {
      action: "participant.remove",
      conversationId,
      detail: { user_id: userId },
    }, { context: actor, at: now });
  });
}

/** Posts a message. */
export async function createMessage(
  db: Database,
  options: CreateMessageOptions,
): Promise<Message> {
  const message: Message = {
    id: newId(),
    conversationId: options.conversationId,
    senderId: options.senderId,
    body: options.body,
    createdAt: options.now.getTime(),
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
