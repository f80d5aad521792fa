import type { MiddlewareHandler } from "hono";
import type { MediaPurpose } from "../lib/auth.ts";
import type { AppEnv } from "../lib/deps.ts";
import { ApiError } from "../lib/errors.ts";

function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer[ ]+([A-Za-z0-9\-_=.]+)\s*$/i.exec(header);
  if (!match) {
    throw new ApiError("unauthorized", "Malformed Authorization header", {
      "www-authenticate": 'Bearer realm="offchat"',
    });
  }
  return match[1]!;
}

/** Requires a valid user token in `Authorization: Bearer`. */
export function requireUser(): MiddlewareHandler<AppEnv> {
  return async function requireUser(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    if (!token) {
      throw new ApiError("unauthorized", "Missing bearer token", {
        "www-authenticate": 'Bearer realm="offchat"',
      });
    }
    c.set("user", await c.get("deps").auth.verifyUserToken(token));
    await next();
  };
}

/** Requires `role: "admin"` (after {@linkcode requireUser}). */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdmin(c, next) {
    if (!c.get("user").admin) throw new ApiError("forbidden", "Administrators only");
    await next();
  };
}

/**
 * Accepts either a signed media token in `?token=` for this attachment and
 * purpose, or a user token in `Authorization`, so `<video src>` works without
 * headers.
 */
export function requireMediaAccess(purpose: MediaPurpose): MiddlewareHandler<AppEnv> {
  return async function requireMediaAccess(c, next) {
    const mediaToken = c.req.query("token");
    const auth = c.get("deps").auth;
    if (mediaToken) {
      c.set("user", await auth.verifyMediaToken(mediaToken, c.req.param("id") ?? "", purpose));
    } else {
      const token = bearerToken(c.req.header("authorization"));
      if (!token) {
        throw new ApiError("unauthorized", "Missing bearer token or media token", {
          "www-authenticate": 'Bearer realm="offchat"',
        });
      }
      c.set("user", await auth.verifyUserToken(token));
    }
    await next();
  };
}
