import { createRoute, z } from "@hono/zod-openapi";
import { json, newRouter, problems } from "./_router.ts";

/** Lifetime of a dev sign-in token. */
const DEV_TOKEN_TTL_SECONDS = 12 * 3600;

const DevLoginBody = z.object({
  user_id: z.string().regex(
    /^[\w.@:+-]{1,128}$/,
    "must be a user id of 1-128 letters, digits or ._@:+-",
  ),
  admin: z.boolean().default(false),
}).openapi("DevLogin");

const DevTokenSchema = z.object({
  token: z.string(),
  user_id: z.string(),
  admin: z.boolean(),
  expires_at: z.string(),
}).openapi("DevToken");

/**
 * `/api/dev/login`: mints a user token for any name, so the dashboard can be
 * tried without an identity provider. `createApp` mounts it only when
 * `DEV_LOGIN=1`, which the configuration allows only with the generated secret.
 */
export const devLoginRoutes = newRouter().openapi(
  createRoute({
    method: "post",
    path: "/login",
    tags: ["dev"],
    summary: "Dev sign-in: a token for any user name (only with DEV_LOGIN=1)",
    description: "Answers 404 unless the server runs with `DEV_LOGIN=1` and its generated " +
      "secret. Anyone who can reach the server can then act as anyone, admins included.",
    request: { body: { content: { "application/json": { schema: DevLoginBody } } } },
    responses: { 200: json(DevTokenSchema, "A user token"), 400: problems[400] },
  }),
  async (c) => {
    const { auth } = c.get("deps");
    const body = c.req.valid("json");
    const token = await auth.signUserToken(body.user_id, {
      admin: body.admin,
      ttlSeconds: DEV_TOKEN_TTL_SECONDS,
    });
    // The token's own `exp` is set from the wall clock too.
    const expiresAt = new Date(Date.now() + DEV_TOKEN_TTL_SECONDS * 1000);
    return c.json({
      token,
      user_id: body.user_id,
      admin: body.admin,
      expires_at: expiresAt.toISOString(),
    }, 200);
  },
);
