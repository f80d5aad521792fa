import type { MiddlewareHandler } from "hono";
import { bearerToken, type MediaPurpose, verifyRequestUser } from "../lib/auth/auth.ts";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";

/** The request's bearer token; 401 when it is missing (`missing` says so) or malformed. */
function requiredBearer(header: string | undefined, missing: string): string {
  const token = bearerToken(header);
  if (token) return token;
  throw new ApiError("unauthorized", header ? "Malformed Authorization header" : missing, {
    "www-authenticate": 'Bearer realm="offchat"',
  });
}

/** Requires a valid user token in `Authorization: Bearer`. */
export function requireUser(): MiddlewareHandler<AppEnv> {
  return async function requireUser(c, next) {
    const token = requiredBearer(c.req.header("authorization"), "Missing bearer token");
    c.set("user", await verifyRequestUser(c.get("deps").auth, c.req.raw, token));
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
 * Accepts either a signed media token (in `?token=`, or the path's `{token}`)
 * for this attachment and purpose, or a user token in `Authorization`, so
 * `<video src>` works without headers.
 */
export function requireMediaAccess(purpose: MediaPurpose): MiddlewareHandler<AppEnv> {
  return async function requireMediaAccess(c, next) {
    // A ladder's token is a path segment, so that relative playlist URIs keep it.
    const mediaToken = c.req.param("token") ?? c.req.query("token");
    const auth = c.get("deps").auth;
    if (mediaToken) {
      const access = await auth.verifyMediaToken(mediaToken, {
        attachmentId: c.req.param("id") ?? "",
        purpose,
      });
      c.set("user", access.user);
      c.set("mediaTokenExpiresAt", access.expiresAt);
    } else {
      const token = requiredBearer(
        c.req.header("authorization"),
        "Missing bearer token or media token",
      );
      c.set("user", await verifyRequestUser(auth, c.req.raw, token));
    }
    await next();
  };
}
