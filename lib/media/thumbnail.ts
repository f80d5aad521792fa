import { runTool } from "./run_tool.ts";
import { hardenedInputArgs, type MediaTools } from "./tools.ts";

/** Width of generated thumbnails, in pixels (height keeps the aspect ratio). */
export const THUMBNAIL_WIDTH = 320;

/** Where to take the thumbnail: min(1 s, half the duration). */
export function thumbnailTime(duration: number | null): number {
  if (!duration || duration <= 0) return 0;
  return Math.min(1, duration / 2);
}

async function nonEmpty(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).size > 0;
  } catch {
    return false;
  }
}

async function extractFrame(
  tools: MediaTools,
  source: { path: string; demuxer: string },
  at: number,
  outPath: string,
  timeoutMs: number,
): Promise<string> {
  await Deno.remove(outPath).catch(() => {});
  const result = await runTool(tools.ffmpegPath, [
    "-nostdin",
    "-hide_banner",
    "-v",
    "error",
    "-ss",
    at.toFixed(3),
    ...hardenedInputArgs(source.demuxer, source.path),
    "-map",
    "0:v:0",
    "-frames:v",
    "1",
    // Autorotation is on by default, so portrait videos give portrait thumbnails.
    // `thumbnail` picks the most typical of the next frames, which skips a black
    // or fading frame at the seek point; 12 frames bound the memory it holds.
    "-vf",
    `thumbnail=12,scale=${THUMBNAIL_WIDTH}:-2`,
    "-q:v",
    "4",
    "-f",
    "image2",
    "-update",
    "1",
    "-y",
    `file:${outPath}`,
  ], { timeoutMs });
  if (result.timedOut) return "ffmpeg timed out";
  if (result.code !== 0) return `ffmpeg exited with ${result.code}: ${result.stderr.trim()}`;
  return (await nonEmpty(outPath)) ? "" : "ffmpeg wrote no frame";
}

/**
 * Writes a JPEG thumbnail of the first video stream to `outPath`. ffmpeg exits 0
 * and writes nothing when the seek point is past the last frame, so an empty
 * result is retried from the start before it counts as a failure.
 */
export async function makeThumbnail(
  tools: MediaTools,
  source: { path: string; demuxer: string; duration: number | null },
  outPath: string,
): Promise<void> {
  const timeoutMs = 60_000;
  const at = thumbnailTime(source.duration);
  let problem = await extractFrame(tools, source, at, outPath, timeoutMs);
  if (problem && at > 0) problem = await extractFrame(tools, source, 0, outPath, timeoutMs);
  if (problem) {
    await Deno.remove(outPath).catch(() => {});
    throw new Error(`Thumbnail failed: ${problem.slice(-500)}`);
  }
}
