import { ApiError } from "../core/errors.ts";
import { isNotModified } from "./not_modified.ts";
import type { OpenFiles } from "./open_files.ts";
import { parseRange } from "./range.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";

/** What to send and how. */
export interface FileResponseOptions {
  path: string;
  contentType: string;
  /** A strong validator for this exact content, without quotes. */
  etag: string;
  disposition?: string;
  cacheControl: string;
  /** Where small reads find the file already open. */
  files: OpenFiles;
}

/** Bytes per read while streaming: larger reads mean fewer round trips to the thread pool. */
const CHUNK = 256 * 1024;
/** A run of bytes of a file: where it starts and how many. */
interface ByteSpan {
  start: number;
  length: number;
}

/** Ranges up to this size are read in one go and sent from memory, not streamed. */
const SMALL_RANGE = 1024 * 1024;

/**
 * Reads a small range in one go. The reads are synchronous on purpose: Deno's
 * async file ops cost a thread-pool round trip each (~100 µs), several times
 * the read itself for a page-cache hit, and a player's range requests are
 * exactly this case. At most SMALL_RANGE bytes block the loop.
 */
function readExactly(file: Deno.FsFile, span: ByteSpan): Uint8Array<ArrayBuffer> {
  const { start, length } = span;
  const buffer = new Uint8Array(length);
  file.seekSync(start, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = file.readSync(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}

function fileStream(file: Deno.FsFile, span: ByteSpan): ReadableStream<Uint8Array> {
  const { start, length } = span;
  let remaining = length;
  let positioned = false;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async pull(controller) {
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        if (remaining <= 0) {
          file.close();
          controller.close();
          return;
        }
        const buffer = new Uint8Array(Math.min(CHUNK, remaining));
        const n = await file.read(buffer);
        if (n === null) {
          file.close();
          controller.close();
          return;
        }
        remaining -= n;
        controller.enqueue(buffer.subarray(0, n));
      } catch (error) {
        try {
          file.close();
        } catch {
          // already closed
        }
        controller.error(error);
      }
    },
    cancel() {
      // The client went away: release the handle now, not at garbage collection.
      try {
        file.close();
      } catch {
        // already closed
      }
    },
  });
}

/**
 * `If-Range`: the range applies only to the very representation the client
 * has. An entity tag is compared strongly (a weak one never matches); a date
 * must equal `Last-Modified` exactly.
 */
function ifRangeHolds(
  header: string,
  representation: { etag: string; lastModified: Date | null },
): boolean {
  const { etag, lastModified } = representation;
  const value = header.trim();
  if (value.startsWith('"')) return value === `"${etag}"`;
  if (value.startsWith("W/")) return false;
  const date = Date.parse(value);
  return lastModified !== null && !Number.isNaN(date) &&
    Math.floor(lastModified.getTime() / 1000) === Math.floor(date / 1000);
}

/** The headers of a response about some representation, before its bytes. */
export type ResponseHeaders = Pick<
  FileResponseOptions,
  "contentType" | "etag" | "disposition" | "cacheControl"
>;

/** What to answer: a response with no body yet to send, or these bytes with these headers. */
export type ResponsePlan =
  | { kind: "bodyless"; response: Response }
  | {
    kind: "bytes";
    status: 200 | 206;
    headers: Headers;
    start: number;
    length: number;
    size: number;
  };

/**
 * The answer to a GET or HEAD for a file of `size` bytes last modified at
 * `mtime`, whatever holds its bytes (the data directory or a bucket), so
 * that both send the same headers: 304 when the client's copy is current
 * ({@linkcode isNotModified}), 206 with `Content-Range` for one satisfiable
 * range (unless `If-Range` no longer matches), 200 otherwise. Throws
 * `ApiError` 416 (its `Content-Range` gives the size) for a malformed or
 * unsatisfiable range.
 */
export function planResponse(
  request: Request,
  options: ResponseHeaders,
  file: { size: number; mtime: Date | null },
): ResponsePlan {
  const { size, mtime } = file;
  const etag = `"${options.etag}"`;
  const lastModified = mtime?.toUTCString();
  const headers = new Headers({
    "accept-ranges": "bytes",
    "content-type": options.contentType,
    etag,
    "cache-control": options.cacheControl,
  });
  if (lastModified) headers.set("last-modified", lastModified);
  if (options.disposition) headers.set("content-disposition", options.disposition);

  if (isNotModified(request.headers, etag, lastModified)) {
    return { kind: "bodyless", response: new Response(null, { status: 304, headers }) };
  }
  const ifRange = request.headers.get("if-range");
  const rangeHeader = ifRange && !ifRangeHolds(ifRange, { etag: options.etag, lastModified: mtime })
    ? null
    : request.headers.get("range");
  const range = parseRange(rangeHeader, size);
  if (range.kind === "unsatisfiable") {
    // At most 100 characters of the header come back, without controls or bidi marks.
    const shown = stripUnsafeCharacters(rangeHeader?.slice(0, 100) ?? "");
    throw new ApiError(
      "range_not_satisfiable",
      `Range "${shown}" cannot be served from ${size} bytes`,
      { "content-range": `bytes */${size}` },
    );
  }
  const [start, end] = range.kind === "partial"
    ? [range.range.start, range.range.end]
    : [0, size - 1];
  const length = size === 0 ? 0 : end - start + 1;
  headers.set("content-length", String(length));
  if (range.kind === "partial") headers.set("content-range", `bytes ${start}-${end}/${size}`);
  const status = range.kind === "partial" ? 206 : 200;
  if (request.method === "HEAD" || length === 0) {
    return { kind: "bodyless", response: new Response(null, { status, headers }) };
  }
  return { kind: "bytes", status, headers, start, length, size };
}

/**
 * Answers a GET or HEAD for a file of the data directory as
 * {@linkcode planResponse} says. The bytes are streamed. Throws `ApiError`
 * 416 for a malformed or unsatisfiable range, 404 for a file gone.
 */
export function fileResponse(
  request: Request,
  options: FileResponseOptions,
): Response {
  let opened;
  try {
    opened = options.files.get(options.path);
  } catch (error) {
    // Deleted between the row lookup and here: gone, not a server error.
    if (error instanceof Deno.errors.NotFound) throw new ApiError("not_found", "File not found");
    throw error;
  }
  const plan = planResponse(request, options, opened);
  if (plan.kind === "bodyless") return plan.response;
  const { status, headers, start, length, size } = plan;
  const end = start + length - 1;
  if (length <= SMALL_RANGE) {
    // The cached handle: seek and read happen in this one synchronous step.
    return new Response(readExactly(opened.file, { start, length }), { status, headers });
  }
  // A stream reads across many turns of the event loop: it needs its own position.
  let own: Deno.FsFile;
  try {
    own = Deno.openSync(options.path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new ApiError("not_found", "File not found");
    throw error;
  }
  if (end === size - 1) {
    // To the end of the file (a whole GET, or a player's open-ended `bytes=N-`):
    // the file's own stream, which the HTTP server pumps without JavaScript
    // (measured 1.5× the speed of the loop below) and closes at the end or
    // when the client goes away.
    try {
      own.seekSync(start, Deno.SeekMode.Start);
    } catch (error) {
      own.close();
      throw error;
    }
    return new Response(own.readable, { status, headers });
  }
  return new Response(fileStream(own, { start, length }), { status, headers });
}
