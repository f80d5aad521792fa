import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";

/** Options for {@linkcode limitRequestBody}. */
export interface LimitRequestBodyOptions {
  /** The largest body accepted, in bytes. */
  maxBytes: number;
  /** Requests that stream their body to disk under their own limits: left alone. */
  exempt: (c: Context<AppEnv>) => boolean;
}

/**
 * Refuses a request body over `maxBytes` with 413 `payload_too_large` before
 * the route reads it: by its `Content-Length` without reading a byte, and a
 * body without one (chunked) as soon as the bytes read pass the limit. A
 * chunked body within the limit is read here (at most `maxBytes`, which is
 * why streamed uploads must be exempt) and handed on as bytes.
 *
 * Hono's `bodyLimit` counts the same way but leaves the body's reader open
 * when it refuses, and an open reader keeps Deno's server waiting for the rest
 * of the body, so the connection hangs with the client's bytes queued in the
 * socket. With the reader cancelled, Deno's server reads and discards what
 * the client goes on sending, without keeping it, until the connection ends.
 */
export function limitRequestBody(options: LimitRequestBodyOptions): MiddlewareHandler<AppEnv> {
  // The rest of the body is never read, so the connection cannot carry another request:
  // `Connection: close` tells the client, and the server (lib/serving/server.ts) to close it.
  const tooLarge = () =>
    new ApiError(
      "payload_too_large",
      `The request body is larger than the limit of ${options.maxBytes} bytes`,
      { connection: "close" },
    );
  return async function limitBody(c, next) {
    const body = c.req.raw.body;
    if (body === null || options.exempt(c)) return await next();
    const declared = c.req.header("content-length");
    if (declared !== undefined && c.req.header("transfer-encoding") === undefined) {
      // The server ends the body at its Content-Length.
      if (Number(declared) > options.maxBytes) throw tooLarge();
      return await next();
    }
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > options.maxBytes) throw tooLarge();
        chunks.push(value);
      }
    } catch (error) {
      await reader.cancel().catch(() => {});
      throw error instanceof ApiError
        ? error
        : new ApiError("invalid_request", "The request body was interrupted");
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.byteLength;
    }
    c.req.raw = new Request(c.req.raw, { body: bytes });
    await next();
  };
}
