import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppDeps } from "../lib/deps.ts";
import type { AppEnv } from "./_env.ts";
import { ApiError, problemResponse } from "../lib/core/errors.ts";
import { subtitleRoutes } from "./subtitles.ts";
import { MEDIA_SECURITY_HEADERS } from "../lib/serving/media_headers.ts";
import { bearerToken, type MediaPurpose, type MediaTokenScope } from "../lib/auth/auth.ts";
import { authenticateRunner } from "../lib/runners/registry.ts";
import { concurrencyLimit, rateLimit } from "./_rate_limit.ts";
import { TusEndpoint, UPLOADS_PATH } from "./_tus.ts";
import { MAX_JSON_BODY_BYTES } from "./_schemas.ts";
import { requireAdmin, requireUser } from "./_auth.ts";
import { limitRequestBody } from "./_body_limit.ts";
import { newRouter } from "./_router.ts";
import { observeRequests } from "./_observe.ts";
import { adminRoutes } from "./admin.ts";
import { adminBackfillRoutes } from "./admin_backfill.ts";
import { adminStorageRoutes } from "./admin_storage.ts";
import { adminRunnerRoutes } from "./admin_runners.ts";
import { createRunnerRoutes } from "./runners.ts";
import { attachmentRoutes, messageRoutes } from "./attachments.ts";
import { conversationRoutes } from "./conversations.ts";
import { devLoginRoutes } from "./dev_login.ts";
import { docsRoutes } from "./docs.ts";
import { healthRoutes } from "./health.ts";
import { createUiRoutes } from "./ui.ts";
import { createUploadRoutes } from "./uploads.ts";
import { startsDownload, videoRoutes } from "./videos.ts";
import { insufficientStorage, isOutOfSpace } from "../lib/storage/disk_space.ts";

/** The upload routes, multipart and resumable (tus), which stream their bodies to disk. */
const STREAMED_UPLOADS = /^\/api\/chat\/videos\/uploads?(\/[^/]*)?$/;

/**
 * Sidecar subtitle uploads: streamed (lib/uploads/multipart_upload.ts) under
 * their own limit, SIDECAR_MAX_BYTES, rather than the JSON bodies' one.
 */
const SIDECAR_UPLOADS = /^\/api\/chat\/attachments\/[^/]+\/subtitles\/?$/;

/**
 * The routes of registered runners (lib/runners/): authenticated by a
 * runner token an admin can revoke, not counted against the per-address
 * request limit (a ladder is posted one file per request); their output
 * bodies stream to disk under a budget of their own.
 */
const RUNNER_JOBS = /^\/api\/runners\/jobs\//;
const RUNNER_OUTPUTS = /^\/api\/runners\/jobs\/[^/]+\/outputs\/[^/]+$/;

/** The routes that take a signed media token (`requireMediaAccess`), and the purpose of each. */
const MEDIA_TOKEN_ROUTES: [RegExp, MediaPurpose][] = [
  [/^\/api\/chat\/videos\/([^/]+)\/download\/?$/, "download"],
  [/^\/api\/chat\/videos\/([^/]+)\/stream\/?$/, "stream"],
  [/^\/api\/chat\/videos\/([^/]+)\/thumbnail\/?$/, "thumbnail"],
  [/^\/api\/chat\/videos\/([^/]+)\/storyboard\.vtt\/?$/, "storyboard"],
  [/^\/api\/chat\/videos\/([^/]+)\/storyboard\.jpg\/?$/, "storyboard-sprite"],
  [/^\/api\/chat\/videos\/([^/]+)\/subtitles\/[^/]+\.vtt$/, "subtitles"],
  [/^\/api\/chat\/attachments\/([^/]+)\/events\/?$/, "events"],
  // The token is the path segment after `hls/`, so that relative playlist URIs keep it.
  [/^\/api\/chat\/videos\/([^/]+)\/hls\/([^/]+)\/[^/]+$/, "hls"],
];

/** The media routes that send file bytes (a player fetches them many times a second). */
const MEDIA_BYTES: ReadonlySet<MediaPurpose> = new Set([
  "download",
  "stream",
  "thumbnail",
  "storyboard-sprite",
  "hls",
]);

/** The media token a request's route would accept: its attachment and purpose. */
function mediaTokenScope(
  c: Context<AppEnv>,
): (MediaTokenScope & { pathToken?: string }) | null {
  for (const [route, purpose] of MEDIA_TOKEN_ROUTES) {
    const match = route.exec(c.req.path);
    if (match?.[1]) return { attachmentId: match[1], purpose, pathToken: match[2] };
  }
  return null;
}

/**
 * A video player's media byte requests, which come many times a second and
 * are not counted. A download from its first byte may write an activity
 * row, and every request that may write is counted.
 */
function isPlayerRequest(c: Context<AppEnv>): boolean {
  if (c.req.method !== "GET" && c.req.method !== "HEAD") return false;
  const purpose = mediaTokenScope(c)?.purpose;
  if (!purpose || !MEDIA_BYTES.has(purpose)) return false;
  return !(purpose === "download" && startsDownload(c.req.raw));
}

/**
 * Whether a request carries the token of a registered, unrevoked runner: its
 * job requests are not counted (a ladder is posted one file per request,
 * and runners may share an address), while a request with a wrong token is
 * counted against its address like any other.
 */
