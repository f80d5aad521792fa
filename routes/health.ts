import { sql } from "drizzle-orm";
import { Hono } from "hono";
import type { AppEnv } from "./_env.ts";
import { recentReadiness } from "../lib/setup/readiness.ts";

/** `/healthz`, `/readyz` and `/metrics`: unauthenticated operational endpoints. */
export const healthRoutes = new Hono<AppEnv>({ strict: false })
  .get("/healthz", (c) => c.json({ status: "ok" }))
  .get("/readyz", async (c) => {
    const checks = await recentReadiness(c.get("deps"));
    const ok = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ok ? "ok" : "unavailable", checks }, ok ? 200 : 503);
  })
  .get("/metrics", async (c) => {
    const { db } = c.get("deps");
    const attachmentRows = await db.all<{ status: string; n: number }>(
      sql`SELECT status, COUNT(*) AS n FROM attachments WHERE deleted_at IS NULL GROUP BY status`,
    );
    const jobRows = await db.all<{ kind: string; status: string; n: number }>(
      sql`SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status`,
    );
    const lines = [
      "# HELP offchat_attachments Live attachments by status.",
      "# TYPE offchat_attachments gauge",
      ...attachmentRows.map((r) => `offchat_attachments{status="${r.status}"} ${Number(r.n)}`),
      "# HELP offchat_jobs Processing jobs by kind (thumbnail, strip, rendition, hls, " +
      "storyboard) and status.",
      "# TYPE offchat_jobs gauge",
      ...jobRows.map((r) => `offchat_jobs{kind="${r.kind}",status="${r.status}"} ${Number(r.n)}`),
    ];
    return c.text(`${lines.join("\n")}\n`, 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
