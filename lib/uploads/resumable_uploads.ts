import { and, count, eq, gt, isNull, lte, sql } from "drizzle-orm";
import { type Attachment, type Message, type Upload, uploads } from "../../db/schema.ts";
import { loadMessageForUpload } from "../auth/access.ts";
import type { User } from "../auth/auth.ts";
import type { ActivityContext } from "../chat/activity.ts";
import { ApiError } from "../core/errors.ts";
import { sanitizeFileName } from "../core/file_name.ts";
import { sha256File } from "../core/hash.ts";
import { isId, newId } from "../core/ids.ts";
import { assertFreeSpace } from "../storage/disk_space.ts";
import { type IngestDeps, ingestVideo } from "./ingest.ts";
import { remainingQuota } from "./quota.ts";
import { UploadLocks } from "./upload_locks.ts";
import { S3Storage } from "../storage/s3_storage.ts";
import { DiskTusStaging, S3TusStaging, type TusStaging } from "./tus_staging.ts";

/** What resumable uploads use: the same parts as the ingest their last byte runs. */
export type ResumableUploadsDeps = IngestDeps;

/** What a client declares when it starts an upload. */
export interface NewUpload {
  /** The whole file's size in bytes, known before the first byte. */
  size: number;
  /** The message the video will be attached to. */
  messageId: string;
  /** The client's name for the file (sanitized here). */
  fileName: string;
}

/** Who finishes an upload: the caller the route authenticated, and where from. */
export interface UploadFinisher {
  user: User;
  actor: ActivityContext;
}

function notFound(): ApiError {
  return new ApiError("not_found", "Upload not found");
}

/**
 * The domain side of resumable uploads: what the protocol (tus 1.0, spoken
 * by `routes/_tus.ts`) leaves to the application. A row in `uploads`
 * records who owns an upload, what it is for and when it expires; it is
 * created only after the size limit, the message, the per-user cap and the
 * quota have been checked; the last byte hands the file to the same ingest
 * as a multipart upload.
 *
 * The bytes live in {@linkcode staging}: `DATA_DIR/tus/` (owner-only) as
 * `@tus/file-store` writes them, or with `STORAGE=s3` the bucket's `tus/`
 * prefix through `@tus/s3-store` (lib/uploads/tus_staging.ts). This class
 * removes them when an upload is finished, forgotten or expired.
 */
export class ResumableUploads {
  /**
   * The local directory of unfinished uploads (`DATA_DIR/tus/`): their bytes
   * on disk storage, and where free space is checked.
   */
  readonly directory: string;
  /**
   * The locks requests take on an upload, shared with every process on the
   * database (the tus adapter's locker), so that two processes never write
   * one upload at once.
   */
  readonly locks: UploadLocks;
  /** Where the uploads' bytes are stored while they are unfinished. */
  readonly staging: TusStaging;
  readonly #deps: ResumableUploadsDeps;

  private constructor(deps: ResumableUploadsDeps, directory: string, staging: TusStaging) {
    this.#deps = deps;
    this.directory = directory;
    this.locks = new UploadLocks(deps.db, deps.clock);
    this.staging = staging;
  }

  /** Creates the upload directory (owner-only). */
  static async open(deps: ResumableUploadsDeps): Promise<ResumableUploads> {
    const directory = `${deps.config.dataDir}/tus`;
    await Deno.mkdir(directory, { recursive: true, mode: 0o700 });
    const staging = deps.storage instanceof S3Storage
      ? new S3TusStaging(deps.storage, { partSizeBytes: deps.storage.partSizeBytes })
      : new DiskTusStaging(directory);
    return new ResumableUploads(deps, directory, staging);
  }

