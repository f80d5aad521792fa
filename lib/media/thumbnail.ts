import { runTool } from "./run_tool.ts";
import {
  FFMPEG_QUIET,
  hardenedInputArgs,
  isNonEmptyFile,
  jpegOutputArgs,
  type MediaTools,
  type ToolInput,
} from "./tools.ts";

/** Width of generated thumbnails, in pixels (height keeps the aspect ratio). */
export const THUMBNAIL_WIDTH = 320;

/**
 * Average luma (limited range, 16 = black) under which a frame counts as too
 * dark to stand for the video, such as a fade-in or a lens cap.
 */
export const DARK_FRAME_LUMA = 24;

/** Where to take the thumbnail first: min(1 s, half the duration). */
export function thumbnailTime(duration: number | null): number {
  if (!duration || duration <= 0) return 0;
  return Math.min(1, duration / 2);
}

/** The seek points tried in turn while frames come out dark: first, a quarter, the middle, the start. */
export function thumbnailCandidates(duration: number | null): number[] {
  const points = [thumbnailTime(duration)];
  if (duration && duration > 0) points.push(duration * 0.25, duration * 0.5);
  points.push(0);
  return [...new Set(points.map((t) => Math.round(t * 1000) / 1000))];
}

/**
 * ffmpeg's arguments for one detailed frame near `at`, 320 px wide, as a
 * JPEG at `outPath` with the video's tags dropped, its average luma printed
 * on stdout ({@linkcode frameLuma} reads it). Autorotation is on by default,
 * so portrait videos give portrait frames. `thumbnail` picks the most typical
 * of the next 12 frames (a bound on the memory it holds); signalstats reports
 * the pick's brightness. The thumbnail and the poster candidates use it.
 */
export function detailedFrameArgs(
  tools: MediaTools,
  source: ToolInput,
  frame: { at: number; outPath: string },
): string[] {
  return [
    "-ss",
    frame.at.toFixed(3),
    ...hardenedInputArgs(source, tools.limits),
    "-map",
    "0:V:0",
    "-frames:v",
    "1",
    "-vf",
    `thumbnail=12,scale=${THUMBNAIL_WIDTH}:-2,signalstats,` +
    "metadata=mode=print:key=lavfi.signalstats.YAVG:file=-",
    "-map_metadata",
    "-1",
    ...jpegOutputArgs(frame.outPath, 4),
  ];
}

/** The average luma {@linkcode detailedFrameArgs} printed; 255 (bright) when none was. */
export function frameLuma(stdout: string): number {
  const luma = Number(/YAVG=([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  return Number.isFinite(luma) ? luma : 255;
}

/** Extracts one frame near `at`; returns its average luma, or an error text. */
async function extractFrame(
  tools: MediaTools,
  source: ToolInput,
  frame: { at: number; outPath: string },
): Promise<{ luma: number } | { problem: string }> {
  const { at, outPath } = frame;
  await Deno.remove(outPath).catch(() => {});
  const result = await runTool(tools.ffmpegPath, [
    ...FFMPEG_QUIET,
    ...detailedFrameArgs(tools, source, { at, outPath }),
  ], {
    timeoutMs: 60_000,
    maxStdoutBytes: 4096,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.timedOut) return { problem: "ffmpeg timed out" };
  if (result.code !== 0) {
    return { problem: `ffmpeg exited with ${result.code}: ${result.stderr.trim()}` };
  }
  if (!(await isNonEmptyFile(outPath))) return { problem: "ffmpeg wrote no frame" };
  return { luma: frameLuma(result.stdout) };
}

/**
 * Writes a JPEG thumbnail of the first video stream to `outPath`. ffmpeg exits
 * 0 and writes nothing when the seek point is past the last frame, so an
 * empty result moves on to the next seek point; so does a dark frame, and
 * when every point is dark the brightest one is kept.
 */
export async function makeThumbnail(
  tools: MediaTools,
  source: { path: string; demuxer: string; duration: number | null },
  outPath: string,
): Promise<void> {
  let best: { path: string; luma: number } | null = null;
  let problem = "no seek point";
  const tried: string[] = [];
  try {
    for (const [i, at] of thumbnailCandidates(source.duration).entries()) {
      const candidate = `${outPath}.${i}.jpg`;
      tried.push(candidate);
      const result = await extractFrame(tools, source, { at, outPath: candidate });
      if ("problem" in result) {
        problem = result.problem;
        continue;
      }
      if (!best || result.luma > best.luma) best = { path: candidate, luma: result.luma };
      if (result.luma >= DARK_FRAME_LUMA) break;
    }
    if (!best) throw new Error(`Thumbnail failed: ${problem.slice(-500)}`);
    await Deno.rename(best.path, outPath);
  } finally {
    await Promise.all(tried.map((path) => Deno.remove(path).catch(() => {})));
  }
}
