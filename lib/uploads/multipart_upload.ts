import busboy from "busboy";
import type { Readable } from "node:stream";
import { ApiError } from "../core/errors.ts";
import { sha256 } from "../core/hash.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";
import { insufficientStorage, isOutOfSpace } from "../storage/disk_space.ts";
import { idleGuardedBody } from "./idle_body.ts";

/** A file part streamed to a temporary file. */
export interface ReceivedFile {
  tempPath: string;
  size: number;
  sha256: string;
  /** The client's file name, as sent (sanitize before use). */
  fileName: string;
  /** Form fields, including those after the file part. */
  fields: Record<string, string>;
}

/** Options for {@linkcode receiveMultipartFile}. */
export interface ReceiveOptions {
  tempDir: string;
  maxBytes: number;
  /** Name of the file field. */
  fileField?: string;
  /**
   * Runs when the file part starts, with the fields sent before it; throwing
   * here refuses the upload before any file byte is written.
   */
  beforeFile?: (fields: Record<string, string>) => Promise<void>;
  /**
   * Milliseconds the client may send nothing (UPLOAD_IDLE_TIMEOUT_MS); then
   * the upload fails with 408 `request_timeout`. Unset: no limit.
   */
  idleTimeoutMs?: number;
}

/** Room for the multipart framing and the small fields around the file. */
const ENVELOPE_BYTES = 64 * 1024;

function tooLarge(maxBytes: number): ApiError {
  return new ApiError("file_too_large", `The file is larger than the limit of ${maxBytes} bytes`);
}

/**
 * Streams a `multipart/form-data` body: the one file part goes to a temporary
 * file, counted and hashed on the way, and nothing is buffered beyond a
 * chunk. Past `maxBytes` it stops reading and throws 413; a full disk
 * throws 507, a client silent for `idleTimeoutMs` 408. On any failure the
 * temporary file is removed.
 */
