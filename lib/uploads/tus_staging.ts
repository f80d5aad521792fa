/**
 * Where the bytes of unfinished resumable uploads wait: `DATA_DIR/tus/`
 * through `@tus/file-store` on disk storage, or the bucket's `tus/` prefix
 * through `@tus/s3-store` with `STORAGE=s3` (a multipart upload per tus
 * upload, so another process can take a resumed upload over). Everything
 * else about an upload (its row, checks, expiry) is
 * {@linkcode ResumableUploads}'s, the same for both.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { type Readable, Transform } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { FileStore } from "@tus/file-store";
import { S3Store } from "@tus/s3-store";
import { type DataStore, ERRORS } from "@tus/server";
import { isId } from "../core/ids.ts";
import { insufficientStorage, isOutOfSpace } from "../storage/disk_space.ts";
import type { S3Storage } from "../storage/s3_storage.ts";

/** The store of unfinished uploads' bytes, as the tus library and this service use it. */
export interface TusStaging {
  /** The tus library's data store. */
  readonly store: DataStore;
  /** The id the store knows upload `id` by. */
  storeId(id: string): string;
  /** The upload id of a store id. */
  uploadId(storeId: string): string;
  /** Whether the store made its record of upload `id` (it accepted the creation). */
  started(id: string): Promise<boolean>;
  /**
   * The complete bytes of upload `id` as a local file that the caller moves
   * or removes (ingest does either); `tempDir` is where a copy may be made.
   */
  completeFile(id: string, tempDir: string): Promise<string>;
  /** Removes whatever the store holds for upload `id`; nothing there is not an error. */
  remove(id: string): Promise<void>;
  /** The ids of uploads with bytes older than `before` (epoch ms), for the orphan sweep. */
  staleIds(before: number): Promise<string[]>;
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/**
 * `@tus/file-store` in `directory`: `<id>` holds the data and `<id>.json`
 * the store's record.
 */
export class DiskTusStaging implements TusStaging {
  readonly store: DataStore;
  readonly directory: string;

  constructor(directory: string) {
    this.directory = directory;
    this.store = new SpaceAwareFileStore({ directory });
  }
  storeId(id: string): string {
    return id;
  }
  uploadId(storeId: string): string {
    return storeId;
  }
  async started(id: string): Promise<boolean> {
    return await Deno.stat(`${this.directory}/${id}.json`).then(() => true, () => false);
  }
  completeFile(id: string): Promise<string> {
    return Promise.resolve(`${this.directory}/${id}`);
  }
  async remove(id: string): Promise<void> {
    await removeIfPresent(`${this.directory}/${id}`);
    await removeIfPresent(`${this.directory}/${id}.json`);
  }
  async staleIds(before: number): Promise<string[]> {
    const ids = new Set<string>();
    for await (const entry of Deno.readDir(this.directory)) {
      const id = entry.name.replace(/\.json$/, "");
      if (!entry.isFile || !isId(id)) continue;
      const info = await Deno.stat(`${this.directory}/${entry.name}`).catch(() => null);
      if (info?.mtime && info.mtime.getTime() < before) ids.add(id);
    }
    return [...ids];
  }
}

/** The bucket prefix of unfinished uploads. */
const TUS_PREFIX = "tus/";

/**
 * `@tus/s3-store` on the bucket of {@linkcode S3Storage}, with its client:
 * upload `id` is the multipart upload of `tus/<id>`, with the store's record
 * in `tus/<id>.info` and a trailing piece smaller than a part in
 * `tus/<id>.part`. The store's own expiry is off (the `uploads` row is the
 * one clock); {@linkcode remove} aborts the multipart upload and deletes
 * all three objects.
 */
export class S3TusStaging implements TusStaging {
  readonly store: DataStore;
  readonly #storage: S3Storage;

  constructor(storage: S3Storage, options: { partSizeBytes: number }) {
    this.#storage = storage;
    this.store = new SharedClientS3Store(storage, options.partSizeBytes);
  }
  storeId(id: string): string {
    if (!isId(id)) throw new Error(`Invalid upload id "${id}"`);
    return `${TUS_PREFIX}${id}`;
  }
  uploadId(storeId: string): string {
    return storeId.slice(TUS_PREFIX.length);
  }
  async started(id: string): Promise<boolean> {
    return await this.#head(`${this.storeId(id)}.info`) !== null;
  }
  async completeFile(id: string, tempDir: string): Promise<string> {
    const { client, bucket } = this.#storage;
    await Deno.mkdir(tempDir, { recursive: true });
    const path = `${tempDir}/tus-${id}`;
    try {
      const object = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: this.storeId(id) }),
      );
      if (!object.Body) throw new Error(`No body for upload ${id}`);
      const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
      await (object.Body.transformToWebStream() as ReadableStream<Uint8Array>).pipeTo(
        file.writable,
      );
    } catch (error) {
      await removeIfPresent(path);
      throw error;
    }
    return path;
  }
  async remove(id: string): Promise<void> {
    const { client, bucket } = this.#storage;
    const key = this.storeId(id);
    const info = await this.#head(`${key}.info`);
    const uploadId = info?.Metadata?.["upload-id"];
    if (uploadId) {
      // Completed uploads answer NoSuchUpload: their parts are already the object.
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
      )
        .catch((error) => {
          if (error?.name !== "NoSuchUpload" && error?.$metadata?.httpStatusCode !== 404) {
            throw error;
          }
        });
    }
    const result = await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: {
          Objects: [{ Key: key }, { Key: `${key}.info` }, { Key: `${key}.part` }],
          Quiet: true,
        },
      }),
    );
    if (result.Errors?.length) throw new Error(`Could not delete the objects of upload ${id}`);
  }
  async staleIds(before: number): Promise<string[]> {
    const { client, bucket } = this.#storage;
    const ids = new Set<string>();
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: TUS_PREFIX, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        const id = this.uploadId(object.Key ?? "").replace(/\.(info|part)$/, "");
        if (isId(id) && object.LastModified && object.LastModified.getTime() < before) ids.add(id);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return [...ids];
  }
  async #head(key: string) {
    const { client, bucket } = this.#storage;
    try {
      return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404) return null;
      throw error;
    }
  }
}

/** `@tus/s3-store` on the storage's own client (one connection pool, closed with it). */
class SharedClientS3Store extends S3Store {
  constructor(storage: S3Storage, partSize: number) {
    super({
      partSize,
      s3ClientConfig: { bucket: storage.bucket, region: "us-east-1" },
      expirationPeriodInMilliseconds: 0,
      useTags: false,
    });
    this.client.destroy();
    this.client = storage.client;
  }
}

/**
 * `@tus/file-store` with its `write` keeping a full disk apart: the library's
 * own turns every write error into a 500, and a client must be told 507 (and
 * the upload's bytes freed). It writes as the library's does (the file opened
 * `r+` at the offset, the new offset as the result); any other error is still
 * the library's `FILE_WRITE_ERROR`.
 */
class SpaceAwareFileStore extends FileStore {
  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const file = createWriteStream(`${this.directory}/${id}`, { flags: "r+", start: offset });
    let written = 0;
    const counter = new Transform({
      transform(chunk: Uint8Array, _encoding, callback): void {
        written += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(readable, counter, file);
    } catch (error) {
      throw isOutOfSpace(error) ? insufficientStorage() : ERRORS.FILE_WRITE_ERROR;
    }
    return offset + written;
  }
}
