import { and, count, eq, gt, isNull, lte, sql } from "drizzle-orm";
import { FileStore } from "@tus/file-store";
import { Metadata, Server, type Upload as TusUpload } from "@tus/server";
import { type Message, type Upload, uploads } from "../../db/schema.ts";
import { loadMessageForUpload } from "../auth/access.ts";
import type { ActivityContext } from "../chat/activity.ts";
import type { User } from "../auth/auth.ts";
import type { AppDeps } from "../deps.ts";
import { ApiError } from "../core/errors.ts";
import { sanitizeFileName } from "../core/file_name.ts";
import { sha256File } from "../core/hash.ts";
import { idSchema } from "../api_schemas.ts";
import { newId } from "../core/ids.ts";
import { ingestVideo } from "./ingest.ts";
import { remainingQuota } from "./quota.ts";
import { serializeAttachment, type UrlContext } from "../serialize.ts";

/** On the answers about a completed upload: the id of the attachment it made. */
export const ATTACHMENT_ID_HEADER = "OffChat-Attachment-Id";

/** Where the tus endpoint is mounted; upload URLs are `<path>/<id>`. */
export const UPLOADS_PATH = "/api/chat/videos/uploads";

/** Who sends a tus request, as the route has authenticated them. */
export interface UploadCaller {
  user: User;
  actor: ActivityContext;
  urls: UrlContext;
  /** The upload the request names in its path (`/uploads/:id`); absent on creation. */
  uploadId?: string;
}

/** What one request carries between the route and the tus server's hooks. */
interface Call extends UploadCaller {
  /**
   * The upload this request may act on: the one being created (POST), or the
   * caller's own upload whose ownership has been checked (HEAD, PATCH, DELETE).
   * The library is given this id and no other.
   */
  id?: string;
  /** Why the last byte did not make an attachment; the route answers with it. */
  failure?: unknown;
  /** The attachment the completed upload made. */
  attachmentId?: string;
}

type Deps = Pick<AppDeps, "config" | "db" | "storage" | "media" | "clock" | "jobs">;

function parseLength(header: string | null): number | null {
  if (header === null || !/^\d{1,16}$/.test(header)) return null;
  return Number(header);
}

