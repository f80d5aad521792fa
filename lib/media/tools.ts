import type { Config } from "../config/config.ts";
import type { Semaphore } from "../core/semaphore.ts";
import { type MediaLimits, mediaLimitsOf } from "./limits.ts";
import { DEMUXER_ALLOWLIST } from "./containers.ts";
import type { ToolPriority } from "./run_tool.ts";

/** Where the media binaries are, how long they may run and how many probes run at once. */
export interface MediaTools {
  ffmpegPath: string;
  ffprobePath: string;
  probeTimeoutMs: number;
  /** Bounds concurrent upload probes in this process (unbounded when absent). */
  probeSlots?: Semaphore;
  /** ffmpeg's own ceilings and the address-space limit of every run. */
  limits: MediaLimits;
  /** The CPU priority of the tools a job runs (`JOB_PRIORITY`); upload probes run at the server's. */
  jobPriority: ToolPriority;
}

/**
 * The media tools of a configuration; `probeSlots` bounds concurrent upload
 * probes (unbounded when absent).
 *
 * @example
 * ```ts
 * const tools = mediaToolsOf(parseConfig({})); // the defaults
 * ```
 */
export function mediaToolsOf(config: Config, probeSlots?: Semaphore): MediaTools {
  return {
    ffmpegPath: config.ffmpegPath,
    ffprobePath: config.ffprobePath,
    probeTimeoutMs: config.probeTimeoutMs,
    probeSlots,
    limits: mediaLimitsOf(config),
    jobPriority: config.jobPriority,
  };
}

/** A file for ffmpeg/ffprobe to read, and the one demuxer its content was sniffed as. */
export interface ToolInput {
  path: string;
  demuxer: string;
}

/**
 * Input options every ffmpeg/ffprobe run gets before `-i`: only local files,
 * only the allowlisted demuxers, and the one demuxer the content was sniffed as.
 * The demuxer allowlist is what stops an HLS playlist or ffconcat script
 * disguised as `x.mp4` from opening other files; `-protocol_whitelist file`
 * alone does not. `-max_streams` (a demuxer option) and `-max_pixels` (a
 * decoder option) make ffmpeg itself refuse what a lying header would make it
 * allocate; for the MOV/MP4 demuxer, data references to other files are off
 * (ffmpeg's defaults, stated so that a changed default cannot turn them on).
 */
export function hardenedInputArgs(
  input: ToolInput,
  limits: Pick<MediaLimits, "maxPixels" | "maxStreams">,
): string[] {
  const { demuxer, path } = input;
  return [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    DEMUXER_ALLOWLIST.join(","),
    "-max_streams",
    String(limits.maxStreams),
    "-max_pixels",
    String(limits.maxPixels),
    ...(demuxer === "mov" ? ["-enable_drefs", "0", "-use_absolute_path", "0"] : []),
    "-f",
    demuxer,
    "-i",
    `file:${path}`,
  ];
}

/** What every ffmpeg run starts with: never read stdin (it would wait), only errors on stderr. */
export const FFMPEG_QUIET: readonly string[] = ["-nostdin", "-hide_banner", "-v", "error"];

/** Output options for one JPEG image at `quality` (2 best … 31 worst), overwriting `outPath`. */
export function jpegOutputArgs(outPath: string, quality: number): string[] {
  return ["-q:v", String(quality), "-f", "image2", "-update", "1", "-y", `file:${outPath}`];
}

/** True when ffmpeg left a non-empty file at `path` (it can exit 0 and write nothing). */
export async function isNonEmptyFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).size > 0;
  } catch {
    return false;
  }
}
