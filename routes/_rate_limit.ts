import type { Context, MiddlewareHandler } from "hono";
import { LRUCache } from "lru-cache";
import type { AppEnv } from "./_env.ts";
import { bearerToken, type MediaTokenScope, verifyRequestUser } from "../lib/auth/auth.ts";
import { ApiError } from "../lib/core/errors.ts";

/** Options for {@linkcode TokenBuckets}. */
export interface TokenBucketsOptions {
  /** Requests a key may make at once, and per `periodMs`. */
  capacity: number;
  periodMs: number;
  /** Keys remembered at most; 100,000 by default. */
  maxKeys?: number;
}

/**
 * Per-key token buckets: `capacity` requests at once, refilled continuously
 * at `capacity` per `periodMs`. Unlike a fixed window, a client cannot spend
 * two windows' worth at a boundary, and the wait until the next request is
 * exact. The number of keys is bounded; the least recently used go first
 * (a forgotten key starts again with a full bucket).
 */
export class TokenBuckets {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #buckets: LRUCache<string, { tokens: number; at: number }>;

  constructor(options: TokenBucketsOptions) {
    const { capacity, periodMs, maxKeys = 100_000 } = options;
    this.#capacity = capacity;
    this.#perMs = capacity / periodMs;
    this.#buckets = new LRUCache({ max: maxKeys });
  }

  /** Takes one token for `key`; returns 0 when allowed, else the milliseconds until one is free. */
  take(key: string, now: number): number {
    const bucket = this.#buckets.get(key) ?? { tokens: this.#capacity, at: now };
    bucket.tokens = Math.min(this.#capacity, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / this.#perMs);
  }
}

/** Tells which media token a request's route would accept; null for routes that take none. */
export type MediaTokenScopeOf = (
  c: Context<AppEnv>,
) => (MediaTokenScope & { pathToken?: string }) | null;

/**
 * Whom a request counts against: the verified user of its bearer token;
 * else, on a route that accepts the media token it carries (`mediaScope`),
 * that token's user, in an allowance of its own; otherwise its client
 * address. Identity is never taken from an unverified token, so nobody can
 * spend someone else's allowance, and a leaked media URL, whatever route it
 * is sent to, cannot spend its owner's API allowance.
 */
export async function requestIdentity(
  c: Context<AppEnv>,
  mediaScope?: MediaTokenScopeOf,
): Promise<string> {
  const auth = c.get("deps").auth;
  try {
    const token = bearerToken(c.req.header("authorization"));
    if (token) return `user:${(await verifyRequestUser(auth, c.req.raw, token)).id}`;
    const scope = mediaScope?.(c) ?? null;
    // A token in the path (HLS, whose relative segment URIs must keep it) or in the query.
    const media = scope?.pathToken ?? c.req.query("token");
    if (media && scope) {
      const { user } = await auth.verifyMediaToken(media, scope);
      return `media:${user.id}`;
    }
  } catch {
    // Not a valid token: the route will say 401; count it against the address.
  }
  const remote = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return `addr:${remote?.hostname ?? "unknown"}`;
}

function tooMany(detail: string, retryAfterSeconds: number): ApiError {
  return new ApiError("too_many_requests", detail, {
    "retry-after": String(Math.max(1, retryAfterSeconds)),
  });
}

/** Options for {@linkcode rateLimit}. */
export interface RateLimitOptions {
  /** Requests per minute per identity; 0 turns the limit off. */
  perMinute: number;
  /** Requests that do not count (checked before the limit's own identity is looked up). */
  exempt?: (c: Context<AppEnv>) => boolean | Promise<boolean>;
  /** The media token each route accepts, if any (see {@linkcode requestIdentity}). */
  mediaScope?: MediaTokenScopeOf;
  /** The clock, for tests. */
  now?: () => number;
}

/**
 * Limits each user (or, without a valid token, each client address) to
 * `perMinute` requests a minute, with bursts of as many; past it, 429
 * `too_many_requests` with `Retry-After` in seconds.
 */
export function rateLimit(options: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const buckets = new TokenBuckets({ capacity: options.perMinute, periodMs: 60_000 });
  const now = options.now ?? Date.now;
  return async function rateLimit(c, next) {
    if (options.perMinute > 0 && !(await options.exempt?.(c))) {
      const waitMs = buckets.take(await requestIdentity(c, options.mediaScope), now());
      if (waitMs > 0) {
        throw tooMany(
          `More than ${options.perMinute} requests a minute; try again later`,
          Math.ceil(waitMs / 1000),
        );
      }
    }
    await next();
  };
}

/**
 * Lets each user have at most `max` requests of this route in progress at
 * once (0 = unlimited); one more gets 429 with `Retry-After`. A request
 * counts until its handler has finished, that is until an upload's body has
 * been read and processed.
 */
export function concurrencyLimit(
  options: { max: number; what: string },
): MiddlewareHandler<AppEnv> {
  const running = new Map<string, number>();
  return async function concurrencyLimit(c, next) {
    if (options.max <= 0) return await next();
    const key = await requestIdentity(c);
    const count = running.get(key) ?? 0;
    if (count >= options.max) {
      throw tooMany(`At most ${options.max} ${options.what} at once; wait for one to finish`, 5);
    }
    running.set(key, count + 1);
    try {
      await next();
    } finally {
      const left = (running.get(key) ?? 1) - 1;
      if (left > 0) running.set(key, left);
      else running.delete(key);
    }
  };
}

/**
 * Holds an upload request (POST or PATCH with a body) until this process has
 * a free upload slot (UPLOADS_PER_PROCESS, see `UploadAdmission`); put it
 * after authentication, so that only signed-in users take places in the
 * queue. A full queue answers 503 with `Retry-After`.
 */
export function admitUpload(): MiddlewareHandler<AppEnv> {
  return async function admitUpload(c, next) {
    const { method, body, signal } = c.req.raw;
    if (body === null || (method !== "POST" && method !== "PATCH")) return await next();
    let release: () => void;
    try {
      release = await c.get("deps").uploadAdmission.admit(signal);
    } catch (error) {
      if (!signal.aborted) throw error;
      // Nobody reads this answer; it keeps the log and the metrics truthful.
      throw new ApiError("invalid_request", "The client left while its upload waited for a slot");
    }
    try {
      await next();
    } finally {
      release();
    }
  };
}
