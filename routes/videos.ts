import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Attachment, Message } from "../db/schema.ts";
import type { Config } from "../lib/config/config.ts";
import { AttachmentSchema, IdParam, idSchema, MediaQuery } from "./_schemas.ts";
import { loadMessageForUpload, loadVisibleAttachment } from "../lib/auth/access.ts";
import { recordActivityOnce } from "../lib/chat/activity.ts";
import { contentDisposition } from "../lib/serving/content_disposition.ts";
import type { MediaPurpose } from "../lib/auth/auth.ts";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";
import { fileResponse, type FileResponseOptions } from "../lib/serving/file_response.ts";
import { objectResponse } from "../lib/serving/object_response.ts";
import { type DiskStorage, memberKey } from "../lib/storage/storage.ts";
import { S3Storage } from "../lib/storage/s3_storage.ts";
import { ingestVideo } from "../lib/uploads/ingest.ts";
import { planStoryboard, type StoryboardLayout, storyboardVtt } from "../lib/media/storyboard.ts";
import { candidateFile, POSTER_FILE, renderFrame } from "../lib/media/poster.ts";
import { containerNamed } from "../lib/media/containers.ts";
import { posterCandidatesOf } from "../lib/chat/poster.ts";
import { newId } from "../lib/core/ids.ts";
import { frameCacheOf } from "./_frame_cache.ts";
import { LADDER_FILE } from "../lib/media/hls.ts";
import { receiveMultipartFile } from "../lib/uploads/multipart_upload.ts";
import { remainingQuota } from "../lib/uploads/quota.ts";
import { assertFreeSpace } from "../lib/storage/disk_space.ts";
import { serializeAttachment } from "./_serialize.ts";
import { stripUnsafeCharacters } from "../lib/core/unsafe_text.ts";
import { subtitleTracksOf } from "../lib/chat/subtitles.ts";
import { activityContext, urlContext } from "./_context.ts";
import { requireMediaAccess, requireUser } from "./_auth.ts";
import { admitUpload } from "./_rate_limit.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["videos"];

/**
 * A download is logged once per user and attachment in this time: fetching
 * the same file again soon is the same event for an audit, and a client
 * repeating `Range: bytes=0-0` must not fill the log (or the disk).
 */
export const DOWNLOAD_LOG_WINDOW_MS = 10 * 60 * 1000;

/** One plain byte range, `bytes=N-` or `bytes=N-M`; group 1 is its start. */
const SINGLE_RANGE = /^\s*bytes\s*=\s*(\d+)\s*-\s*\d*\s*$/i;

/**
 * Whether a request to the download route counts as a download, that is may
 * send the file from its first byte: a GET with no Range, or with anything
 * but one plain range starting past byte 0 (`bytes=00-`, a suffix, several
 * ranges, another unit, or any Range with `If-Range` may all be answered
 * with byte 0). Such a request is logged (once a window) and rate-limited. A
 * player's later ranges are the same download: they write nothing, which is
 * why only they may skip the rate limit.
 */
export function startsDownload(request: Request): boolean {
  if (request.method !== "GET") return false;
  const single = SINGLE_RANGE.exec(request.headers.get("range") ?? "");
  return !single || Number(single[1]) === 0 || request.headers.has("if-range");
}

function parseMessageId(value: string): string {
  const parsed = idSchema.safeParse(value);
  if (!parsed.success) throw new ApiError("invalid_request", 'Field "message_id": must be a UUID');
  return parsed.data;
}

const binary = (type: string, description: string) => ({
  description,
  content: { [type]: { schema: z.string().openapi({ format: "binary" }) } },
});

const mediaResponses = {
  200: binary("video/*", "The bytes"),
  206: binary("video/*", "The requested byte range"),
  302: {
    description: "STORAGE=s3 with S3_PRESIGNED_MEDIA=1: `Location` is a presigned URL of the " +
      "bucket, valid for 60 s, that answers with the same Content-Type and Content-Disposition",
  },
  304: { description: "Not modified (If-None-Match)" },
  416: { ...problems[400], description: "Malformed or unsatisfiable Range" },
  401: problems[401],
  404: problems[404],
};

/**
 * The attachment of a media request, from the short memory of recent checks
 * when it holds what the route needs (`needs`), else from the database.
 */
