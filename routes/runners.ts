import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "./_env.ts";
import { bearerToken } from "../lib/auth/auth.ts";
import { ApiError } from "../lib/core/errors.ts";
import type { Runner } from "../db/schema.ts";
import {
  authenticateRunner,
  kindsOf,
  registerRunner,
  RUNNER_KINDS,
} from "../lib/runners/registry.ts";
import {
  acceptJob,
  completeJob,
  failJob,
  inputUrl,
  openInput,
  receiveOutput,
  reportProgress,
  requestJob,
} from "../lib/runners/runner_jobs.ts";
import { IdParam, idSchema } from "./_schemas.ts";
import { json, newRouter, problems } from "./_router.ts";

const tags = ["runners"];
const runnerAuth = [{ runnerToken: [] }];
const Kind = z.enum(RUNNER_KINDS as [string, ...string[]]);
const Attempt = z.coerce.number().int().min(1).max(1000);

/** The runner a request's bearer token names (401 for an unknown or revoked one). */
async function runnerOf(c: Context<AppEnv>): Promise<Runner> {
  const { db, clock } = c.get("deps");
  return await authenticateRunner(db, bearerToken(c.req.header("authorization")), clock());
}

const runnerProblems = {
  401: { ...problems[401], description: "Missing, unknown or revoked runner token" },
  409: {
    ...problems[401],
    description: "The runner no longer holds this run of the job (it stalled past " +
      "RUNNER_STALL_MS, was revoked, or another worker took the job)",
  },
};

const RegisterBody = z.object({
  registration_token: z.string().min(1).max(200),
  name: z.string().trim().min(1).max(100).regex(/^[\w .@:+-]+$/, "letters, digits, . @ : + - _"),
  kinds: z.array(Kind).min(1).max(RUNNER_KINDS.length).optional(),
}).openapi("RunnerRegistration");

const RegisteredSchema = z.object({
  id: z.string(),
  name: z.string(),
  kinds: z.array(z.string()),
  token: z.string().openapi({ description: "The runner token, shown this once" }),
}).openapi("RegisteredRunner");

const RunSchema = z.object({
  id: z.string(),
  kind: z.string(),
  attachment_id: z.string(),
  attempt: z.number().int(),
});

const AcceptedSchema = z.object({
  job: RunSchema,
  task: z.record(z.string(), z.unknown()).nullable().openapi({
    description: "What to make (RunnerTask, lib/runners/tasks.ts); null when the job " +
      "needed no ffmpeg run and is already done",
  }),
  input_url: z.string().nullable().openapi({
    description: "Signed, short-lived URL of the original (purpose runner-input)",
  }),
  lease_ms: z.number().int().openapi({
    description: "RUNNER_STALL_MS: report progress well within it, or lose the job",
  }),
}).openapi("AcceptedRunnerJob");

const JobIdParam = IdParam;
const AttemptBody = z.object({ attempt: Attempt });