export async function receiveMultipartFile(
  request: Request,
  options: ReceiveOptions,
): Promise<ReceivedFile> {
  const fileField = options.fileField ?? "file";
  const contentType = request.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data\s*;.*boundary=/i.test(contentType)) {
    throw new ApiError("invalid_request", "Expected a multipart/form-data body with a boundary");
  }
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > options.maxBytes + ENVELOPE_BYTES) {
    throw tooLarge(options.maxBytes);
  }
  if (!request.body) throw new ApiError("invalid_request", `Field "${fileField}" is required`);

  await Deno.mkdir(options.tempDir, { recursive: true });
  const tempPath = `${options.tempDir}/upload-${crypto.randomUUID()}.part`;
  const fields: Record<string, string> = {};
  const body = options.idleTimeoutMs === undefined
    ? request.body
    : idleGuardedBody(request.body, options.idleTimeoutMs);
  const reader = body.getReader();
  let failure: unknown = null;
  let wakeDrainWaiter: (() => void) | null = null;
  let rejectAborted: (error: unknown) => void = () => {};
  // Raced only at the end, never per chunk: a pending promise raced against
  // every read would keep every chunk reachable until the request ends.
  const aborted = new Promise<never>((_, reject) => (rejectAborted = reject));
  aborted.catch(() => {});
  const fail = (error: unknown): void => {
    if (failure !== null) return;
    failure = error;
    rejectAborted(error);
    reader.cancel().catch(() => {});
    wakeDrainWaiter?.();
  };

  const parser = busboy({
    headers: { "content-type": contentType },
    defParamCharset: "utf8",
    limits: { files: 1, fields: 16, parts: 20, fieldSize: 4096, fieldNameSize: 100 },
  });
  let fileResult: Promise<FilePart> | null = null;

  parser.on("field", (name, value, info) => {
    if (info.valueTruncated || info.nameTruncated) {
      fail(
        new ApiError(
          "invalid_request",
          `Field "${stripUnsafeCharacters(name.slice(0, 100))}" is too long`,
        ),
      );
    }
    fields[name] = value;
  });
  parser.on("file", (name, stream, info) => {
    // Destroying the parser on failure errors the part streams; that is expected.
    stream.on("error", () => {});
    if (name !== fileField || fileResult) {
      stream.resume();
      return;
    }
    fileResult = writeFilePart(stream, info.filename ?? "", { ...fields }).catch((error) => {
      fail(error);
      stream.resume();
      throw error;
    });
    fileResult.catch(() => {});
  });
  for (const limit of ["filesLimit", "fieldsLimit", "partsLimit"] as const) {
    parser.on(limit, () => fail(new ApiError("invalid_request", "Too many parts in the form")));
  }
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on("close", resolve);
    parser.on("error", (error: Error) => {
      reject(new ApiError("invalid_request", `Malformed multipart body: ${error.message}`));
    });
  });
  parsed.catch(() => {});

  async function writeFilePart(
    stream: Readable,
    fileName: string,
    fieldsBefore: Record<string, string>,
  ): Promise<FilePart> {
    await options.beforeFile?.(fieldsBefore);
    const hash = sha256();
    let size = 0;
    using file = await Deno.open(tempPath, { write: true, createNew: true, mode: 0o600 });
    const writer = new BufferedWriter(file);
    try {
      for await (const chunk of stream as AsyncIterable<Uint8Array>) {
        size += chunk.length;
        if (size > options.maxBytes) throw tooLarge(options.maxBytes);
        hash.update(chunk);
        await writer.write(chunk);
      }
      await writer.flush();
    } finally {
      await writer.settle();
    }
    return { name: fileName, size, sha256: hash.hex() };
  }

  let received = 0;
  try {
    while (failure === null) {
      const { done, value } = await reader.read();
      if (done || failure !== null) break;
      received += value.length;
      if (received > options.maxBytes + ENVELOPE_BYTES) throw tooLarge(options.maxBytes);
      if (!parser.write(value)) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            parser.off("drain", wake);
            wakeDrainWaiter = null;
            resolve();
          };
          wakeDrainWaiter = wake;
          parser.once("drain", wake);
        });
      }
    }
    if (failure !== null) throw failure;
    parser.end();
    await Promise.race([parsed, aborted]);
    if (!fileResult) throw new ApiError("invalid_request", `Field "${fileField}" is required`);
    const file = await Promise.race([fileResult as Promise<FilePart>, aborted]);
    return { tempPath, size: file.size, sha256: file.sha256, fileName: file.name, fields };
  } catch (error) {
    await reader.cancel().catch(() => {});
    parser.destroy();
    if (fileResult) await (fileResult as Promise<unknown>).catch(() => {});
    await Deno.remove(tempPath).catch(() => {});
    if (error instanceof ApiError) throw error;
    // The client is told to come back later, not that it sent something wrong.
    if (isOutOfSpace(error)) throw insufficientStorage();
    throw new ApiError("invalid_request", "The upload was interrupted");
  } finally {
    reader.releaseLock();
  }
}

interface FilePart {
  name: string;
  size: number;
  sha256: string;
}

const WRITE_BUFFER_BYTES = 1024 * 1024;

/**
 * Coalesces small chunks into 1 MiB writes and keeps one write in flight
 * while the next buffer fills (two fixed buffers, so memory stays flat).
 */
class BufferedWriter {
  #file: Deno.FsFile;
  #buffers = [new Uint8Array(WRITE_BUFFER_BYTES), new Uint8Array(WRITE_BUFFER_BYTES)];
  #current = 0;
  #filled = 0;
  #pending: Promise<void> = Promise.resolve();

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const buffer = this.#buffers[this.#current]!;
      const n = Math.min(buffer.length - this.#filled, chunk.length - offset);
      buffer.set(chunk.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === buffer.length) await this.#swap();
    }
  }

  async flush(): Promise<void> {
    if (this.#filled > 0) await this.#swap();
    await this.#pending;
  }

  /** Waits for the write in flight, whatever its outcome (before the file closes). */
  async settle(): Promise<void> {
    await this.#pending.catch(() => {});
  }

  async #swap(): Promise<void> {
    await this.#pending;
    const full = this.#buffers[this.#current]!.subarray(0, this.#filled);
    this.#pending = writeAll(this.#file, full);
    this.#current = 1 - this.#current;
    this.#filled = 0;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}
