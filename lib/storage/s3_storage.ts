/**
 * `STORAGE=s3`: media files as objects of one bucket of an S3-speaking
 * store, under the same keys as on disk (`media/2026/01/15/<id>.mp4`; the
 * files of a stored directory as `<key>/<name>`).
 *
 * Files are still made locally — an upload streams into this process's temp
 * directory, where it is sniffed and probed; ffmpeg writes its outputs there
 * — and are then streamed to the bucket, in parts of `S3_PART_SIZE_MB` when
 * larger (`@aws-sdk/lib-storage`'s `Upload`, which aborts the multipart
 * upload on failure). ffmpeg and ffprobe read a local copy
 * ({@linkcode S3Storage.withLocalCopy}), never a URL, so their protocol and
 * demuxer allowlists stay what they are on disk.
 *
 * @module
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { S3Config } from "../config/config.ts";
import { LocalCopies } from "./local_copies.ts";
import { checkedFileKey, checkedKey, memberKey, type Storage, type StoredFile } from "./storage.ts";

/** Part uploads of one file in flight at once: memory is this × the part size. */
const QUEUE_SIZE = 2;
/** Files of a stored directory (a ladder's segments) uploaded at once. */
const DIRECTORY_UPLOADS = 4;
/**
 * Bytes of local copies of originals a process keeps for its jobs
 * (lib/storage/local_copies.ts): a new upload's file, and what jobs
 * downloaded, until the least recently used go.
 */
export const LOCAL_COPY_BYTES = 512 * 1024 * 1024;
/** Keys per DeleteObjects request: S3's maximum. */
const DELETE_BATCH = 1000;

/**
 * The S3 client of a configuration: checksums only where S3 requires them
 * (other S3-speaking servers vary). The aggregated client, which
 * `@tus/s3-store` shares (lib/uploads/tus_staging.ts).
 */
