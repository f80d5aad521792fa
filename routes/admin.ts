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
import { listDeliveries, resendDelivery } from "../lib/webhooks/deliveries.ts";
import type { WebhookDelivery } from "../db/schema.ts";
import { ApiError } from "../lib/core/errors.ts";

/** One webhook delivery as the admin API shows it (the payload is what was signed and sent). */
const WebhookDeliverySchema = z.object({
  id: z.string(),
  event: z.string(),
  attachment_id: z.string(),
  status: z.enum(["queued", "running", "delivered", "failed"]),
  attempts: z.number().int(),
  max_attempts: z.number().int(),
  last_error: z.string().nullable(),
  last_status: z.number().int().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  delivered_at: z.string().nullable(),
  payload: z.unknown(),
}).openapi("WebhookDelivery");

function serializeDelivery(d: WebhookDelivery): z.infer<typeof WebhookDeliverySchema> {
  const iso = (t: number | null) => t === null ? null : new Date(t).toISOString();
  return {
    id: d.id,
    event: d.event,
    attachment_id: d.attachmentId,
    status: d.status,
    attempts: d.attempts,
    max_attempts: d.maxAttempts,
    last_error: d.lastError,
    last_status: d.lastStatus,
    next_attempt_at: d.status === "queued" ? iso(d.nextAttemptAt) : null,
    created_at: iso(d.createdAt)!,
    delivered_at: iso(d.deliveredAt),
    payload: JSON.parse(d.payload),
  };
}

const DeliveriesQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: z.string().max(64).optional(),
});

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
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/webhooks/deliveries",
      tags,
      summary: "Recent webhook deliveries, newest first, with status and attempts",
      security: bearer,
      request: { query: DeliveriesQuery },
      responses: {
        200: json(
          z.object({
            items: z.array(WebhookDeliverySchema),
            next_cursor: z.string().nullable(),
          }),
          "Deliveries",
        ),
        ...adminProblems,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const rows = await listDeliveries(c.get("deps").db, { limit: q.limit + 1, before: q.before });
      const items = rows.slice(0, q.limit);
      return c.json({
        items: items.map(serializeDelivery),
        next_cursor: rows.length > q.limit ? items[items.length - 1]!.id : null,
      }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/webhooks/deliveries/{id}/resend",
      tags,
      summary: "Send a webhook delivery again (same payload and webhook-id, attempts reset)",
      security: bearer,
      request: { params: IdParam },
      responses: {
        202: json(WebhookDeliverySchema, "The delivery, queued again"),
        ...adminProblems,
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const row = await resendDelivery(deps.db, c.req.valid("param").id, deps.clock());
      if (row === null) throw new ApiError("not_found", "Webhook delivery not found");
      if (row === "running") {
        throw new ApiError("conflict", "The delivery is being sent right now");
      }
      return c.json(serializeDelivery(row), 202);
    },
  );
