import { sql } from "drizzle-orm";
import type { AppDeps } from "./deps.ts";
import { runTool } from "./media/run_tool.ts";

/** One readiness check's outcome. */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}

/** Runs the readiness checks: database, writable storage, ffmpeg and ffprobe. */
export async function checkReadiness(
  deps: Pick<AppDeps, "db" | "storage" | "media">,
): Promise<Record<string, CheckResult>> {
  const attempt = async (check: () => Promise<void>): Promise<CheckResult> => {
    try {
      await check();
      return { ok: true };
    } catch (error) {
      // Details stay generic: the endpoint is public and must not leak paths.
      return { ok: false, detail: error instanceof Error ? error.name : "failed" };
    }
  };
  const tool = (path: string) => async () => {
    const result = await runTool(path, ["-version"], { timeoutMs: 5000, maxStdoutBytes: 4096 });
    if (result.code !== 0) throw new Error("not runnable");
  };
  const [database, storage, ffmpeg, ffprobe] = await Promise.all([
    attempt(async () => void await deps.db.run(sql`SELECT 1`)),
    attempt(() => deps.storage.check()),
    attempt(tool(deps.media.ffmpegPath)),
    attempt(tool(deps.media.ffprobePath)),
  ]);
  return { database: database!, storage: storage!, ffmpeg: ffmpeg!, ffprobe: ffprobe! };
}