async function loadMediaAttachment(
  c: Context<AppEnv>,
  needs: (attachment: Attachment) => boolean = () => true,
): Promise<Attachment> {
  const { db, recentAccess } = c.get("deps");
  const user = c.get("user");
  const id = c.req.param("id") ?? "";
  const now = Date.now();
  const known = recentAccess.get(id, user, now);
  if (known && needs(known)) return known;
  const attachment = await loadVisibleAttachment(db, id, user);
  recentAccess.set(attachment, user, now);
  return attachment;
}

/** Whether the copy receivers get of an attachment's original exists (or none is made). */
function hasReceiverCopy(config: Config): (attachment: Attachment) => boolean {
  return (attachment) => !config.stripMetadata || attachment.strippedKey !== null;
}

/**
 * The original as the caller may receive it: the copy without metadata
 * (STRIP_METADATA, the default), or the upload itself when no copy is made.
 * Until the copy exists only the uploader, whose bytes they are, gets the
 * upload; anyone else is told to wait.
 */
function receiverCopy(c: Context<AppEnv>, attachment: Attachment): string {
  if (!c.get("deps").config.stripMetadata) return attachment.storageKey;
  if (attachment.strippedKey) return attachment.strippedKey;
  if (attachment.uploaderId === c.get("user").id) return attachment.storageKey;
  throw new ApiError("conflict", "The video is still being prepared; try again in a moment", {
    "retry-after": "2",
  });
}

/** `/api/chat/videos`: upload, download, stream and thumbnail. */
export const videoRoutes = newRouter();

videoRoutes.openAPIRegistry.registerPath({
  method: "post",
  path: "/upload/",
  tags,
  summary: "Upload a video to a message (multipart, streamed)",
  description: "Send `message_id` before `file` (or as `?message_id=`) so a refused upload is " +
    "refused before its bytes are read. The body is streamed to disk; past MAX_UPLOAD_BYTES " +
    "the server answers 413 at once, on a full disk (or under MIN_FREE_BYTES free) 507, and " +
    "after UPLOAD_IDLE_TIMEOUT_MS without a byte 408.",
  security: bearer,
  request: {
    query: z.object({ message_id: idSchema.optional() }),
    body: {
      content: {
        "multipart/form-data": {
          schema: z.object({
            message_id: idSchema,
            file: z.string().openapi({ format: "binary" }),
          }),
        },
      },
    },
  },
  responses: {
    201: json(AttachmentSchema, "The attachment, status `processing`"),
    ...problems,
    409: {
      ...problems[400],
      description:
        "The message was sent by someone else, or has MAX_ATTACHMENTS_PER_MESSAGE videos",
    },
    408: {
      ...problems[400],
      description: "The body sent nothing for UPLOAD_IDLE_TIMEOUT_MS; the connection is closed",
    },
    413: { ...problems[400], description: "The file is over the limit" },
    415: { ...problems[400], description: "Not an accepted container" },
    422: { ...problems[400], description: "Unreadable, no video stream, or absurd values" },
    507: {
      ...problems[400],
      description: "Out of storage space, or less than MIN_FREE_BYTES free (Retry-After); " +
        "nothing is kept",
    },
  },
});

videoRoutes.post("/upload", requireUser(), admitUpload(), async (c) => {
  const deps = c.get("deps");
  const user = c.get("user");
  const uploader = { user, maxAttachments: deps.config.maxAttachmentsPerMessage };
  let message: Message | null = null;
  const queryMessageId = c.req.query("message_id");
  if (queryMessageId) {
    message = await loadMessageForUpload(deps.db, parseMessageId(queryMessageId), uploader);
  }
  const declared = Number(c.req.header("content-length") ?? NaN);
  const quotaLeft = await remainingQuota(deps.db, {
    userId: user.id,
    quotaBytes: deps.config.userQuotaBytes,
    declaredLength: Number.isFinite(declared) ? declared : null,
  });
  await assertFreeSpace(deps.config.dataDir, deps.config.minFreeBytes);
  const received = await receiveMultipartFile(c.req.raw, {
    tempDir: deps.storage.tempDir(),
    maxBytes: Math.min(deps.config.maxUploadBytes, quotaLeft ?? Infinity),
    idleTimeoutMs: deps.config.uploadIdleTimeoutMs,
    beforeFile: async (fields) => {
      if (!message && fields.message_id !== undefined) {
        message = await loadMessageForUpload(deps.db, parseMessageId(fields.message_id), uploader);
      }
    },
  });
  try {
    if (!message) {
      const fieldId = received.fields.message_id;
      if (fieldId === undefined) {
        throw new ApiError("invalid_request", 'Field "message_id" is required');
      }
      message = await loadMessageForUpload(deps.db, parseMessageId(fieldId), uploader);
    }
  } catch (error) {
    await Deno.remove(received.tempPath).catch(() => {});
    throw error;
  }
  const attachment = await ingestVideo(deps, received, { message, actor: activityContext(c) });
  return c.json(await serializeAttachment(attachment, urlContext(c)), 201);
});

