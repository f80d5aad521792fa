import { sql } from "drizzle-orm";
import type { AppDeps } from "../deps.ts";
import { runTool } from "../media/run_tool.ts";
import { freeBytes } from "../storage/disk_space.ts";

/** A capability ffmpeg lacks, or low disk space; its message is safe to show. */
class MissingFeature extends Error {}

/** One readiness check's outcome. */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}

/**
 * At least MIN_FREE_BYTES free on the data directory's filesystem. Failing
 * before the disk is full lets a balancer send uploads elsewhere while there
 * is still room to finish the ones in flight and the jobs they queued.
 */
async function checkDiskSpace(deps: Pick<AppDeps, "config">): Promise<CheckResult> {
  if (deps.config.minFreeBytes <= 0) return { ok: true };
  try {
    if (await freeBytes(deps.config.dataDir) >= deps.config.minFreeBytes) return { ok: true };
    return { ok: false, detail: "less than MIN_FREE_BYTES free" };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.name : "failed" };
  }
}

/**
 * Runs the readiness checks: database, writable storage, free disk space
 * (at least MIN_FREE_BYTES), ffmpeg and ffprobe.
 */
export async function checkReadiness(
  deps: Pick<AppDeps, "config" | "db" | "storage" | "media">,
): Promise<Record<string, CheckResult>> {
  const attempt = async (check: () => Promise<void>): Promise<CheckResult> => {
    try {
      await check();
      return { ok: true };
    } catch (error) {
      // Details stay generic: the endpoint is public and must not leak paths.
      const detail = error instanceof MissingFeature
        ? error.message
        : error instanceof Error
        ? error.name
        : "failed";
      return { ok: false, detail };
    }
  };
  const tool = (path: string) => async () => {
    const result = await runTool(path, ["-version"], {
      timeoutMs: 5000,
      maxStdoutBytes: 4096,
      addressSpaceBytes: deps.media.limits.toolMemoryBytes,
    });
    if (result.code !== 0) throw new Error("not runnable");
  };
  // Renditions need the libx264 encoder, HDR tone mapping zimg's zscale filter, and the
  // adaptive ladder the dash muxer (which writes the HLS playlists too).
  const features = async () => {
    const list = (what: string) =>
      runTool(deps.media.ffmpegPath, ["-hide_banner", what], {
        timeoutMs: 5000,
        addressSpaceBytes: deps.media.limits.toolMemoryBytes,
      });
    const [encoders, filters, muxers] = await Promise.all(
      ["-encoders", "-filters", "-muxers"].map(list),
    );
    if (!/\slibx264\s/.test(encoders!.stdout)) throw new MissingFeature("no libx264 encoder");
    if (!/\szscale\s/.test(filters!.stdout)) throw new MissingFeature("no zscale filter");
    if (!/\sE\s+dash\s/.test(muxers!.stdout)) throw new MissingFeature("no dash muxer");
  };
  const [database, storage, disk, ffmpeg, ffprobe, ffmpegFeatures] = await Promise.all([
    attempt(async () => void await deps.db.run(sql`SELECT 1`)),
    attempt(() => deps.storage.check()),
    checkDiskSpace(deps),
    attempt(tool(deps.media.ffmpegPath)),
    attempt(tool(deps.media.ffprobePath)),
    attempt(features),
  ]);
  return {
    database: database!,
    storage: storage!,
    disk_space: disk!,
    ffmpeg: ffmpeg!,
    ffprobe: ffprobe!,
    ffmpeg_features: ffmpegFeatures!,
  };
}

/** How long one readiness answer is reused: the checks start four child processes. */
const READINESS_TTL_MS = 5000;
const recent = new WeakMap<object, { at: number; result: Promise<Record<string, CheckResult>> }>();

/**
 * {@linkcode checkReadiness}, at most once per {@linkcode READINESS_TTL_MS}
 * per set of dependencies: `/readyz` is public, and without this every request
 * to it would start ffmpeg and ffprobe four times. Concurrent callers share
 * one run. The free space is the exception, read at every call (one
 * `statfs`): a disk that fills up must fail readiness at once.
 */
export async function recentReadiness(
  deps: Pick<AppDeps, "config" | "db" | "storage" | "media">,
  now = performance.now(),
): Promise<Record<string, CheckResult>> {
  let cached = recent.get(deps.media);
  if (!cached || now - cached.at >= READINESS_TTL_MS) {
    cached = { at: now, result: checkReadiness(deps) };
    recent.set(deps.media, cached);
  }
  const [checks, disk_space] = await Promise.all([cached.result, checkDiskSpace(deps)]);
  return { ...checks, disk_space };
}