  /**
   * Records a new upload for `user` once it passes every check that can be
   * made before a byte is read: the size limit (413), the message — theirs,
   * in a conversation they are in, with room for another video (404/409) —,
   * the number of their unfinished uploads (429), their quota (413) and the
   * free space (507).
   */
  async create(user: User, upload: NewUpload): Promise<Upload> {
    const { config, db } = this.#deps;
    if (upload.size > config.maxUploadBytes) {
      throw new ApiError(
        "file_too_large",
        `The file is ${upload.size} bytes; the limit is ${config.maxUploadBytes} bytes`,
      );
    }
    await this.assertRoom();
    const message: Message = await loadMessageForUpload(db, upload.messageId, {
      user,
      maxAttachments: config.maxAttachmentsPerMessage,
    });
    const now = this.#deps.clock().getTime();
    const row: Upload = {
      id: newId(),
      userId: user.id,
      messageId: message.id,
      fileName: sanitizeFileName(upload.fileName),
      size: upload.size,
      createdAt: now,
      expiresAt: now + config.uploadExpiry * 1000,
      attachmentId: null,
    };
    await db.transaction(async (tx) => {
      const [open] = await tx.select({ n: count() }).from(uploads)
        .where(
          and(
            eq(uploads.userId, user.id),
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
            eq(uploads.userId, user.id),
            gt(uploads.expiresAt, now),
            isNull(uploads.attachmentId),
          ),
        );
        await remainingQuota(tx, {
          userId: user.id,
          quotaBytes: config.userQuotaBytes,
          declaredLength: upload.size + Number(pending?.bytes ?? 0),
          envelopeBytes: 0,
        });
      }
      await tx.insert(uploads).values(row);
    });
    return row;
  }

  /**
   * Refuses (507) while the data directory's filesystem has less than
   * MIN_FREE_BYTES free: a new upload, or more bytes of one, would fill it.
   */
  async assertRoom(): Promise<void> {
    await assertFreeSpace(this.directory, this.#deps.config.minFreeBytes);
  }

  /**
   * `user`'s upload `id`: someone else's upload is as missing as one that
   * never was (404); an expired one is 410.
   */
  async find(user: User, id: string): Promise<Upload> {
    if (!isId(id)) throw notFound();
    const [row] = await this.#deps.db.select().from(uploads)
      .where(and(eq(uploads.id, id), eq(uploads.userId, user.id)));
    if (!row) throw notFound();
    if (row.expiresAt <= this.#deps.clock().getTime()) {
      throw new ApiError("gone", "The upload expired; start a new one");
    }
    return row;
  }

  /**
   * The last byte of upload `id` arrived (`size` bytes in all): the same
   * checks and pipeline as a multipart upload. Membership may have changed
   * since the upload was created, and other uploads may have used the quota
   * meanwhile, so both are checked again. The data file is moved away on
   * success and removed on failure (by ingest); call {@linkcode completed}
   * or {@linkcode forget} afterwards.
   */
  async finish(id: string, size: number, finisher: UploadFinisher): Promise<Attachment> {
    const { db, config } = this.#deps;
    const [row] = await db.select().from(uploads)
      .where(and(eq(uploads.id, id), eq(uploads.userId, finisher.user.id)));
    if (!row) throw notFound();
    const message = await loadMessageForUpload(db, row.messageId, {
      user: finisher.user,
      maxAttachments: config.maxAttachmentsPerMessage,
    });
    await remainingQuota(db, {
      userId: finisher.user.id,
      quotaBytes: config.userQuotaBytes,
      declaredLength: size,
      envelopeBytes: 0,
    });
    const tempPath = await this.staging.completeFile(row.id, this.#deps.storage.tempDir());
    let sha256: string;
    try {
      sha256 = await sha256File(tempPath);
    } catch (error) {
      await Deno.remove(tempPath).catch(() => {});
      throw error;
    }
    return await ingestVideo(
      this.#deps,
      { tempPath, size, sha256, fileName: row.fileName },
      { message, actor: finisher.actor },
    );
  }

  /**
   * Remembers which attachment upload `id` made, until the upload expires
   * (the client may not have received the answer that said so), and removes
   * what is left of its files.
   */
  async completed(id: string, attachmentId: string): Promise<void> {
    await this.#removeFiles(id);
    await this.#deps.db.update(uploads).set({ attachmentId }).where(eq(uploads.id, id));
  }

  /** Removes an upload's row and files (a finished one's data file was moved or removed). */
  async forget(id: string): Promise<void> {
    await this.#deps.db.delete(uploads).where(eq(uploads.id, id));
    await this.#removeFiles(id);
  }

  /** Forgets upload `id` when the store never made its record: there is nothing to resume. */
  async forgetIfUnstarted(id: string): Promise<void> {
    if (!(await this.staging.started(id))) await this.forget(id);
  }

  /** Removes expired uploads; safe with several processes (each row is claimed once). */
  async sweepExpired(): Promise<number> {
    const now = this.#deps.clock().getTime();
    const expired = await this.#deps.db.delete(uploads).where(lte(uploads.expiresAt, now))
      .returning({ id: uploads.id });
    for (const { id } of expired) await this.#removeFiles(id);
    await this.locks.sweepExpired();
    // Bytes whose row is gone (a crash between the two) once they are older than any upload.
    let orphans = 0;
    const maxAgeMs = this.#deps.config.uploadExpiry * 1000;
    for (const id of await this.staging.staleIds(now - maxAgeMs)) {
      const [row] = await this.#deps.db.select({ id: uploads.id }).from(uploads)
        .where(eq(uploads.id, id));
      if (row) continue;
      await this.staging.remove(id);
      orphans++;
    }
    return expired.length + orphans;
  }

  async #removeFiles(id: string): Promise<void> {
    await this.staging.remove(id);
  }
}