async function isLiveRunner(c: Context<AppEnv>): Promise<boolean> {
  const { db, clock } = c.get("deps");
  const token = bearerToken(c.req.header("authorization"));
  return await authenticateRunner(db, token, clock()).then(() => true, () => false);
}

/** Options for {@linkcode createApp}. */
export interface CreateAppOptions {
  /** Where unexpected errors are reported (never to the client). */
  onUnexpectedError?: (error: unknown) => void;
}

/**
 * Builds the HTTP app from its dependencies. Nothing is module-level state, so
 * tests build one app per temp directory and database file.
 */
export function createApp(deps: AppDeps, options: CreateAppOptions = {}): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ strict: false });

  // First: the request id, the log line and the metrics see every answer, errors included.
  app.use(
    "*",
    observeRequests({
      metrics: deps.metrics,
      uploadProtocol: (c) =>
        c.req.method === "GET" || c.req.method === "HEAD" ||
          !STREAMED_UPLOADS.test(c.req.path)
          ? null
          : /\/uploads(\/|$)/.test(c.req.path)
          ? "tus"
          : "multipart",
    }),
  );
  app.use("*", async function injectDeps(c, next) {
    c.set("deps", deps);
    await next();
  });
  // A video player fetches media bytes many times a second; those are not counted.
  app.use(
    "/api/*",
    rateLimit({
      perMinute: deps.config.rateLimitPerMinute,
      exempt: async (c) =>
        isPlayerRequest(c) || (RUNNER_JOBS.test(c.req.path) && await isLiveRunner(c)),
      mediaScope: mediaTokenScope,
    }),
  );

  // Request bodies are small JSON documents, bounded before any route reads them; uploads
  // stream theirs to disk under their own limits.
  app.use(
    "*",
    limitRequestBody({
      maxBytes: MAX_JSON_BODY_BYTES,
      exempt: (c) =>
        STREAMED_UPLOADS.test(c.req.path) || RUNNER_OUTPUTS.test(c.req.path) ||
        SIDECAR_UPLOADS.test(c.req.path),
    }),
  );

  const chat = newRouter();
  chat.use("/conversations/*", requireUser());
  // Media security headers on every answer of the media routes, their errors included:
  // the one place they are set.
  const mediaHeaders = Object.entries(MEDIA_SECURITY_HEADERS);
  chat.use("/videos/*", async function mediaSecurityHeaders(c, next) {
    await next();
    for (const [name, value] of mediaHeaders) c.res.headers.set(name, value);
  });
  const uploadSlots = concurrencyLimit({ max: deps.config.maxConcurrentUploads, what: "uploads" });
  chat.use("/videos/upload", uploadSlots);
  chat.use("/videos/upload/", uploadSlots);
  // Attachment and message routes name their own auth: events also take a signed URL.
  chat.route("/conversations", conversationRoutes);
  chat.route("/messages", messageRoutes);
  chat.route("/attachments", attachmentRoutes);
  chat.route("/attachments", subtitleRoutes);
  const tus = new TusEndpoint(deps.resumableUploads, {
    maxUploadBytes: deps.config.maxUploadBytes,
    idleTimeoutMs: deps.config.uploadIdleTimeoutMs,
  });
  chat.route("/videos", createUploadRoutes(tus));
  chat.route("/videos", videoRoutes);

  const admin = newRouter();
  admin.use("*", requireUser(), requireAdmin());
  admin.route("/", adminRoutes);
  admin.route("/", adminStorageRoutes);
  admin.route("/", adminBackfillRoutes);
  admin.route("/", adminRunnerRoutes);

  app.route("/api/chat", chat);
  app.route("/api/admin", admin);
  app.route("/api/runners", createRunnerRoutes());
  app.route("/", healthRoutes);
  app.route("/", docsRoutes);
  // Dev sign-in exists only when DEV_LOGIN=1, which config allows only with the generated secret.
  if (deps.config.devLogin) app.route("/api/dev", devLoginRoutes);
  app.route("/", createUiRoutes(deps.config, { resumableUploadPath: `${UPLOADS_PATH}/` }));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "runnerToken", {
    type: "http",
    scheme: "bearer",
    description: "A runner token, from POST /api/runners/register",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "OffChat Media API",
      version: "0.1.0",
      description: "Video attachments for chat conversations. Errors are " +
        "application/problem+json (RFC 9457) with a stable `code`.",
    },
    servers: [{ url: deps.config.publicUrl }],
  });

  app.notFound(() => problemResponse(new ApiError("not_found", "No such route")));
  app.onError((error) => {
    if (error instanceof ApiError) return problemResponse(error);
    if (isOutOfSpace(error)) return problemResponse(insufficientStorage());
    if (error instanceof HTTPException) {
      const code = error.status === 401
        ? "unauthorized"
        : error.status === 404
        ? "not_found"
        : error.status === 413
        ? "file_too_large"
        : "invalid_request";
      return problemResponse(new ApiError(code, error.message || "Bad request"));
    }
    options.onUnexpectedError?.(error);
    return problemResponse(new ApiError("internal_error", "An unexpected error occurred"));
  });
  return app;
}