/** A GET route for one of an attachment's files, opened by a media token of `purpose`. */
function mediaRoute(
  path: string,
  options: {
    purpose: MediaPurpose;
    summary: string;
    responses?: typeof mediaResponses & Record<number, unknown>;
    query?: typeof MediaQuery;
  },
) {
  const { purpose, summary, responses = mediaResponses, query = MediaQuery } = options;
  return createRoute({
    method: "get",
    path,
    tags,
    summary,
    security: bearer,
    middleware: [requireMediaAccess(purpose)] as const,
    request: { params: IdParam, query },
    responses,
  });
}

/**
 * Hands a stored file to nginx: it sends the bytes (sendfile, Range,
 * validators); this service has already authorized the request and chosen
 * the file (`path`, below the data directory) and its headers.
 */
function accelRedirect(
  prefix: string,
  path: string,
  options: Pick<FileResponseOptions, "contentType" | "cacheControl" | "disposition">,
): Response {
  const headers = new Headers({
    "x-accel-redirect": `${prefix}${path}`,
    "content-type": options.contentType,
    "cache-control": options.cacheControl,
  });
  if (options.disposition) headers.set("content-disposition", options.disposition);
  return new Response(null, { status: 200, headers });
}

/**
 * How long a presigned media URL (`S3_PRESIGNED_MEDIA`) works: long enough
 * for a client to follow the redirect, short enough that a leaked URL soon
 * stops working. A player asks this service again for each new range.
 */
export const PRESIGNED_URL_SECONDS = 60;

/**
 * Serves a stored file with validators, Range and the media security headers,
 * from the data directory or the bucket. Derived files have one key per
 * generation, so the key makes a strong ETag. Behind nginx
 * (`ACCEL_REDIRECT_PREFIX`, disk only) nginx sends the bytes; with
 * `S3_PRESIGNED_MEDIA` (and `presignable`) the bucket does, after a 302.
 */
async function serveStored(
  c: Context<AppEnv>,
  key: string | null,
  options: Omit<FileResponseOptions, "path" | "etag" | "files"> & {
    etag?: string;
    /** The URL may be handed to the client (not an HLS file: its relative URIs would break). */
    presignable?: boolean;
  },
): Promise<Response> {
  if (!key) throw new ApiError("not_found", "File not found");
  const { config, storage, recentAccess } = c.get("deps");
  const { presignable = true, ...headers } = options;
  const etag = headers.etag ?? key.slice(key.lastIndexOf("/") + 1);
  if (storage instanceof S3Storage) {
    if (presignable && config.s3?.presignedMedia) {
      const url = await storage.presign(key, headers, PRESIGNED_URL_SECONDS);
      return new Response(null, {
        status: 302,
        headers: { location: url, "cache-control": "private, no-store" },
      });
    }
    return await objectResponse(c.req.raw, storage, { ...headers, key, etag });
  }
  if (config.accelRedirectPrefix) return accelRedirect(config.accelRedirectPrefix, key, headers);
  return fileResponse(c.req.raw, {
    ...headers,
    path: (storage as DiskStorage).localPath(key),
    etag,
    files: recentAccess.files,
  });
}

