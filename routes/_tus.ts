import {
  type Lock,
  type Locker,
  Metadata,
  type RequestRelease,
  Server,
  type Upload as TusUpload,
} from "@tus/server";
import { getLogger } from "@logtape/logtape";
import { insufficientStorage, isOutOfSpace } from "../lib/storage/disk_space.ts";
import type { Upload } from "../db/schema.ts";
import type { ActivityContext } from "../lib/chat/activity.ts";
import type { User } from "../lib/auth/auth.ts";
import { ApiError } from "../lib/core/errors.ts";
import { isId } from "../lib/core/ids.ts";
import { idleGuardedBody } from "../lib/uploads/idle_body.ts";
import type { ResumableUploads } from "../lib/uploads/resumable_uploads.ts";
import type { HeldUploadLock, UploadLocks } from "../lib/uploads/upload_locks.ts";
import { serializeAttachment, type UrlContext } from "./_serialize.ts";

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
  /**
   * Why the last byte did not make an attachment, or why the bytes could not
   * be stored (a full disk); the route answers with it and forgets the upload.
   */
  failure?: unknown;
  /**
   * Answered in place of the library's answer, the upload staying resumable:
   * the client sent nothing for too long (408), or another request held the
   * upload's lock for longer than a request waits (503).
   */
  interruption?: ApiError;
  /** The attachment the completed upload made. */
  attachmentId?: string;
  /** Cancels what is left of the request's body (see `#guardIdle`). */
  releaseBody?: () => void;
}

/** Options for {@linkcode TusEndpoint}. */
export interface TusEndpointOptions {
  /** The largest upload, offered to clients as `Tus-Max-Size` (MAX_UPLOAD_BYTES). */
  maxUploadBytes: number;
  /** Milliseconds an upload body may send nothing before it is cut (UPLOAD_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Milliseconds a request waits for its upload's lock before it is `503` (30 s by default). */
  lockTimeoutMs?: number;
}

function parseLength(header: string | null): number | null {
  if (header === null || !/^\d{1,16}$/.test(header)) return null;
  return Number(header);
}

const tusLog = getLogger(["offchat", "tus"]);

function notFound(): ApiError {
  return new ApiError("not_found", "Upload not found");
}

/**
 * The tus 1.0 HTTP adapter: `@tus/server` with the store of
 * {@linkcode ResumableUploads} (`@tus/file-store`, or `@tus/s3-store` with
 * `STORAGE=s3`), which owns everything else.
 * Every request is authenticated and checked before the library reads a
 * byte (the headers here, then the size limit, the message, the per-user
 * cap and the owner of the upload in the domain), the library acts only on
 * the upload id those checks produced, and the answer to the last byte
 * carries the Attachment JSON or the same problem+json as a multipart upload.
 */
export class TusEndpoint {
  readonly #uploads: ResumableUploads;
  readonly #server: Server;
  readonly #calls = new WeakMap<Request, Call>();
  readonly #idleTimeoutMs: number;

