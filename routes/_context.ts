import type { Context } from "hono";
import type { ActivityContext } from "../lib/chat/activity.ts";
import type { AppEnv } from "./_env.ts";
import type { UrlContext } from "./_serialize.ts";

/** Who is acting and from where, for the activity log. */
export function activityContext(c: Context<AppEnv>): ActivityContext {
  const remote = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return {
    actorId: c.get("user").id,
    ip: remote?.hostname ?? null,
    userAgent: c.req.header("user-agent") ?? null,
  };
}

/** What serializers need to sign media URLs for the caller. */
export function urlContext(c: Context<AppEnv>): UrlContext {
  const deps = c.get("deps");
  return { auth: deps.auth, user: c.get("user"), publicUrl: deps.config.publicUrl };
}
