import { createRoute, z } from "@hono/zod-openapi";
import { storageUsage } from "../lib/storage/storage_usage.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";

const count = z.object({ count: z.number().int(), original_bytes: z.number().int() });

const StorageUsageSchema = z.object({
  attachments: count.extend({
    by_status: z.object({ processing: count, ready: count, failed: count }),
  }),
  disk: z.object({
    total_bytes: z.number().int(),
    files: z.number().int(),
    directories: z.array(
      z.object({ name: z.string(), bytes: z.number().int(), files: z.number().int() }),
    ),
  }),
}).openapi("StorageUsage");

/** `/api/admin/storage`: storage used, for the dashboard's admin view. */
export const adminStorageRoutes = newRouter().openapi(
  createRoute({
    method: "get",
    path: "/storage",
    tags: ["admin"],
    summary: "Storage used: live attachments by status, and bytes on disk by directory",
    security: bearer,
    responses: {
      200: json(StorageUsageSchema, "Storage used"),
      401: problems[401],
      403: { ...problems[401], description: "The caller is not an admin" },
    },
  }),
  async (c) => {
    const { db, config } = c.get("deps");
    return c.json(await storageUsage(db, config.dataDir), 200);
  },
);