videoRoutes
  .openapi(
    mediaRoute("/{id}/download", {
      purpose: "download",
      summary: "The original as an attachment, without its metadata unless `original=1` " +
        "(uploader only) or STRIP_METADATA=0 (Range supported; logged)",
      query: MediaQuery.extend({
        original: z.enum(["1"]).optional().openapi({
          description: "`1`: the exact uploaded bytes, metadata and all (the uploader only; 403 " +
            "for anyone else)",
        }),
      }),
      responses: {
        ...mediaResponses,
        403: { ...problems[404], description: "`original=1` from someone but the uploader" },
        409: { ...problems[404], description: "The copy without metadata is still being made" },
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const wantsOriginal = c.req.query("original") === "1";
      const attachment = await loadMediaAttachment(c, hasReceiverCopy(deps.config));
      if (wantsOriginal && attachment.uploaderId !== c.get("user").id) {
        throw new ApiError("forbidden", "Only the uploader may download the original bytes");
      }
      const key = wantsOriginal ? attachment.storageKey : receiverCopy(c, attachment);
      const response = await serveStored(c, key, {
        contentType: attachment.mimeType,
        etag: key === attachment.storageKey ? attachment.sha256 : undefined,
        disposition: contentDisposition("attachment", attachment.fileName),
        cacheControl: "private, no-cache",
      });
      const range = c.req.header("range");
      // A redirect to a presigned URL is where the download starts: logged the same.
      const sent = response.status < 300 || response.status === 302;
      if (sent && startsDownload(c.req.raw)) {
        await recordActivityOnce(deps.db, {
          action: "video.download",
          conversationId: attachment.conversationId,
          attachmentId: attachment.id,
          detail: {
            status: response.status,
            range: range ? stripUnsafeCharacters(range.slice(0, 100)) : null,
          },
        }, { context: activityContext(c), at: deps.clock(), windowMs: DOWNLOAD_LOG_WINDOW_MS });
      }
      return response;
    },
  )
  .openapi(
    mediaRoute("/{id}/stream", {
      purpose: "stream",
      summary: "The playable video, inline (Range supported)",
    }),
    async (c) => {
      // A row remembered while processing (say, by the thumbnail) predates the
      // playback decision: it would serve the original in place of the rendition.
      const receiverCopyMade = hasReceiverCopy(c.get("deps").config);
      const attachment = await loadMediaAttachment(
        c,
        (a) => a.playback !== null && (a.playbackKey !== null || receiverCopyMade(a)),
      );
      const rendition = attachment.playbackKey;
      const key = rendition ?? receiverCopy(c, attachment);
      return await serveStored(c, key, {
        contentType: rendition ? "video/mp4" : attachment.mimeType,
        etag: key === attachment.storageKey ? attachment.sha256 : undefined,
        // Until the rendition is decided the original stands in; do not let it be cached.
        cacheControl: attachment.playback ? "private, max-age=3600" : "private, no-cache",
      });
    },
  )
  .openapi(
    mediaRoute("/{id}/thumbnail", {
      purpose: "thumbnail",
      summary: "JPEG thumbnail (404 until it has been made); with `size=poster` the large " +
        "poster, with `candidate=N` a candidate frame, with `time=S` the frame at S seconds",
      responses: {
        ...mediaResponses,
        200: binary("image/jpeg", "The image"),
        429: { ...problems[404], description: "`time=`: too many frames rendered (Retry-After)" },
      },
      query: MediaQuery.extend({
        size: z.enum(["thumbnail", "poster"]).optional().openapi({
          description: "`poster`: at most 1280 px on the long side, for the player",
        }),
        candidate: z.string().regex(/^\d{1,2}$/).optional().openapi({
          description: "Index into `poster_candidates`",
        }),
        time: z.string().regex(/^\d{1,6}(\.\d{1,3})?$/).optional().openapi({
          description: "Seconds; rounded down to the storyboard interval (320 px wide)",
        }),
      }),
    }),
    async (c) => {
      // Checked by the query schema (mediaRoute types only `token`).
      const [size, candidate, time] = ["size", "candidate", "time"].map((q) => c.req.query(q));
      if (time !== undefined) return await frameAt(c, Number(time));
      const attachment = await loadMediaAttachment(c, (a) => a.thumbnailKey !== null);
      const key = thumbnailKeyOf(attachment, { size, candidate });
      return await serveStored(c, key, {
        contentType: "image/jpeg",
        // A member of a poster generation: the generation names it (its file name does not).
        etag: key?.startsWith("posters/") ? key.split("/").slice(-2).join("-") : undefined,
        cacheControl: "private, max-age=31536000, immutable",
      });
    },
  )
  .openapi(
    mediaRoute("/{id}/storyboard.jpg", {
      purpose: "storyboard-sprite",
      summary: "Storyboard sprite sheet (JPEG)",
      responses: { ...mediaResponses, 200: binary("image/jpeg", "The sprite sheet") },
    }),
    async (c) => {
      const attachment = await loadMediaAttachment(c, (a) => a.storyboardKey !== null);
      return await serveStored(c, attachment.storyboardKey, {
        contentType: "image/jpeg",
        cacheControl: "private, max-age=31536000, immutable",
      });
    },
  )
  .openapi(
    mediaRoute("/{id}/storyboard.vtt", {
      purpose: "storyboard",
      summary: "WebVTT seek-preview track whose cues point into the sprite by signed URL",
      responses: {
        ...mediaResponses,
        200: { description: "WebVTT", content: { "text/vtt": { schema: z.string() } } },
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const attachment = await loadMediaAttachment(c, (a) => a.storyboardKey !== null);
      if (!attachment.storyboardKey || !attachment.storyboardLayout) {
        throw new ApiError("not_found", "File not found");
      }
      const layout = JSON.parse(attachment.storyboardLayout) as StoryboardLayout;
      // The sprite gets a token of its own purpose (it cannot open this track again),
      // expiring no later than the token this track was opened with: a chain of
      // track → sprite cannot renew itself.
      const token = await deps.auth.signMediaToken(c.get("user"), {
        attachmentId: attachment.id,
        purpose: "storyboard-sprite",
        notAfter: c.get("mediaTokenExpiresAt"),
      });
      const sprite =
        `${deps.config.publicUrl}/api/chat/videos/${attachment.id}/storyboard.jpg?token=${token}`;
      return c.body(storyboardVtt(layout, sprite), 200, {
        "content-type": "text/vtt; charset=utf-8",
        "cache-control": "private, no-store",
      });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/hls/{token}/{file}",
      tags,
      summary: "A file of the adaptive ladder: the HLS master or media playlists, the DASH " +
        "manifest, or a CMAF segment",
      description: "Opened by the signed `hls` token in the path (from `hls_url`), so that the " +
        "playlists' relative URIs resolve without a header. A token opens only its own " +
        "attachment's files, until it expires.",
      middleware: [requireMediaAccess("hls")] as const,
      request: {
        params: IdParam.extend({
          token: z.string().max(4096).openapi({ param: { name: "token", in: "path" } }),
          file: z.string().regex(LADDER_FILE).openapi({ param: { name: "file", in: "path" } }),
        }),
      },
      responses: {
        200: binary("application/vnd.apple.mpegurl", "The playlist, manifest or segment"),
        206: binary("video/mp4", "The requested byte range"),
        304: mediaResponses[304],
        401: problems[401],
        404: problems[404],
      },
    }),
    async (c) => {
      const { file } = c.req.valid("param");
      const attachment = await loadMediaAttachment(c, (a) => a.hlsKey !== null);
      if (!attachment.hlsKey) throw new ApiError("not_found", "This video has no adaptive ladder");
      const generation = attachment.hlsKey.slice(attachment.hlsKey.lastIndexOf("/") + 1);
      const playlist = file.endsWith(".m3u8") || file.endsWith(".mpd");
      const headers = {
        contentType: ladderContentType(file),
        // Segments never change within a generation; playlists name the generation's segments.
        cacheControl: playlist ? "private, no-cache" : "private, max-age=3600",
        etag: `${generation}-${file}`,
        // Never presigned: the playlists' relative URIs would resolve against the bucket.
        presignable: false,
      };
      return await serveStored(c, memberKey(attachment.hlsKey, file), headers);
    },
  );

/** The stored image a thumbnail request asks for; null when there is none (404). */
function thumbnailKeyOf(
  attachment: Attachment,
  query: { size?: string; candidate?: string },
): string | null {
  const { posterKey } = attachment;
  if (query.candidate !== undefined) {
    const index = Number(query.candidate);
    if (!posterKey || index >= posterCandidatesOf(attachment).length) return null;
    return memberKey(posterKey, candidateFile(index));
  }
  // A row made before posters has only its thumbnail: it stands in for the poster.
  if (query.size === "poster" && posterKey) return memberKey(posterKey, POSTER_FILE);
  return attachment.thumbnailKey;
}

/**
 * `?time=`: the frame at a time, rounded down to the storyboard interval (so
 * an attachment has at most 100 such frames), rendered once from the
 * original and kept in the process's frame cache; cache misses count
 * against the caller's allowance (`FRAME_RENDERS_PER_MINUTE`).
 */
async function frameAt(c: Context<AppEnv>, seconds: number): Promise<Response> {
  const deps = c.get("deps");
  const attachment = await loadMediaAttachment(c);
  const { duration, width, height } = attachment;
  if (!duration || duration <= 0 || attachment.status === "failed") {
    throw new ApiError("not_found", "This video has no frames to show");
  }
  const { interval, count } = planStoryboard({ duration, width: width ?? 2, height: height ?? 2 });
  const tile = Math.min(Math.floor(seconds / interval), count - 1);
  const at = Math.round(tile * interval * 1000) / 1000;
  const etag = `${attachment.id}-t${Math.round(at * 1000)}`;
  if (c.req.header("if-none-match")?.includes(`"${etag}"`)) {
    return c.body(null, 304, { etag: `"${etag}"` });
  }
  const { frame, result } = await frameCacheOf(deps).get(`${attachment.storageKey}\n${at}`, {
    who: c.get("user").id,
    now: Date.now(),
    render: () =>
      deps.storage.withLocalCopy(attachment.storageKey, async (path) => {
        const outPath = `${deps.storage.tempDir()}/${newId()}.frame.jpg`;
        await Deno.mkdir(deps.storage.tempDir(), { recursive: true });
        try {
          const source = { path, demuxer: containerNamed(attachment.container).demuxer };
          const made = await renderFrame(deps.media, source, { at, outPath });
          return made ? await Deno.readFile(outPath) : null;
        } finally {
          await Deno.remove(outPath).catch(() => {});
        }
      }),
  }).catch((error) => {
    if (error instanceof ApiError && error.status === 429) deps.metrics.countFrame("limited");
    throw error;
  });
  deps.metrics.countFrame(frame ? result : "none");
  if (!frame) throw new ApiError("not_found", "No frame at that time");
  return c.body(frame as Uint8Array<ArrayBuffer>, 200, {
    "content-type": "image/jpeg",
    "cache-control": "private, max-age=31536000, immutable",
    etag: `"${etag}"`,
  });
}
videoRoutes.openapi(
  createRoute({
    method: "get",
    path: "/{id}/subtitles/{file}",
    tags,
    summary: "A subtitle track as WebVTT (`text/vtt`), by the signed URL of its `subtitles` entry",
    security: bearer,
    middleware: [requireMediaAccess("subtitles")] as const,
    request: {
      params: IdParam.extend({
        file: z.string().regex(/^[0-9a-f-]{36}(?:\.\d{1,3})?\.vtt$/)
          .openapi({ param: { name: "file", in: "path" } }),
      }),
      query: MediaQuery,
    },
    responses: {
      ...mediaResponses,
      200: { description: "WebVTT", content: { "text/vtt": { schema: z.string() } } },
    },
  }),
  async (c) => {
    const id = c.req.valid("param").file.replace(/\.vtt$/, "");
    const has = (a: Attachment) => subtitleTracksOf(a).some((track) => track.id === id);
    const attachment = await loadMediaAttachment(c, has);
    const track = subtitleTracksOf(attachment).find((t) => t.id === id);
    if (!track) throw new ApiError("not_found", "Subtitle track not found");
    return await serveStored(c, track.key, {
      contentType: "text/vtt; charset=utf-8",
      // One key per file: a track's bytes never change.
      cacheControl: "private, max-age=31536000, immutable",
    });
  },
);

/** The media type of a ladder file, by its name. */
function ladderContentType(file: string): string {
  if (file.endsWith(".m3u8")) return "application/vnd.apple.mpegurl";
  if (file.endsWith(".mpd")) return "application/dash+xml";
  return file.startsWith("init-stream") || file.startsWith("chunk-stream")
    ? "video/mp4"
    : "application/octet-stream";
}
