import busboy from "busboy";
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { ApiError } from "./errors.ts";
import { encodeHex } from "./encoding.ts";

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
}

/** Room for the multipart framing and the small fields around the file. */
const ENVELOPE_BYTES = 64 * 1024;

function tooLarge(maxBytes: number): ApiError {
  return new ApiError("file_too_large", `The file is larger than the limit of ${maxBytes} bytes`);
}

/**
 * Streams a `multipart/form-data` body: the one file part goes to a temporary
 * file, counted and hashed on the way, and nothing is buffered beyond a
 * chunk. Past `maxBytes` it stops reading and throws 413. On any failure the
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
  let failure: unknown = null;
  let rejectFailed: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => {});
  const fail = (error: unknown): void => {
    if (failure === null) {
      failure = error;
      rejectFailed(error);
    }
  };

  const parser = busboy({
    headers: { "content-type": contentType },
    defParamCharset: "utf8",
    limits: { files: 1, fields: 16, parts: 20, fieldSize: 4096, fieldNameSize: 100 },
  });
  let fileResult: Promise<{ name: string; size: number; sha256: string }> | null = null;

  parser.on("field", (name, value, info) => {
    if (info.valueTruncated || info.nameTruncated) {
      fail(new ApiError("invalid_request", `Field "${name.slice(0, 100)}" is too long`));
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
    parser.on(
      "error",
      (error: Error) =>
        reject(new ApiError("invalid_request", `Malformed multipart body: ${error.message}`)),
    );
  });
  parsed.catch(() => {});

  async function writeFilePart(
    stream: Readable,
    fileName: string,
    fieldsBefore: Record<string, string>,
  ): Promise<{ name: string; size: number; sha256: string }> {
    await options.beforeFile?.(fieldsBefore);
    const hash = createHash("sha256");
    let size = 0;
    using file = await Deno.open(tempPath, { write: true, createNew: true, mode: 0o600 });
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > options.maxBytes) throw tooLarge(options.maxBytes);
      hash.update(chunk);
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    }
    return { name: fileName, size, sha256: encodeHex(hash.digest()) };
  }

  const reader = request.body.getReader();
  let received = 0;
  try {
    while (failure === null) {
      const { done, value } = await Promise.race([reader.read(), failed]);
      if (done) break;
      received += value.length;
      if (received > options.maxBytes + ENVELOPE_BYTES) throw tooLarge(options.maxBytes);
      if (!parser.write(value)) {
        await Promise.race([new Promise((resolve) => parser.once("drain", resolve)), failed]);
      }
    }
    if (failure !== null) throw failure;
    parser.end();
    await Promise.race([parsed, failed]);
    if (!fileResult) throw new ApiError("invalid_request", `Field "${fileField}" is required`);
    const file = await Promise.race([
      fileResult as Promise<{
        name: string;
        size: number;
        sha256: string;
      }>,
      failed,
    ]);
    return { tempPath, size: file.size, sha256: file.sha256, fileName: file.name, fields };
  } catch (error) {
    await reader.cancel().catch(() => {});
    parser.destroy();
    if (fileResult) await (fileResult as Promise<unknown>).catch(() => {});
    await Deno.remove(tempPath).catch(() => {});
    throw error instanceof ApiError
      ? error
      : new ApiError("invalid_request", "The upload was interrupted");
  } finally {
    reader.releaseLock();
  }
}