function notFound(): ApiError {
  return new ApiError("not_found", "Upload not found");
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/**
 * Resumable uploads over tus 1.0, served by `@tus/server` with
 * `@tus/file-store` under `DATA_DIR/tus/`. This class adds what the protocol
 * leaves to the application: every request is authenticated and checked
 * before the library reads a byte (the size limit, the message, the
 * per-user cap, the owner of the upload); a row in `uploads` records who
 * owns an upload and when it expires; the last byte hands the file to the
 * same ingest as a multipart upload, and the answer carries the Attachment
 * JSON or the same problem+json.
 */
export class ResumableUploads {
  readonly directory: string;
  readonly #deps: Deps;
  readonly #server: Server;
  readonly #calls = new WeakMap<Request, Call>();

  private constructor(deps: Deps, directory: string) {
    this.#deps = deps;
    this.directory = directory;
    const store = new FileStore({ directory });
    // The route refuses deferred lengths (the size must be known before any byte),
    // so OPTIONS must not offer them.
    store.extensions = store.extensions.filter((name) => name !== "creation-defer-length");
    this.#server = new Server({
      path: UPLOADS_PATH,
      // The store's own expiry is off: the `uploads` row is the one clock, and
      // the store would look for the file again after the last byte has made
      // it an attachment.
      datastore: store,
      maxSize: deps.config.maxUploadBytes,
      // Resolved against the endpoint by clients; no trust in Host headers.
      relativeLocation: true,
      exposedHeaders: [ATTACHMENT_ID_HEADER],
      // Same-origin only, like the rest of the API (the library's default is any origin).
      allowedOrigins: [],
      namingFunction: (req) => this.#authorizedId(req),
      // The library would read the id from the whole URL, query string included
      // (`/uploads/mine?x=/theirs` names "theirs"): it acts on the checked id only.
      getFileIdFromRequest: (req) => this.#authorizedId(req),
      onUploadFinish: (req, upload) => this.#finish(req, upload),
    });
  }

  /** Creates the upload directory (owner-only) and the tus server. */
  static async open(deps: Deps): Promise<ResumableUploads> {
    const directory = `${deps.config.dataDir}/tus`;
    await Deno.mkdir(directory, { recursive: true, mode: 0o700 });
    return new ResumableUploads(deps, directory);
  }

  /**
   * Answers one tus request from an authenticated caller (OPTIONS needs
   * none). Refusals are problem+json with the tus headers a client needs.
   */
  async handle(request: Request, caller: UploadCaller | null): Promise<Response> {
    if (request.method === "OPTIONS") return await this.#server.handleWeb(request);
    if (!caller) throw new ApiError("unauthorized", "Missing bearer token");
    if (new URL(request.url).search !== "") {
      // tus has no use for one, and the library once took the upload id from it.
      throw new ApiError("invalid_request", "A resumable-upload request takes no query string");
    }
    const call: Call = { ...caller };
    this.#calls.set(request, call);
    switch (request.method) {
      case "POST":
        return await this.#create(request, call);
      case "HEAD":
      case "PATCH":
      case "DELETE":
        return await this.#resume(request, call);
      default:
        // GET would let the library send the partial bytes back: not offered.
        throw notFound();
    }
  }

  /** Removes expired uploads; safe with several processes (each row is claimed once). */
  async sweepExpired(): Promise<number> {
    const now = this.#deps.clock().getTime();
    const expired = await this.#deps.db.delete(uploads).where(lte(uploads.expiresAt, now))
      .returning({ id: uploads.id });
    for (const { id } of expired) await this.#removeFiles(id);
    // Files whose row is gone (a crash between the two) once they are older than any upload.
    let orphans = 0;
    const maxAgeMs = this.#deps.config.uploadExpiry * 1000;
    for await (const entry of Deno.readDir(this.directory)) {
      const id = entry.name.replace(/\.json$/, "");
      if (!entry.isFile || !idSchema.safeParse(id).success) continue;
      const info = await Deno.stat(`${this.directory}/${entry.name}`).catch(() => null);
      if (!info?.mtime || now - info.mtime.getTime() < maxAgeMs) continue;
      const [row] = await this.#deps.db.select({ id: uploads.id }).from(uploads)
        .where(eq(uploads.id, id));
      if (row) continue;
      await removeIfPresent(`${this.directory}/${entry.name}`);
      orphans++;
    }
    return expired.length + orphans;
  }

  async #create(request: Request, call: Call): Promise<Response> {
    const { config, db } = this.#deps;
    if (request.headers.get("upload-defer-length") !== null) {
      throw new ApiError("invalid_request", "Upload-Length is required (no deferred length)");
    }
    if (request.headers.get("upload-concat") !== null) {
      throw new ApiError("invalid_request", "Concatenation is not supported");
    }
    const size = parseLength(request.headers.get("upload-length"));
    if (size === null) throw new ApiError("invalid_request", "Upload-Length must be a byte count");
    if (size > config.maxUploadBytes) {
      throw new ApiError(
        "file_too_large",
        `The file is ${size} bytes; the limit is ${config.maxUploadBytes} bytes`,
      );
    }
    let metadata: Record<string, string | null>;
    try {
      metadata = Metadata.parse(request.headers.get("upload-metadata") ?? undefined) ?? {};
    } catch {
      throw new ApiError("invalid_request", "Upload-Metadata is malformed");
    }
    const messageId = idSchema.safeParse(metadata.message_id ?? "");
    if (!messageId.success) {
      throw new ApiError("invalid_request", 'Upload-Metadata "message_id" must be a UUID');
    }
    const message: Message = await loadMessageForUpload(db, messageId.data, {
      user: call.user,
      maxAttachments: config.maxAttachmentsPerMessage,
    });
    const now = this.#deps.clock().getTime();
    const row: Upload = {
      id: newId(),
      userId: call.user.id,
      messageId: message.id,
      fileName: sanitizeFileName(metadata.filename ?? "", "video"),
      size,
      createdAt: now,
      expiresAt: now + config.uploadExpiry * 1000,
      attachmentId: null,
    };
    await db.transaction(async (tx) => {
      const [open] = await tx.select({ n: count() }).from(uploads)
        .where(
          and(
            eq(uploads.userId, call.user.id),
            gt(uploads.expiresAt, now),
            isNull(uploads.attachmentId),
          ),
        );
      if ((open?.n ?? 0) >= config.maxUnfinishedUploads) {
        throw new ApiError(
          "too_many_requests",
          `At most ${config.maxUnfinishedUploads} unfinished uploads at once: finish or ` +
            "delete one first",
          { "retry-after": "60" },
        );
      }
      if (config.userQuotaBytes > 0) {
        // Unfinished uploads hold their size against the quota until they finish or
        // expire; checked in this transaction so concurrent creations cannot all pass.
        const [pending] = await tx.select({
          bytes: sql<number>`coalesce(sum(${uploads.size}), 0)`,
        }).from(uploads).where(
          and(
            eq(uploads.userId, call.user.id),
            gt(uploads.expiresAt, now),
            isNull(uploads.attachmentId),
          ),
        );
        await remainingQuota(tx, {
          userId: call.user.id,
          quotaBytes: config.userQuotaBytes,
          declaredLength: size + Number(pending?.bytes ?? 0),
          envelopeBytes: 0,
        });
      }
      await tx.insert(uploads).values(row);
    });
    call.id = row.id;
    let response: Response;
    try {
      response = await this.#server.handleWeb(request);
    } catch (error) {
      await this.#forget(row.id);
      throw error;
    }
    return await this.#answer(response, call, row);
  }

  /** The id the route checked for this request; the library's one source of upload ids. */
  #authorizedId(request: Request): string {
    const id = this.#calls.get(request)?.id;
    if (!id) throw new Error("a tus request reached the library without the route's checks");
    return id;
  }

  async #resume(request: Request, call: Call): Promise<Response> {
    const id = call.uploadId ?? "";
    if (!idSchema.safeParse(id).success) throw notFound();
    const [row] = await this.#deps.db.select().from(uploads)
      .where(and(eq(uploads.id, id), eq(uploads.userId, call.user.id)));
    // Someone else's upload is as missing as one that never was.
    if (!row) throw notFound();
    if (row.expiresAt <= this.#deps.clock().getTime()) {
      throw new ApiError("gone", "The upload expired; start a new one");
    }
    if (row.attachmentId) return await this.#completed(request, row, row.attachmentId);
    call.id = row.id;
    const response = await this.#server.handleWeb(request);
    if (request.method === "DELETE" && response.status === 204) await this.#forget(id);
    return await this.#answer(response, call, row);
  }

  /** The tus answer, or the failure of the last byte's ingest in its place. */
  async #answer(response: Response, call: Call, row: Upload): Promise<Response> {
    if (call.attachmentId) {
      // Remembered until it expires: the client may not have received this answer.
      await this.#removeFiles(row.id);
      await this.#deps.db.update(uploads).set({ attachmentId: call.attachmentId })
        .where(eq(uploads.id, row.id));
      response.headers.set(ATTACHMENT_ID_HEADER, call.attachmentId);
    } else if (call.failure !== undefined) await this.#forget(row.id);
    else if (response.status >= 400 && !(await this.#exists(row.id))) {
      // Refused before the store made anything: nothing to resume.
      await this.#forget(row.id);
    }
    if (call.failure !== undefined) {
      await response.body?.cancel();
      throw call.failure;
    }
    if (!call.attachmentId && response.status < 300) {
      response.headers.set("upload-expires", new Date(row.expiresAt).toUTCString());
    }
    return response;
  }

  /** The last byte arrived: the same checks and pipeline as a multipart upload. */
  async #finish(
    request: Request,
    upload: TusUpload,
  ): Promise<{ status_code?: number; body?: string; headers?: Record<string, string> }> {
    const call = this.#calls.get(request);
    if (!call) throw new Error("a tus request reached the store without the route");
    try {
      const [row] = await this.#deps.db.select().from(uploads).where(eq(uploads.id, upload.id));
      if (!row) throw notFound();
      // Membership may have changed since the upload was created, and other
      // uploads may have used the quota meanwhile.
      const message = await loadMessageForUpload(this.#deps.db, row.messageId, {
        user: call.user,
        maxAttachments: this.#deps.config.maxAttachmentsPerMessage,
      });
      await remainingQuota(this.#deps.db, {
        userId: call.user.id,
        quotaBytes: this.#deps.config.userQuotaBytes,
        declaredLength: upload.offset,
        envelopeBytes: 0,
      });
      const tempPath = `${this.directory}/${upload.id}`;
      const attachment = await ingestVideo(
        this.#deps,
        {
          tempPath,
          size: upload.offset,
          sha256: await sha256File(tempPath),
          fileName: row.fileName,
        },
        message,
        call.actor,
      );
      call.attachmentId = attachment.id;
      return {
        // A creation that carried every byte still answers 201 with its Location.
        status_code: request.method === "POST" ? 201 : 200,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(await serializeAttachment(attachment, call.urls)),
      };
    } catch (error) {
      call.failure = error;
      // The library answers something; the route replaces it with this failure.
      throw { status_code: 500, body: "failed\n" };
    }
  }

  /**
   * Requests about an upload that already made its attachment: `HEAD` says it
   * is complete (a client that lost the last answer then reports success),
   * `PATCH` has nothing left to send, `DELETE` forgets it (the attachment
   * stays; delete that with its own endpoint).
   */
  async #completed(request: Request, row: Upload, attachmentId: string): Promise<Response> {
    const headers = new Headers({
      "tus-resumable": "1.0.0",
      "upload-offset": String(row.size),
      "upload-length": String(row.size),
      "cache-control": "no-store",
      [ATTACHMENT_ID_HEADER]: attachmentId,
    });
    if (request.method === "DELETE") {
      await this.#forget(row.id);
      return new Response(null, { status: 204, headers: { "tus-resumable": "1.0.0" } });
    }
    if (request.method === "HEAD") return new Response(null, { status: 200, headers });
    await request.body?.cancel();
    throw new ApiError("conflict", "The upload is complete: HEAD it for its attachment", {
      ...Object.fromEntries(headers),
    });
  }

  async #exists(id: string): Promise<boolean> {
    try {
      await Deno.stat(`${this.directory}/${id}.json`);
      return true;
    } catch {
      return false;
    }
  }

  /** Removes an upload's row and files (a finished one's data file was moved or removed). */
  async #forget(id: string): Promise<void> {
    await this.#deps.db.delete(uploads).where(eq(uploads.id, id));
    await this.#removeFiles(id);
  }

  async #removeFiles(id: string): Promise<void> {
    await removeIfPresent(`${this.directory}/${id}`);
    await removeIfPresent(`${this.directory}/${id}.json`);
  }
}
