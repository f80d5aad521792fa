import { createRoute, z } from "@hono/zod-openapi";
import { AttachmentSchema, IdParam } from "../lib/api_schemas.ts";
import { loadVisibleAttachment, loadVisibleMessage } from "../lib/access.ts";
import { deleteAttachment } from "../lib/attachments.ts";
import { attachmentsOfMessages } from "../lib/conversations.ts";
import { serializeAttachment } from "../lib/serialize.ts";
import { activityContext, urlContext } from "./_context.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["attachments"];

/** `/api/chat/attachments`: attachment metadata and deletion. */
export const attachmentRoutes = newRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags,
      summary: "Attachment metadata, with signed media URLs",
      security: bearer,
      request: { params: IdParam },
      responses: { 200: json(AttachmentSchema, "The attachment"), ...problems },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const attachment = await loadVisibleAttachment(db, c.req.valid("param").id, c.get("user"));
      return c.json(await serializeAttachment(attachment, urlContext(c)), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      tags,
      summary: "Delete an attachment and its files (uploader or admin)",
      security: bearer,
      request: { params: IdParam },
      responses: {
        204: { description: "Deleted" },
        403: { ...problems[404], description: "Not the uploader" },
        ...problems,
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const user = c.get("user");
      const attachment = await loadVisibleAttachment(deps.db, c.req.valid("param").id, user);
      await deleteAttachment(deps, attachment, user, activityContext(c));
      return c.body(null, 204);
    },
  );

/** `/api/chat/messages`: a message's attachments. */
export const messageRoutes = newRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/attachments",
      tags,
      summary: "The attachments of a message",
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ attachments: z.array(AttachmentSchema) }), "Attachments"),
        ...problems,
      },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const message = await loadVisibleMessage(db, c.req.valid("param").id, c.get("user"));
      const list = (await attachmentsOfMessages(db, [message.id])).get(message.id) ?? [];
      const urls = urlContext(c);
      return c.json({
        attachments: await Promise.all(list.map((a) => serializeAttachment(a, urls))),
      }, 200);
    },
  );
