import { createRoute, z } from "@hono/zod-openapi";
import {
  ActivityQuery,
  ActivitySchema,
  AdminAttachmentsQuery,
  AttachmentSchema,
  IdParam,
} from "./_schemas.ts";
import { loadVisibleAttachment } from "../lib/auth/access.ts";
import { listActivity } from "../lib/chat/activity_query.ts";
import { listAttachmentsByStatus, reprocessAttachment } from "../lib/chat/attachments.ts";
import { serializeActivity, serializeAttachment } from "./_serialize.ts";
import { activityContext, urlContext } from "./_context.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["admin"];
const adminProblems = {
  ...problems,
  403: { ...problems[401], description: "The caller is not an admin" },
};

/** `/api/admin`: the activity log and attachments by status. */
export const adminRoutes = newRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/activity",
      tags,
      summary: "The activity log, newest first, filtered and paged",
      security: bearer,
      request: { query: ActivityQuery },
      responses: {
        200: json(
          z.object({ items: z.array(ActivitySchema), next_cursor: z.string().nullable() }),
          "Activity",
        ),
        ...adminProblems,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await listActivity(c.get("deps").db, {
        actorId: q.actor_id,
        action: q.action,
        conversationId: q.conversation_id,
        attachmentId: q.attachment_id,
        since: q.since ? new Date(q.since) : undefined,
        until: q.until ? new Date(q.until) : undefined,
        before: q.before,
        limit: q.limit,
      });
      return c.json(
        { items: page.items.map(serializeActivity), next_cursor: page.nextCursor },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/attachments",
      tags,
      summary: "Attachments by status (e.g. failed), newest first",
      security: bearer,
      request: { query: AdminAttachmentsQuery },
      responses: {
        200: json(
          z.object({ items: z.array(AttachmentSchema), next_cursor: z.string().nullable() }),
          "Attachments",
        ),
        ...adminProblems,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const rows = await listAttachmentsByStatus(c.get("deps").db, {
        status: q.status,
        limit: q.limit + 1,
        before: q.before,
      });
      const items = rows.slice(0, q.limit);
      const urls = urlContext(c);
      return c.json({
        items: await Promise.all(items.map((a) => serializeAttachment(a, urls))),
        next_cursor: rows.length > q.limit ? items[items.length - 1]!.id : null,
      }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/attachments/{id}/reprocess",
      tags,
      summary: "Queue an attachment's processing again (failed or stuck ones)",
      security: bearer,
      request: { params: IdParam },
      responses: {
        202: json(AttachmentSchema, "The attachment, back to processing"),
        ...adminProblems,
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const attachment = await loadVisibleAttachment(
        deps.db,
        c.req.valid("param").id,
        c.get("user"),
      );
      const updated = await reprocessAttachment(deps, attachment, activityContext(c));
      return c.json(await serializeAttachment(updated, urlContext(c)), 202);
    },
  );
