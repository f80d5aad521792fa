import { createRoute, z } from "@hono/zod-openapi";
import { IdParam, idSchema, SubtitleSchema } from "./_schemas.ts";
import { loadVisibleAttachment } from "../lib/auth/access.ts";
import { addSidecar, deleteSubtitle, languageTag, trackLabel } from "../lib/chat/subtitles.ts";
import { ApiError } from "../lib/core/errors.ts";
import { parseSubtitles, SIDECAR_LIMITS } from "../lib/media/subtitle_text.ts";
import { receiveMultipartFile } from "../lib/uploads/multipart_upload.ts";
import { serializeSubtitles } from "./_serialize.ts";
import { activityContext, urlContext } from "./_context.ts";
import { requireUser } from "./_auth.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["subtitles"];

/**
 * Largest sidecar file: a feature film's SubRip file is 50 to 150 KiB, so
 * 1 MiB is room for any real one. The body is streamed to a temp file with
 * a byte counter and refused (413) as soon as it passes this.
 */
export const SIDECAR_MAX_BYTES = 1024 * 1024;

/** The extensions a sidecar file's name may have. */
const SIDECAR_NAME = /\.(srt|vtt)$/i;

/** `/api/chat/attachments/{id}/subtitles`: an attachment's subtitle tracks. */
export const subtitleRoutes = newRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/subtitles",
      tags,
      summary: "An attachment's subtitle tracks, with signed WebVTT URLs",
      security: bearer,
      middleware: [requireUser()] as const,
      request: { params: IdParam },
      responses: { 200: json(z.array(SubtitleSchema), "The tracks"), ...problems },
    }),
    async (c) => {
      const { db } = c.get("deps");
      const attachment = await loadVisibleAttachment(db, c.req.valid("param").id, c.get("user"));
      return c.json(await serializeSubtitles(attachment, urlContext(c)), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{id}/subtitles/{subtitleId}",
      tags,
      summary: "Delete a subtitle track and its file (uploader or admin)",
      security: bearer,
      middleware: [requireUser()] as const,
      request: {
        params: z.object({
          id: idSchema,
          subtitleId: z.string().regex(/^[0-9a-f-]{36}(?:\.\d{1,3})?$/),
        }),
      },
      responses: {
        204: { description: "Deleted" },
        403: { ...problems[404], description: "Not the uploader or an admin" },
        ...problems,
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const user = c.get("user");
      const { id, subtitleId } = c.req.valid("param");
      const attachment = await loadVisibleAttachment(deps.db, id, user);
      await deleteSubtitle(deps, attachment, { user, actor: activityContext(c), subtitleId });
      deps.recentAccess.clear();
      return c.body(null, 204);
    },
  );

// Registered for the documentation only: the handler below streams the body
// itself (a validator would read it whole first).
subtitleRoutes.openAPIRegistry.registerPath({
  method: "post",
  path: "/{id}/subtitles",
  tags,
  summary: "Add a subtitle file (.srt or .vtt) to an attachment (uploader or admin)",
  description: "Multipart: `language` (BCP 47) and `label`, then `file`. The file is parsed " +
    "by our own SubRip/WebVTT reader (not ffmpeg), its cue text sanitised to WebVTT's own " +
    `tags, and stored as WebVTT. At most ${SIDECAR_MAX_BYTES} bytes and ` +
    `${SIDECAR_LIMITS.maxCues} cues.`,
  security: bearer,
  request: {
    params: IdParam,
    body: {
      content: {
        "multipart/form-data": {
          schema: z.object({
            language: z.string(),
            label: z.string().optional(),
            file: z.string().openapi({ format: "binary" }),
          }),
        },
      },
    },
  },
  responses: {
    201: json(SubtitleSchema, "The new track"),
    ...problems,
    403: { ...problems[404], description: "Not the uploader or an admin" },
    409: { ...problems[404], description: "The attachment has 20 subtitle files" },
    413: { ...problems[404], description: `The file is over ${SIDECAR_MAX_BYTES} bytes` },
    415: { ...problems[404], description: "The file name does not end in .srt or .vtt" },
    422: {
      ...problems[404],
      description: "Not SubRip or WebVTT text, no cue, a bad timing, or too many cues",
    },
  },
});

subtitleRoutes.post("/:id/subtitles", requireUser(), async (c) => {
  const deps = c.get("deps");
  const user = c.get("user");
  const id = idSchema.safeParse(c.req.param("id"));
  if (!id.success) throw new ApiError("not_found", "Attachment not found");
  const attachment = await loadVisibleAttachment(deps.db, id.data, user);
  if (attachment.uploaderId !== user.id && !user.admin) {
    throw new ApiError("forbidden", "Only the uploader or an admin can add subtitles");
  }
  const received = await receiveMultipartFile(c.req.raw, {
    tempDir: deps.storage.tempDir(),
    maxBytes: SIDECAR_MAX_BYTES,
    idleTimeoutMs: deps.config.uploadIdleTimeoutMs,
  });
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(received.tempPath);
  } finally {
    await Deno.remove(received.tempPath).catch(() => {});
  }
  if (!SIDECAR_NAME.test(received.fileName)) {
    throw new ApiError("unsupported_media_type", "The file name must end in .srt or .vtt");
  }
  const language = languageTag(received.fields.language);
  const cues = parseSubtitles(bytes, SIDECAR_LIMITS);
  const track = await addSidecar(deps, attachment, {
    user,
    actor: activityContext(c),
    cues,
    language,
    label: trackLabel(received.fields.label),
  });
  deps.recentAccess.clear();
  const [json] = await serializeSubtitles(
    { ...attachment, subtitles: JSON.stringify([track]) },
    urlContext(c),
  );
  return c.json(json!, 201);
});
