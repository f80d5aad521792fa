import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../lib/core/errors.ts";
import { backfill, backfillProgress } from "../lib/processing/backfill.ts";
import { activityContext } from "./_context.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";
import { idSchema } from "./_schemas.ts";

const tags = ["admin"];
const adminProblems = {
  401: problems[401],
  403: { ...problems[401], description: "The caller is not an admin" },
};
const int = z.number().int();

// Strict: a misspelt `dry_run` must not start a real run. (A body that is not JSON, which
// would read as none, is refused before the handler by the route's media-type gate.)
const BackfillBody = z.strictObject({
  dry_run: z.boolean().optional().openapi({
    description: "Report what would be queued, and queue nothing",
  }),
});

const BackfillSchema = z.object({
  batch_id: idSchema.nullable().openapi({
    description: "The id the queued jobs share; null on a dry run or when nothing was queued",
  }),
  dry_run: z.boolean(),
  scanned: int.openapi({ description: "Live attachments that are not failed, looked at" }),
  attachments: int.openapi({ description: "Attachments that got (or would get) jobs" }),
  jobs: z.object({ thumbnail: int, strip: int, rendition: int, hls: int, storyboard: int }),
  missing_originals: int.openapi({
    description: "Attachments skipped because their original file is missing",
  }),
}).openapi("Backfill");

const BackfillProgressSchema = z.object({
  batch_id: idSchema,
  total: int,
  queued: int,
  running: int,
  done: int,
  failed: int,
}).openapi("BackfillProgress");

const BatchParam = z.object({
  batch_id: idSchema.openapi({ param: { name: "batch_id", in: "path" } }),
});

/** `/api/admin/backfill`: bring existing attachments to the current policy, and follow a run. */
export const adminBackfillRoutes = newRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/backfill",
      tags,
      summary: "Queue the jobs that bring existing attachments to the current policy",
      security: bearer,
      request: {
        body: { content: { "application/json": { schema: BackfillBody } }, required: false },
      },
      responses: {
        200: json(BackfillSchema, "A dry run, or nothing to queue (batch_id null)"),
        202: json(BackfillSchema, "Jobs queued under batch_id"),
        400: problems[400],
        ...adminProblems,
      },
    }),
    async (c) => {
      const { dry_run: dryRun = false } = c.req.valid("json");
      const result = await backfill(c.get("deps"), { dryRun, actor: activityContext(c) });
      return c.json({
        batch_id: result.batchId,
        dry_run: result.dryRun,
        scanned: result.scanned,
        attachments: result.attachments,
        jobs: result.jobs,
        missing_originals: result.missingOriginals,
      }, result.batchId === null ? 200 : 202);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/backfill/{batch_id}",
      tags,
      summary: "How far a backfill's jobs are",
      security: bearer,
      request: { params: BatchParam },
      responses: {
        200: json(BackfillProgressSchema, "The batch's jobs by status"),
        400: problems[400],
        ...adminProblems,
        404: { ...problems[404], description: "No jobs have this batch id" },
      },
    }),
    async (c) => {
      const { batch_id: batchId } = c.req.valid("param");
      const progress = await backfillProgress(c.get("deps").db, batchId);
      if (!progress) throw new ApiError("not_found", "Backfill batch not found");
      const { total, queued, running, done, failed } = progress;
      return c.json({ batch_id: batchId, total, queued, running, done, failed }, 200);
    },
  );