export function s3ClientOf(config: S3Config): S3 {
  return new S3({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Whether an SDK error says the object (or bucket) is not there. */
function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NotFound" || e?.name === "NoSuchKey" ||
    e?.$metadata?.httpStatusCode === 404;
}

/** A directory's key has no extension; a file's key always has one. */
function isDirectoryKey(key: string): boolean {
  return !/\.[a-z0-9]{2,5}$/.test(key);
}

/** How many requests of one operation ended one way. */
export interface StorageRequestCount {
  operation: string;
  outcome: "ok" | "not_found" | "error";
  count: number;
}

/** An object's bytes, or a range of them. */
export interface ObjectRead {
  body: ReadableStream<Uint8Array>;
}

/** Objects in a bucket; see the module documentation. */
export class S3Storage implements Storage {
  readonly kind = "s3";
  readonly client: S3;
  readonly bucket: string;
  /** Bytes of each part of a multipart upload (`S3_PART_SIZE_MB`). */
  readonly partSizeBytes: number;
  readonly #tempDir: string;

  readonly #requests = new Map<string, StorageRequestCount>();
  readonly #copies: LocalCopies;

  /** `options.tempDir`: this process's temporary directory (`claimProcessTempDir`). */
  constructor(config: S3Config, options: { tempDir: string; client?: S3 }) {
    this.client = options.client ?? s3ClientOf(config);
    this.bucket = config.bucket;
    this.partSizeBytes = config.partSizeBytes;
    this.#tempDir = options.tempDir;
    this.#copies = new LocalCopies(options.tempDir, LOCAL_COPY_BYTES);
    // Every request of the client (the tus store's too) counted by operation and outcome,
    // once its retries are over: `offchat_storage_requests_total`.
    this.client.middlewareStack.add((next, context) => async (args) => {
      const operation = (context.commandName ?? "Unknown").replace(/Command$/, "");
      try {
        const result = await next(args);
        this.#count(operation, "ok");
        return result;
      } catch (error) {
        this.#count(operation, isNotFound(error) ? "not_found" : "error");
        throw error;
      }
    }, { step: "initialize", name: "offchatRequestCount" });
  }

  #count(operation: string, outcome: StorageRequestCount["outcome"]): void {
    const key = `${operation} ${outcome}`;
    const entry = this.#requests.get(key) ?? { operation, outcome, count: 0 };
    entry.count++;
    this.#requests.set(key, entry);
  }

  /** Requests to the bucket so far, by operation (`GetObject`, …) and outcome. */
  requestCounts(): StorageRequestCount[] {
    return [...this.#requests.values()].map((entry) => ({ ...entry }));
  }

  async putFile(localPath: string, key: string): Promise<void> {
    await this.#upload(localPath, checkedKey(key));
    // An original is read by the jobs next: its file stays as their local copy.
    if (key.startsWith("media/")) await this.#copies.adopt(key, localPath);
    else await Deno.remove(localPath);
  }

  async putDirectory(localDir: string, key: string): Promise<void> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(localDir)) {
      if (entry.isFile) names.push(entry.name);
    }
    const keys = names.map((name) => memberKey(key, name));
    try {
      for (let i = 0; i < names.length; i += DIRECTORY_UPLOADS) {
        await Promise.all(
          names.slice(i, i + DIRECTORY_UPLOADS).map((name, j) =>
            this.#upload(`${localDir}/${name}`, keys[i + j]!)
          ),
        );
      }
    } catch (error) {
      // No half-stored ladder: what did arrive goes again.
      await this.delete(key).catch(() => {});
      throw error;
    }
    await Deno.remove(localDir, { recursive: true });
  }

  /** Streams a local file to `key`: one PUT when small, a multipart upload otherwise. */
  async #upload(localPath: string, key: string): Promise<void> {
    using file = await Deno.open(localPath, { read: true });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: file.readable },
      partSize: this.partSizeBytes,
      queueSize: QUEUE_SIZE,
      // An upload that fails aborts its multipart upload: no parts left to pay for.
      leavePartsOnError: false,
    });
    await upload.done();
  }

  /** Runs `use` with a local copy of `key`: kept from before, or downloaded now (see LocalCopies). */
  async withLocalCopy<T>(key: string, use: (path: string) => Promise<T>): Promise<T> {
    return await this.#copies.use(key, (path) => this.#download(key, path), use);
  }

  async #download(key: string, path: string): Promise<void> {
    const { body } = await this.openRead(key);
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    await body.pipeTo(file.writable);
  }

  /**
   * The bytes of `key`, or of `span` of them (a `Range` GET). A missing key
   * throws `Deno.errors.NotFound`.
   */
  async openRead(key: string, span?: { start: number; length: number }): Promise<ObjectRead> {
    try {
      const result = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: checkedFileKey(key),
          Range: span ? `bytes=${span.start}-${span.start + span.length - 1}` : undefined,
        }),
      );
      if (!result.Body) throw new Error(`No body for "${key}"`);
      return { body: result.Body.transformToWebStream() as ReadableStream<Uint8Array> };
    } catch (error) {
      if (isNotFound(error)) throw new Deno.errors.NotFound(`No object "${key}"`);
      throw error;
    }
  }

  /** The size and modification time of the object `key` (a file, or a directory's member). */
  async head(key: string): Promise<StoredFile | null> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: checkedFileKey(key) }),
      );
      return { size: head.ContentLength ?? 0, mtime: head.LastModified ?? null };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /**
   * A URL that GETs `key` without credentials until `expiresIn` seconds
   * have passed, answered with these headers in place of the object's own
   * (the `response-*` overrides are part of the signature).
   */
  async presign(
    key: string,
    headers: { contentType: string; disposition?: string; cacheControl: string },
    expiresIn: number,
  ): Promise<string> {
    return await getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: checkedFileKey(key),
        ResponseContentType: headers.contentType,
        ResponseContentDisposition: headers.disposition,
        ResponseCacheControl: headers.cacheControl,
      }),
      { expiresIn },
    );
  }

  async stat(key: string): Promise<StoredFile | null> {
    if (!isDirectoryKey(checkedFileKey(key))) return await this.head(key);
    // One page of the directory's files (a ladder has far fewer than a page's 1000).
    const listed = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${key}/` }),
    );
    return (listed.KeyCount ?? 0) > 0 ? { size: 0, mtime: null } : null;
  }

  async delete(key: string): Promise<void> {
    checkedFileKey(key);
    await this.#copies.forget(key);
    if (!isDirectoryKey(key)) {
      // S3 answers 204 for a key that is not there.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      return;
    }
    const members = await this.#list(`${key}/`);
    for (let i = 0; i < members.length; i += DELETE_BATCH) {
      const batch = members.slice(i, i + DELETE_BATCH);
      const result = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      if (result.Errors?.length) {
        throw new Error(`Could not delete ${result.Errors.length} objects under "${key}"`);
      }
    }
  }

  async keys(tops: readonly string[]): Promise<string[]> {
    const keys = new Set<string>();
    for (const top of tops) {
      for (const object of await this.#list(`${top}/`)) {
        // `<top>/YYYY/MM/DD/<name>`, or `<top>/YYYY/MM/DD/<directory>/<name>`.
        keys.add(object.split("/").slice(0, 5).join("/"));
      }
    }
    return [...keys];
  }

  /** The bytes and number of the objects under `<top>/` (the admin storage view). */
  async usage(top: string): Promise<{ bytes: number; files: number }> {
    const objects = await this.#listObjects(`${top}/`);
    return { bytes: objects.reduce((sum, o) => sum + o.size, 0), files: objects.length };
  }

  /** Every object key under `prefix`. */
  async #list(prefix: string): Promise<string[]> {
    return (await this.#listObjects(prefix)).map((object) => object.key);
  }

  /** Every object under `prefix`, with its size. */
  async #listObjects(prefix: string): Promise<{ key: string; size: number }[]> {
    const objects: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key) objects.push({ key: object.Key, size: object.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects;
  }

  tempDir(): string {
    return this.#tempDir;
  }

  /** The bucket answers to these credentials, and the local temp directory can be written. */
  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    await Deno.mkdir(this.#tempDir, { recursive: true });
    const probe = `${this.#tempDir}/.ready-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "ok");
    await Deno.remove(probe);
  }

  close(): void {
    this.client.destroy();
  }
}
