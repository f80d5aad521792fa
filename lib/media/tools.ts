import type { Semaphore } from "../semaphore.ts";
import { DEMUXER_ALLOWLIST } from "./sniff.ts";

/** Where the media binaries are, how long they may run and how many probes run at once. */
export interface MediaTools {
  ffmpegPath: string;
  ffprobePath: string;
  probeTimeoutMs: number;
  /** Bounds concurrent upload probes in this process (unbounded when absent). */
  probeSlots?: Semaphore;
}

/**
 * Input options every ffmpeg/ffprobe run gets before `-i`: only local files,
 * only the allowlisted demuxers, and the one demuxer the content was sniffed as.
 * The demuxer allowlist is what stops an HLS playlist or ffconcat script
 * disguised as `x.mp4` from opening other files; `-protocol_whitelist file`
 * alone does not.
 */
export function hardenedInputArgs(demuxer: string, path: string): string[] {
  return [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    DEMUXER_ALLOWLIST.join(","),
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
