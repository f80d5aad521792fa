import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../lib/core/errors.ts";
import {
  createRegistrationToken,
  kindsOf,
  listRunners,
  revokeRunner,
} from "../lib/runners/registry.ts";
import { IdParam } from "./_schemas.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const tags = ["admin", "runners"];
const adminProblems = {
  401: problems[401],
  403: { ...problems[401], description: "The caller is not an admin" },
};

const RunnerSchema = z.object({
  id: z.string(),
  name: z.string(),
  kinds: z.array(z.string()),
  created_at: z.string(),
  last_seen_at: z.string(),
  revoked_at: z.string().nullable(),
  job: z.object({
    id: z.string(),
    kind: z.string(),
    attachment_id: z.string(),
    progress: z.number().nullable(),
  }).nullable().openapi({ description: "The job whose lease it holds now" }),
}).openapi("Runner");

const iso = (ms: number): string => new Date(ms).toISOString();

/** `/api/admin`: registration tokens for remote runners, the runners, revocation. */
export const adminRunnerRoutes = newRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/runner-registration-tokens",
      tags,
      summary: "Make a registration token for runners (shown once; reusable until it expires)",
      security: bearer,
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({
                ttl_seconds: z.number().int().min(60).max(30 * 24 * 3600).default(24 * 3600),
              }),
            },
          },
        },
      },
      responses: {
        201: json(
          z.object({ id: z.string(), token: z.string(), expires_at: z.string() }),
          "Made",
        ),
        400: problems[400],
        ...adminProblems,
      },
    }),
    async (c) => {
      const { db, clock } = c.get("deps");
      const made = await createRegistrationToken(db, {
        createdBy: c.get("user").id,
        ttlMs: c.req.valid("json").ttl_seconds * 1000,
        now: clock(),
      });
      return c.json({ id: made.id, token: made.token, expires_at: iso(made.expiresAt) }, 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/runners",
      tags,
      summary: "Registered runners, newest first, with the job each holds",
      security: bearer,
      responses: {
        200: json(z.object({ items: z.array(RunnerSchema) }), "Runners"),
        ...adminProblems,
      },
    }),
    async (c) => {
      const listed = await listRunners(c.get("deps").db, { limit: 500 });
      return c.json({
        items: listed.map(({ runner, job }) => ({
          id: runner.id,
          name: runner.name,
          kinds: kindsOf(runner),
          created_at: iso(runner.createdAt),
          last_seen_at: iso(runner.lastSeenAt),
          revoked_at: runner.revokedAt === null ? null : iso(runner.revokedAt),
          job: job
            ? {
              id: job.id,
              kind: job.kind,
              attachment_id: job.attachmentId,
              progress: job.progress,
            }
            : null,
        })),
      }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/runners/{id}",
      tags,
      summary: "Revoke a runner: its token gets 401, its job goes back to the queue",
      security: bearer,
      request: { params: IdParam },
      responses: {
        204: { description: "Revoked" },
        400: problems[400],
        ...adminProblems,
        404: problems[404],
      },
    }),
    async (c) => {
      const { db, clock } = c.get("deps");
      if (!(await revokeRunner(db, c.req.valid("param").id, clock()))) {
        throw new ApiError("not_found", "No such runner");
      }
      return c.body(null, 204);
    },
  );
