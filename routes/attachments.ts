import { createRoute, z } from "@hono/zod-openapi";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { AttachmentSchema, IdParam, MediaQuery } from "./_schemas.ts";
import { loadVisibleAttachment, loadVisibleMessage } from "../lib/auth/access.ts";
import { deleteAttachment } from "../lib/chat/attachments.ts";
import { choosePoster } from "../lib/chat/poster.ts";
import { frameCacheOf } from "./_frame_cache.ts";
import { attachmentsOfMessages } from "../lib/chat/conversations.ts";
import { serializeAttachment } from "./_serialize.ts";
import { isPlayable, type OutputKind, processingSnapshot } from "../lib/processing/progress.ts";
import { activityContext, urlContext } from "./_context.ts";
import { requireMediaAccess, requireUser } from "./_auth.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["attachments"];

/** The body of `PUT /{id}/poster`: exactly one of the two. */
const PosterChoiceBody = z.union([
  z.object({
    candidate: z.number().int().min(0).max(99).openapi({
      description: "Index into `poster_candidates`",
    }),
  }).strict(),
  z.object({
    time: z.number().min(0).max(86_400 * 7).openapi({
      description: "Seconds into the video (the frame there is taken exactly)",
    }),
  }).strict(),
]).openapi("PosterChoice");

/** `/api/chat/attachments`: attachment metadata, deletion and the poster. */
export const attachmentRoutes = newRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags,
      summary: "Attachment metadata, with signed media URLs",
      security: bearer,
      middleware: [requireUser()] as const,
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
      middleware: [requireUser()] as const,
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
      await deleteAttachment(deps, attachment, { user, actor: activityContext(c) });
      deps.recentAccess.clear();
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{id}/poster",
      tags,
      summary: "Choose the poster (uploader or admin): a candidate, or a time in seconds",
      description: "Makes the poster, the thumbnail and `thumbhash` again from the chosen frame. " +
        "They get new keys, so `thumbnail_url` and `poster_url` answer with new ETags. Logged as " +
        "`attachment.poster`.",
      security: bearer,
      middleware: [requireUser()] as const,
      request: {
        params: IdParam,
        body: { content: { "application/json": { schema: PosterChoiceBody } } },
      },
      responses: {
        200: json(AttachmentSchema, "The attachment with its new poster"),
        ...problems,
        403: { ...problems[404], description: "Not the uploader (nor an admin)" },
        429: {
          ...problems[404],
          description: "Too many frames rendered (shared with the thumbnail's `time=`)",
        },
        409: {
          ...problems[404],
          description: "No thumbnail yet (Retry-After), or another choice won meanwhile",
        },
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const user = c.get("user");
      const attachment = await loadVisibleAttachment(deps.db, c.req.valid("param").id, user);
      // Each choice runs ffmpeg: it spends the same allowance as a `?time=` frame.
      frameCacheOf(deps).spend(user.id, Date.now());
      const updated = await choosePoster(deps, attachment, {
        user,
        actor: activityContext(c),
        choice: c.req.valid("json"),
      });
      // The media routes must not serve the replaced generation from memory.
      deps.recentAccess.clear();
      return c.json(await serializeAttachment(updated, urlContext(c)), 200);
    },
  );

/** How often the events stream looks at the database. */
const EVENTS_POLL_MS = 250;
/** An events stream ends after this long; EventSource reconnects on its own (bounds shutdown too). */
export const EVENTS_MAX_MS = 30_000;
/** The id of the last event of a finished attachment: reconnecting with it gets 204. */
const FINAL_EVENT_ID = "final";

attachmentRoutes.openapi(
  createRoute({
    method: "get",
    path: "/{id}/events",
    tags,
    summary: "Server-Sent Events: `status`, `progress`, `output` and `playable` until ready " +
      "or failed",
    description: "Opens with a snapshot (a `progress`, an `output` per output made so far, a " +
      "`playable` and a `status` event), then sends each change: `output` " +
      '(`{"kind":"thumbnail"|"stripped"|"progressive"|"hls"|"storyboard"}`) as each output ' +
      'lands, `playable` (`{"playable":true}`) when the video can be played, possibly while ' +
      "still processing. It closes after `ready` or `failed` (whose event id is `final`) or after 30 s. " +
      "A reconnect gets a fresh snapshot; one with `Last-Event-ID: final` gets 204, which " +
      "tells EventSource to stop. Authenticate with the signed `events_url` (EventSource " +
      "cannot send headers) or a Bearer token.",
    security: bearer,
    middleware: [requireMediaAccess("events")] as const,
    request: { params: IdParam, query: MediaQuery },
    responses: {
      200: {
        description: "An event stream",
        content: { "text/event-stream": { schema: z.string() } },
      },
      204: { description: "Already reported as finished (`Last-Event-ID: final`)" },
      401: problems[401],
      404: problems[404],
    },
  }),
  async (c) => {
    const { db } = c.get("deps");
    const attachment = await loadVisibleAttachment(db, c.req.valid("param").id, c.get("user"));
    if (c.req.header("last-event-id") === FINAL_EVENT_ID) {
      const snapshot = await processingSnapshot(db, attachment.id);
      if (snapshot?.status !== "processing") return c.body(null, 204);
    }
    const until = Date.now() + EVENTS_MAX_MS;
    const closed = c.get("deps").metrics.openEventStream();
    return streamSSE(c, async (stream) => {
      stream.onAbort(closed);
      try {
        await sendEvents(stream);
      } finally {
        closed();
      }
    });
    async function sendEvents(stream: SSEStreamingApi): Promise<void> {
      let sent: { status: string; percent: number; playable: boolean } | null = null;
      const reported = new Set<OutputKind>();
      const user = c.get("user");
      let sequence = 0;
      while (!stream.aborted && Date.now() < until) {
        const snapshot = await processingSnapshot(db, attachment.id);
        if (!snapshot) {
          await stream.writeSSE({ event: "status", data: JSON.stringify({ status: "deleted" }) });
          return;
        }
        // Progress only moves forward for a client, even when a job is retried.
        const percent = Math.max(snapshot.percent, sent?.percent ?? 0);
        const final = snapshot.status !== "processing";
        if (sent === null || percent !== sent.percent) {
          await stream.writeSSE({
            event: "progress",
            id: String(++sequence),
            data: JSON.stringify({ percent }),
            retry: sent === null ? 2000 : undefined,
          });
        }
        // Each output once, as it lands, and the moment the video becomes playable.
        for (const kind of snapshot.outputs.filter((kind) => !reported.has(kind))) {
          reported.add(kind);
          await stream.writeSSE({
            event: "output",
            id: String(++sequence),
            data: JSON.stringify({ kind }),
          });
        }
        const playable = isPlayable(snapshot.playability, user.id);
        if (sent === null || playable !== sent.playable) {
          await stream.writeSSE({
            event: "playable",
            id: String(++sequence),
            data: JSON.stringify({ playable }),
          });
        }
        if (sent === null || snapshot.status !== sent.status) {
          await stream.writeSSE({
            event: "status",
            id: final ? FINAL_EVENT_ID : String(++sequence),
            data: JSON.stringify({ status: snapshot.status, error: snapshot.error }),
          });
        }
        sent = { status: snapshot.status, percent, playable };
        if (snapshot.status !== "processing") return;
        await stream.sleep(EVENTS_POLL_MS);
      }
    }
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
      middleware: [requireUser()] as const,
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
