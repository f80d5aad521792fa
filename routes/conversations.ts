import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  AddParticipantBody,
  type ConversationJson,
  ConversationPageQuery,
  ConversationSchema,
  CreateConversationBody,
  CreateMessageBody,
  IdParam,
  idSchema,
  MessageSchema,
  PageQuery,
  ParticipantPageQuery,
  ParticipantParam,
  ParticipantSchema,
} from "./_schemas.ts";
import { requireParticipant } from "../lib/auth/access.ts";
import {
  addParticipant,
  attachmentsOfMessages,
  createConversation,
  createMessage,
  getConversation,
  listConversations,
  listMessages,
  listParticipants,
  participantPreviews,
  removeParticipant,
} from "../lib/chat/conversations.ts";
import type { Database } from "../db/client.ts";
import {
  serializeAttachment,
  serializeConversation,
  serializeMessage,
  serializeParticipant,
} from "./_serialize.ts";
import type { AppEnv } from "./_env.ts";
import { activityContext, urlContext } from "./_context.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["conversations"];

/**
 * The participant check of a route that takes a body, made before the body is
 * read so that an outsider's body is never parsed. A malformed id is left to
 * the parameter validation (400), which also runs before the body.
 */
const participantsOnly: MiddlewareHandler<AppEnv> = async function participantsOnly(c, next) {
  const id = idSchema.safeParse(c.req.param("id"));
  if (id.success) {
    await requireParticipant(c.get("deps").db, {
      conversationId: id.data,
      userId: c.get("user").id,
    });
  }
  await next();
};

async function conversationJson(db: Database, id: string): Promise<ConversationJson> {
  const conversation = await getConversation(db, id);
  const previews = await participantPreviews(db, [id]);
  return serializeConversation(conversation, previews.get(id)!);
}

const tooMany = { ...problems[400], description: "Over an hourly limit (Retry-After)" };

/** `/api/chat/conversations`: conversations, participants and messages. */
export const conversationRoutes = newRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/",
      tags,
      summary: "Create a conversation; the creator is its owner",
      security: bearer,
      request: { body: { content: { "application/json": { schema: CreateConversationBody } } } },
      responses: {
        201: json(ConversationSchema, "The new conversation"),
        ...problems,
        429: tooMany,
      },
    }),
    async (c) => {
      const { db, clock, config } = c.get("deps");
      const body = c.req.valid("json");
      const conversation = await createConversation(db, activityContext(c), {
        title: body.title,
        participantIds: body.participant_ids,
        now: clock(),
        limits: config,
      });
      return c.json(await conversationJson(db, conversation.id), 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/",
      tags,
      summary: "The caller's conversations, newest first; page back with `before`",
      security: bearer,
      request: { query: ConversationPageQuery },
      responses: {
        200: json(
          z.object({
            conversations: z.array(ConversationSchema),
            next_cursor: z.string().nullable(),
          }),
          "A page of conversations",
        ),
        400: problems[400],
        401: problems[401],
      },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const page = await listConversations(db, c.get("user").id, c.req.valid("query"));
      const previews = await participantPreviews(db, page.conversations.map((x) => x.id));
      return c.json({
        conversations: page.conversations.map((x) => serializeConversation(x, previews.get(x.id)!)),
        next_cursor: page.nextCursor,
      }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags,
      summary: "One conversation with its participants",
      security: bearer,
      request: { params: IdParam },
      responses: { 200: json(ConversationSchema, "The conversation"), ...problems },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const { id } = c.req.valid("param");
      await requireParticipant(db, { conversationId: id, userId: c.get("user").id });
      return c.json(await conversationJson(db, id), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/participants",
      tags,
      summary: "The participants, by user id; page on with `after`",
      security: bearer,
      request: { params: IdParam, query: ParticipantPageQuery },
      responses: {
        200: json(
          z.object({
            participants: z.array(ParticipantSchema),
            next_cursor: z.string().nullable(),
          }),
          "A page of participants",
        ),
        ...problems,
      },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const { id } = c.req.valid("param");
      await requireParticipant(db, { conversationId: id, userId: c.get("user").id });
      const page = await listParticipants(db, id, c.req.valid("query"));
      return c.json({
        participants: page.participants.map(serializeParticipant),
        next_cursor: page.nextCursor,
      }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/{id}/participants",
      tags,
      summary: "Add a participant (any participant may add a member, an owner an owner)",
      security: bearer,
      middleware: [participantsOnly],
      request: {
        params: IdParam,
        body: { content: { "application/json": { schema: AddParticipantBody } } },
      },
      responses: {
        201: json(ConversationSchema, "The conversation"),
        ...problems,
        403: { ...problems[400], description: "Only an owner may add an owner" },
        409: { ...problems[400], description: "The conversation is full (MAX_PARTICIPANTS)" },
        429: tooMany,
      },
    }),
    async (c) => {
      const { db, clock, config } = c.get("deps");
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      // addParticipant checks that the caller is in the conversation (404) in its transaction.
      await addParticipant(db, activityContext(c), {
        conversationId: id,
        userId: body.user_id,
        role: body.role,
        now: clock(),
        limits: config,
      });
      return c.json(await conversationJson(db, id), 201);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{id}/participants/{user_id}",
      tags,
      summary: "Remove a participant (yourself, or anyone if you are an owner)",
      security: bearer,
      request: { params: ParticipantParam },
      responses: {
        204: { description: "Removed" },
        403: { ...problems[404], description: "Only an owner may remove others" },
        ...problems,
      },
    }),
    async (c) => {
      const { db, clock } = c.get("deps");
      const { id, user_id } = c.req.valid("param");
      await removeParticipant(db, activityContext(c), {
        conversationId: id,
        userId: user_id,
        now: clock(),
      });
      c.get("deps").recentAccess.clear();
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/{id}/messages",
      tags: ["messages"],
      summary: "Post a message",
      security: bearer,
      middleware: [participantsOnly],
      request: {
        params: IdParam,
        body: { content: { "application/json": { schema: CreateMessageBody } } },
      },
      responses: { 201: json(MessageSchema, "The new message"), ...problems },
    }),
    async (c) => {
      const { db, clock } = c.get("deps");
      const { id } = c.req.valid("param");
      const user = c.get("user");
      await requireParticipant(db, { conversationId: id, userId: user.id });
      const message = await createMessage(db, {
        conversationId: id,
        senderId: user.id,
        body: c.req.valid("json").body,
        now: clock(),
      });
      return c.json(serializeMessage(message, []), 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/messages",
      tags: ["messages"],
      summary: "Messages with their attachments, oldest first; page back with `before`",
      security: bearer,
      request: { params: IdParam, query: PageQuery },
      responses: {
        200: json(
          z.object({ messages: z.array(MessageSchema), next_cursor: z.string().nullable() }),
          "A page of messages",
        ),
        ...problems,
      },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const { id } = c.req.valid("param");
      await requireParticipant(db, { conversationId: id, userId: c.get("user").id });
      const page = await listMessages(db, id, c.req.valid("query"));
      const byMessage = await attachmentsOfMessages(db, page.messages.map((m) => m.id));
      const urls = urlContext(c);
      const list = await Promise.all(page.messages.map(async (m) =>
        serializeMessage(
          m,
          await Promise.all((byMessage.get(m.id) ?? []).map((a) => serializeAttachment(a, urls))),
        )
      ));
      return c.json({ messages: list, next_cursor: page.nextCursor }, 200);
    },
  );
