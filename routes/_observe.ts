import { getLogger, withContext } from "@logtape/logtape";
import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { User } from "../lib/auth/auth.ts";
import { literalMessage } from "../lib/observability/logging.ts";
import type { Metrics } from "../lib/observability/metrics.ts";
import type { AppEnv } from "./_env.ts";

/** The header that carries a request's id, in and out. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/**
 * An incoming request id that is kept (one from a proxy or a client, so that
 * their logs and ours can be joined): printable, no spaces or quotes, at most
 * 128 characters. Anything else is replaced, so a log line never carries a
 * client's arbitrary text.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@+=-]{1,128}$/;

/** The route label of a request that no route answered (the `404` of `notFound`). */
export const UNMATCHED_ROUTE = "(unmatched)";

/** Options for {@linkcode observeRequests}. */
export interface ObserveOptions {
  metrics: Metrics;
  /** The upload protocol of a request whose body is an upload, or null. */
  uploadProtocol: (c: Context<AppEnv>) => "multipart" | "tus" | null;
}

/**
 * The pattern of the route that answered (`/api/chat/videos/:id/stream`),
 * never the path itself: media paths and query strings carry signed tokens.
 */
function routeLabel(c: Context<AppEnv>): string {
  const pattern = routePath(c);
  // Only middleware ran (`*`, `/api/*`…) and nothing answered: not a route.
  if (pattern === "" || (c.res.status === 404 && (pattern === "*" || pattern.endsWith("/*")))) {
    return UNMATCHED_ROUTE;
  }
  return pattern;
}

/**
 * Counts a request body's bytes as the route reads them. Returns what lets
 * go of the body once the route has answered: the count's pipe has already
 * taken a chunk from it, and a body left half-read, uncancelled, keeps its
 * connection open for as long as the client keeps its socket. A route that
 * read the body (and so locked it) lets go of it itself.
 */
function countBody(c: Context<AppEnv>, add: (bytes: number) => void): () => void {
  const raw = c.req.raw;
  if (!raw.body) return () => {};
  const counted = raw.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        add(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
  c.req.raw = new Request(raw, { body: counted, duplex: "half" } as RequestInit);
  return () => {
    if (!counted.locked) counted.cancel().catch(() => {});
  };
}

/**
 * The first middleware: gives each request an id (kept from a sane incoming
 * `X-Request-Id`, else a new UUID) that every log line written while it runs
 * carries and that its answer returns in `X-Request-Id`; counts it in
 * `metrics`; and writes one JSON log line for it (category `offchat.http`)
 * with the route pattern, the method, the status, the time until the response
 * head, the response size when known and the user when authenticated. The URL
 * itself is never logged: media URLs carry tokens in the query or the path.
 */
export function observeRequests(options: ObserveOptions): MiddlewareHandler<AppEnv> {
  const log = getLogger(["offchat", "http"]);
  const { metrics } = options;
  return async function observe(c, next) {
    const started = performance.now();
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const requestId = incoming && SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const protocol = options.uploadProtocol(c);
    const releaseBody = protocol
      ? countBody(c, (bytes) => metrics.addUploadBytes(protocol, bytes))
      : undefined;
    try {
      await withContext({ requestId }, next);
    } finally {
      releaseBody?.();
    }
    const ms = performance.now() - started;
    try {
      c.res.headers.set(REQUEST_ID_HEADER, requestId);
    } catch {
      // An immutable response (one a library fetched): copy it to add the header.
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set(REQUEST_ID_HEADER, requestId);
    }
    const route = routeLabel(c);
    const { status } = c.res;
    const method = c.req.method;
    metrics.observeRequest({ method, route, status, seconds: ms / 1000 });
    const length = c.res.headers.get("content-length");
    const user = c.get("user") as User | undefined;
    log[status >= 500 ? "error" : "info"](literalMessage(`${method} ${route} ${status}`), {
      requestId,
      method,
      route,
      status,
      ms: Math.round(ms * 10) / 10,
      bytes: length === null ? undefined : Number(length),
      userId: user?.id,
    });
  };
}
