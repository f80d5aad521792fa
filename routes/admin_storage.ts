import { createRoute, z } from "@hono/zod-openapi";
import { STORAGE_KINDS, storageUsage } from "../lib/storage/storage_usage.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const count = z.object({ count: z.number().int(), original_bytes: z.number().int() });
const usage = z.object({ bytes: z.number().int(), files: z.number().int() });

const place = z.object({
  total_bytes: z.number().int(),
  files: z.number().int(),
  directories: z.array(usage.extend({ name: z.string() })),
  by_kind: z.object(
    Object.fromEntries(STORAGE_KINDS.map((kind) => [kind, usage])) as {
      [K in typeof STORAGE_KINDS[number]]: typeof usage;
    },
  ).openapi({
    description: "The same bytes by what they are: originals, stripped copies, compact " +
      "renditions, HLS ladders, thumbnails, storyboards, subtitles, temp files, the database, other",
  }),
});

const StorageUsageSchema = z.object({
  attachments: count.extend({
    by_status: z.object({ processing: count, ready: count, failed: count }),
  }),
  disk: place,
  bucket: place.extend({ name: z.string() }).nullable().openapi({
    description: "With STORAGE=s3, the bucket's objects by top-level prefix and kind; null on disk",
  }),
}).openapi("StorageUsage");

/** `/api/admin/storage`: storage used, for the dashboard's admin view. */
export const adminStorageRoutes = newRouter().openapi(
  createRoute({
    method: "get",
    path: "/storage",
    tags: ["admin"],
    summary: "Storage used: live attachments by status, and bytes on disk (and in the bucket) " +
      "by directory and kind",
    security: bearer,
    responses: {
      200: json(StorageUsageSchema, "Storage used"),
      401: problems[401],
      403: { ...problems[401], description: "The caller is not an admin" },
    },
  }),
  async (c) => {
    const { db, config, storage } = c.get("deps");
    return c.json(await storageUsage(db, config, storage), 200);
  },
);