/** `/api/runners`: registration, and jobs handed to remote runners over HTTP. */
export function createRunnerRoutes(): OpenAPIHono<AppEnv> {
  const routes = newRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/register",
        tags,
        summary: "Register a runner with a registration token; answers its own token, once",
        request: { body: { content: { "application/json": { schema: RegisterBody } } } },
        responses: {
          201: json(RegisteredSchema, "Registered"),
          400: problems[400],
          401: { ...problems[401], description: "Unknown or expired registration token" },
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const { db, clock } = c.get("deps");
        const { runner, token } = await registerRunner(db, {
          registrationToken: body.registration_token,
          name: body.name,
          kinds: (body.kinds ?? RUNNER_KINDS) as typeof RUNNER_KINDS[number][],
          now: clock(),
        });
        return c.json({ id: runner.id, name: runner.name, kinds: kindsOf(runner), token }, 201);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/jobs/request",
        tags,
        summary: "The next job of the kinds this runner can do, not yet taken; 204 when none",
        security: runnerAuth,
        request: {
          body: {
            content: {
              "application/json": { schema: z.object({ kinds: z.array(Kind).max(10).optional() }) },
            },
          },
        },
        responses: {
          200: json(z.object({ job: z.object({ id: z.string(), kind: z.string() }) }), "A job"),
          204: { description: "No job now" },
          400: problems[400],
          401: runnerProblems[401],
        },
      }),
      async (c) => {
        const runner = await runnerOf(c);
        const job = await requestJob(c.get("deps"), runner, c.req.valid("json").kinds);
        if (!job) return c.body(null, 204);
        return c.json({ job }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/jobs/{id}/accept",
        tags,
        summary: "Take a job by lease (RUNNER_STALL_MS); answers what to make and the input URL",
        security: runnerAuth,
        request: { params: JobIdParam },
        responses: {
          200: json(AcceptedSchema, "Accepted"),
          400: problems[400],
          401: runnerProblems[401],
          409: { ...runnerProblems[409], description: "Another worker or runner took it first" },
        },
      }),
      async (c) => {
        const runner = await runnerOf(c);
        const deps = c.get("deps");
        const { job, task } = await acceptJob(deps, runner, c.req.valid("param").id);
        return c.json({
          job: {
            id: job.id,
            kind: job.kind,
            attachment_id: job.attachmentId,
            attempt: job.attempts,
          },
          task: task as Record<string, unknown> | null,
          input_url: task ? await inputUrl(deps, runner, job) : null,
          lease_ms: deps.config.runnerStallMs,
        }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/jobs/{id}/progress",
        tags,
        summary: "Renew the lease on a job and report how far it is (0 to 1); reaches SSE",
        security: runnerAuth,
        request: {
          params: JobIdParam,
          body: {
            content: {
              "application/json": {
                schema: AttemptBody.extend({ progress: z.number().min(0).max(1).optional() }),
              },
            },
          },
        },
        responses: { 204: { description: "Renewed" }, 400: problems[400], ...runnerProblems },
      }),
      async (c) => {
        const runner = await runnerOf(c);
        const body = c.req.valid("json");
        await reportProgress(c.get("deps"), runner, {
          jobId: c.req.valid("param").id,
          attempt: body.attempt,
          progress: body.progress,
        });
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/jobs/{id}/complete",
        tags,
        summary: "Check the posted outputs as a local worker's are checked, store them, finish",
        security: runnerAuth,
        request: {
          params: JobIdParam,
          body: {
            content: {
              "application/json": {
                schema: AttemptBody.extend({ ms: z.number().int().min(0).max(1e9).default(0) }),
              },
            },
          },
        },
        responses: {
          204: { description: "Stored; the job is done" },
          400: problems[400],
          ...runnerProblems,
          422: { ...problems[400], description: "An output failed its check (the run failed)" },
        },
      }),
      async (c) => {
        const runner = await runnerOf(c);
        const body = c.req.valid("json");
        await completeJob(c.get("deps"), runner, {
          jobId: c.req.valid("param").id,
          attempt: body.attempt,
          ms: body.ms,
        });
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/jobs/{id}/error",
        tags,
        summary: "Report a failed run: retried while attempts remain, as a local one",
        security: runnerAuth,
        request: {
          params: JobIdParam,
          body: {
            content: {
              "application/json": {
                schema: AttemptBody.extend({
                  message: z.string().min(1).max(4000),
                  ms: z.number().int().min(0).max(1e9).default(0),
                }),
              },
            },
          },
        },
        responses: {
          200: json(z.object({ outcome: z.enum(["retry", "failed"]) }), "Recorded"),
          400: problems[400],
          ...runnerProblems,
        },
      }),
      async (c) => {
        const runner = await runnerOf(c);
        const body = c.req.valid("json");
        const outcome = await failJob(c.get("deps"), runner, {
          jobId: c.req.valid("param").id,
          attempt: body.attempt,
          ms: body.ms,
          error: body.message,
        });
        return c.json({ outcome }, 200);
      },
    );

  // The original's bytes, by signed URL: streamed from the file, never read whole.
  routes.get("/jobs/:id/input", async function runnerInput(c) {
    const id = idSchema.safeParse(c.req.param("id"));
    const attempt = Attempt.safeParse(c.req.query("attempt"));
    const token = c.req.query("token");
    if (!id.success || !attempt.success) {
      throw new ApiError("invalid_request", "Bad job or attempt");
    }
    if (!token) throw new ApiError("unauthorized", "Missing token");
    const { body, size } = await openInput(c.get("deps"), {
      jobId: id.data,
      attempt: attempt.data,
      token,
    });
    return new Response(body, {
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    });
  });
  // One request per output file, its body streamed to disk with a byte budget.
  routes.put("/jobs/:id/outputs/:name", async function runnerOutput(c) {
    const runner = await runnerOf(c);
    const id = idSchema.safeParse(c.req.param("id"));
    const attempt = Attempt.safeParse(c.req.query("attempt"));
    if (!id.success || !attempt.success) {
      throw new ApiError("invalid_request", "Bad job or attempt");
    }
    await receiveOutput(c.get("deps"), runner, {
      jobId: id.data,
      attempt: attempt.data,
      name: c.req.param("name"),
      body: c.req.raw.body,
    });
    return c.body(null, 204);
  });
  describeFileRoutes(routes);
  return routes;
}

/** The OpenAPI description of the two routes that carry file bytes. */
function describeFileRoutes(routes: OpenAPIHono<AppEnv>): void {
  const params = z.object({
    id: idSchema.openapi({ param: { name: "id", in: "path" } }),
  });
  routes.openAPIRegistry.registerPath({
    method: "get",
    path: "/jobs/{id}/input",
    tags,
    summary: "The original of an accepted job, by the signed `input_url` (no bearer token)",
    request: {
      params,
      query: z.object({ attempt: z.string(), token: z.string() }),
    },
    responses: {
      200: { description: "The original's bytes" },
      401: { ...problems[401], description: "Bad or expired token" },
      409: runnerProblems[409],
    },
  });
  routes.openAPIRegistry.registerPath({
    method: "put",
    path: "/jobs/{id}/outputs/{name}",
    tags,
    summary: "One output file, streamed: `output` for every kind but hls, each ladder file for hls",
    security: runnerAuth,
    request: {
      params: params.extend({ name: z.string().openapi({ param: { name: "name", in: "path" } }) }),
      query: z.object({ attempt: z.string() }),
    },
    responses: {
      204: { description: "Received (checked at complete)" },
      400: problems[400],
      ...runnerProblems,
      413: { ...problems[400], description: "The job's outputs passed their byte budget" },
    },
  });
}