  constructor(uploads: ResumableUploads, options: TusEndpointOptions) {
    this.#uploads = uploads;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    const { staging } = uploads;
    const store = staging.store;
    // The route refuses deferred lengths (the size must be known before any byte),
    // so OPTIONS must not offer them.
    store.extensions = store.extensions.filter((name) => name !== "creation-defer-length");
    this.#server = new Server({
      path: UPLOADS_PATH,
      // The store's own expiry is off: the `uploads` row is the one clock, and
      // the store would look for the file again after the last byte has made
      // it an attachment.
      datastore: store,
      // Its default locker lives in this process's memory; two API processes would then
      // both write one upload. This one is a lease in the database that all of them share.
      locker: new LeaseLocker(uploads.locks, { timeoutMs: options.lockTimeoutMs }),
      maxSize: options.maxUploadBytes,
      // Resolved against the endpoint by clients; no trust in Host headers. The store may
      // know the upload by another name (`tus/<id>` in a bucket); the URL has the id.
      generateUrl: (_req, { path, id }) => `${path}/${staging.uploadId(id)}`,
      exposedHeaders: [ATTACHMENT_ID_HEADER],
      // Same-origin only, like the rest of the API (the library's default is any origin).
      allowedOrigins: [],
      namingFunction: (req) => staging.storeId(this.#authorizedId(req)),
      // The library would read the id from the whole URL, query string included
      // (`/uploads/mine?x=/theirs` names "theirs"): it acts on the checked id only.
      getFileIdFromRequest: (req) => staging.storeId(this.#authorizedId(req)),
      onUploadFinish: (req, upload) => this.#finish(req, upload),
      // The library answers a store or body error itself (500, 400); the route answers a full
      // disk. The store's write turns ENOSPC into a 507, but the library's pipeline may reject
      // first with the write stream's own error: both mean the same.
      onResponseError: (req, error) => {
        const call = this.#calls.get(req);
        const full = isOutOfSpace(error) ||
          (error instanceof ApiError && error.code === "insufficient_storage");
        if (call && full) call.failure = insufficientStorage();
        // The library would append an unexpected error's message (an OS error, a path) to
        // its 500: the client gets none of it, the log gets all of it.
        if (call && error instanceof ApiError && error.code === "unavailable") {
          call.interruption = error;
          return;
        }
        if (!full && !(error as { status_code?: number }).status_code) {
          tusLog.error("resumable upload failed", { error });
          return { status_code: 500, body: "Internal server error\n" };
        }
      },
    });
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

  async #create(request: Request, call: Call): Promise<Response> {
    if (request.headers.get("upload-defer-length") !== null) {
      throw new ApiError("invalid_request", "Upload-Length is required (no deferred length)");
    }
    if (request.headers.get("upload-concat") !== null) {
      throw new ApiError("invalid_request", "Concatenation is not supported");
    }
    const size = parseLength(request.headers.get("upload-length"));
    if (size === null) throw new ApiError("invalid_request", "Upload-Length must be a byte count");
    let metadata: Record<string, string | null>;
    try {
      metadata = Metadata.parse(request.headers.get("upload-metadata") ?? undefined) ?? {};
    } catch {
      throw new ApiError("invalid_request", "Upload-Metadata is malformed");
    }
    const messageId = metadata.message_id ?? "";
    if (!isId(messageId)) {
      throw new ApiError("invalid_request", 'Upload-Metadata "message_id" must be a UUID');
    }
    const row = await this.#uploads.create(call.user, {
      size,
      messageId,
      fileName: metadata.filename ?? "",
    });
    call.id = row.id;
    let response: Response;
    try {
      // A creation may carry bytes (creation-with-upload): the same pause limit as a PATCH.
      response = await this.#server.handleWeb(this.#guardIdle(request, call));
    } catch (error) {
      await this.#uploads.forget(row.id);
      throw error;
    } finally {
      call.releaseBody?.();
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
    const row = await this.#uploads.find(call.user, call.uploadId ?? "");
    if (row.attachmentId) return await this.#completed(request, row, row.attachmentId);
    call.id = row.id;
    if (request.method === "PATCH") {
      // Refused before a byte is written, so the upload can resume once there is room.
      await this.#uploads.assertRoom();
      request = this.#guardIdle(request, call);
    }
    let response: Response;
    try {
      response = await this.#server.handleWeb(request);
    } finally {
      call.releaseBody?.();
    }
    if (request.method === "DELETE" && response.status === 204) {
      await this.#uploads.forget(row.id);
    }
    return await this.#answer(response, call, row);
  }

  /**
   * The same request with a body that fails after UPLOAD_IDLE_TIMEOUT_MS
   * without a byte (the request itself when it has no body); the library
   * keeps what arrived before (the offset a HEAD then reports), and the route
   * answers 408.
   */
  #guardIdle(request: Request, call: Call): Request {
    if (!request.body) return request;
    // The library stops reading a body it failed to store without cancelling it; the
    // route lets go of it once the library has answered.
    const release = new AbortController();
    call.releaseBody = () => release.abort();
    const guarded = new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body: idleGuardedBody(request.body, this.#idleTimeoutMs, {
        onIdle: (error) => call.interruption = error,
        release: release.signal,
      }),
      duplex: "half",
    } as RequestInit);
    this.#calls.set(guarded, call);
    return guarded;
  }

  /** The tus answer, or the failure of the last byte's ingest in its place. */
  async #answer(response: Response, call: Call, row: Upload): Promise<Response> {
    if (call.interruption && !call.attachmentId) {
      await response.body?.cancel();
      throw call.interruption;
    }
    if (call.attachmentId) {
      await this.#uploads.completed(row.id, call.attachmentId);
      response.headers.set(ATTACHMENT_ID_HEADER, call.attachmentId);
    } else if (call.failure !== undefined) await this.#uploads.forget(row.id);
    else if (response.status >= 400) {
      // Refused before the store made anything: nothing to resume.
      await this.#uploads.forgetIfUnstarted(row.id);
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

  /** The last byte arrived: the domain makes the attachment; its JSON is the answer. */
  async #finish(
    request: Request,
    upload: TusUpload,
  ): Promise<{ status_code?: number; body?: string; headers?: Record<string, string> }> {
    const call = this.#calls.get(request);
    if (!call) throw new Error("a tus request reached the store without the route");
    try {
      const id = this.#uploads.staging.uploadId(upload.id);
      const attachment = await this.#uploads.finish(id, upload.offset, call);
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
      await this.#uploads.forget(row.id);
      return new Response(null, { status: 204, headers: { "tus-resumable": "1.0.0" } });
    }
    if (request.method === "HEAD") return new Response(null, { status: 200, headers });
    await request.body?.cancel();
    throw new ApiError("conflict", "The upload is complete: HEAD it for its attachment", {
      ...Object.fromEntries(headers),
    });
  }
}

/** How long a request waits for an upload's lock (the library's default), then `503`. */
const LOCK_TIMEOUT_MS = 30_000;
/** What a client that found its upload busy is told to wait, in seconds. */
const LOCK_RETRY_AFTER_SECONDS = 5;

/**
 * `@tus/server`'s `Locker` on the database leases of {@linkcode UploadLocks}:
 * the lock of an upload holds across every API process on the database. A
 * request that wants a held lock asks its holder, in whichever process, to
 * end its request (the library's `requestRelease`), as the library's
 * in-memory locker does within one process.
 */
export class LeaseLocker implements Locker {
  readonly #locks: UploadLocks;
  readonly #timeoutMs: number;

  constructor(locks: UploadLocks, options: { timeoutMs?: number } = {}) {
    this.#locks = locks;
    this.#timeoutMs = options.timeoutMs ?? LOCK_TIMEOUT_MS;
  }

  newLock(id: string): Lock {
    const locks = this.#locks;
    const timeoutMs = this.#timeoutMs;
    let held: HeldUploadLock | null = null;
    return {
      async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
        held = await locks.acquire(id, { signal, timeoutMs, onReleaseRequested: requestRelease });
        if (held) return;
        // The library would answer a bare 500; the route answers this, and the upload stays.
        throw new ApiError(
          "unavailable",
          "Another request is still writing this upload; retry shortly",
          { "retry-after": String(LOCK_RETRY_AFTER_SECONDS) },
        );
      },
      async unlock(): Promise<void> {
        await held?.release();
        held = null;
      },
    };
  }
}
