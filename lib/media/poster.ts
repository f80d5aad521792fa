/**
 * Posters: the candidate frames the thumbnail job keeps, the poster made
 * from one of them (or from any time the uploader picks) in two sizes with
 * its ThumbHash placeholder, and single frames at a time for the thumbnail
 * route's `?time=`. Every frame comes out of ffmpeg's JPEG encoder, which
 * writes no EXIF; `-map_metadata -1` keeps the video's tags out all the same.
 *
 * @module
 */
import { rgbaToThumbHash } from "thumbhash";
import { runTool } from "./run_tool.ts";
import {
  FFMPEG_QUIET,
  hardenedInputArgs,
  isNonEmptyFile,
  jpegOutputArgs,
  type MediaTools,
  type ToolInput,
} from "./tools.ts";
import { DARK_FRAME_LUMA, detailedFrameArgs, frameLuma, THUMBNAIL_WIDTH } from "./thumbnail.ts";

/** The long side of the poster the player shows, in pixels (smaller videos are not enlarged). */
export const POSTER_LONG_SIDE = 1280;

/** How many candidate frames the thumbnail job keeps, spread over the video. */
export const POSTER_CANDIDATES = 5;

/**
 * The long side of the frame a ThumbHash is computed from: the library
 * refuses more than 100 × 100, and more would not change its ~25 bytes.
 */
export const THUMBHASH_SIDE = 100;

/** The files of a poster generation's directory. */
export const POSTER_FILE = "poster.jpg";
export const THUMBNAIL_FILE = "thumbnail.jpg";
export const candidateFile = (index: number): string => `candidate-${index}.jpg`;

/** A video as the poster functions read it. */
export interface PosterSource extends ToolInput {
  duration: number | null;
  /** Display size after rotation (what the frames come out as); null when unknown. */
  width: number | null;
  height: number | null;
}

const ms = (t: number) => Math.round(t * 1000) / 1000;

/** Where the candidates are looked for: the middles of equal slices of the video; 0 when its length is unknown. */
export function candidateTimes(duration: number | null): number[] {
  if (!duration || duration <= 0) return [0];
  return Array.from(
    { length: POSTER_CANDIDATES },
    (_, i) => ms(((i + 0.5) / POSTER_CANDIDATES) * duration),
  );
}

async function ffmpeg(tools: MediaTools, args: string[], maxStdoutBytes = 4096) {
  const result = await runTool(tools.ffmpegPath, [...FFMPEG_QUIET, ...args], {
    timeoutMs: 60_000,
    maxStdoutBytes,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.timedOut) throw new Error("ffmpeg timed out");
  if (result.code !== 0) {
    throw new Error(`ffmpeg exited with ${result.code}: ${result.stderr.trim().slice(-500)}`);
  }
  return result;
}

/**
 * Writes the candidates `candidate-0.jpg`… into `outDir` (320 px wide): near
 * each of {@linkcode candidateTimes}, the `thumbnail` filter's pick of the
 * next 12 frames, so a candidate is a typical, detailed frame rather than a
 * blur between two shots. Returns their times and the index of the default
 * poster: the first candidate that is not dark, else the brightest.
 */
export async function makeCandidates(
  tools: MediaTools,
  source: PosterSource,
  outDir: string,
): Promise<{ times: number[]; chosen: number }> {
  const found: { time: number; luma: number }[] = [];
  for (const at of candidateTimes(source.duration)) {
    const outPath = `${outDir}/${candidateFile(found.length)}`;
    const result = await ffmpeg(tools, detailedFrameArgs(tools, source, { at, outPath }));
    // Past the last frame ffmpeg exits 0 and writes nothing: that candidate is skipped.
    if (!(await isNonEmptyFile(outPath))) continue;
    const luma = frameLuma(result.stdout) || 255;
    // The output restarts at 0 after an input seek: the pick is that far past `at`.
    const offset = Number(/pts_time:([\d.]+)/.exec(result.stdout)?.[1] ?? 0);
    found.push({ time: ms(at + (Number.isFinite(offset) ? offset : 0)), luma });
  }
  if (found.length === 0) throw new Error("Thumbnail failed: no candidate frame");
  let chosen = found.findIndex((c) => c.luma >= DARK_FRAME_LUMA);
  if (chosen < 0) chosen = found.reduce((best, c, i) => c.luma > found[best]!.luma ? i : best, 0);
  return { times: found.map((c) => c.time), chosen };
}

/** The size of the small frame a ThumbHash is made from, keeping the display aspect ratio. */
function hashSize(source: PosterSource): { width: number; height: number } {
  const w = source.width ?? 1, h = source.height ?? 1;
  const scale = THUMBHASH_SIDE / Math.max(w, h);
  return {
    width: Math.max(1, Math.round(w * scale)),
    height: Math.max(1, Math.round(h * scale)),
  };
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

/**
 * Writes `poster.jpg` (at most {@linkcode POSTER_LONG_SIDE} on the long side)
 * and `thumbnail.jpg` (320 px wide) of the frame at `at` into `outDir`, in
 * one ffmpeg run that also writes a small RGBA frame for the ThumbHash.
 * A time past the last frame falls back to the first one. Returns the time
 * used and the ThumbHash in base64.
 */
export async function makePoster(
  tools: MediaTools,
  source: PosterSource,
  options: { at: number; outDir: string },
): Promise<{ time: number; thumbhash: string }> {
  const { outDir } = options;
  const hash = hashSize(source);
  const rgbaPath = `${outDir}/.thumbhash.rgba`;
  const posterPath = `${outDir}/${POSTER_FILE}`;
  try {
    for (const at of [...new Set([ms(Math.max(0, options.at)), 0])]) {
      await ffmpeg(tools, [
        "-ss",
        at.toFixed(3),
        ...hardenedInputArgs(source, tools.limits),
        "-filter_complex",
        `[0:V:0]split=3[p][t][h];` +
        `[p]scale='min(${POSTER_LONG_SIDE},iw)':'min(${POSTER_LONG_SIDE},ih)'` +
        `:force_original_aspect_ratio=decrease:force_divisible_by=2[poster];` +
        `[t]scale=${THUMBNAIL_WIDTH}:-2[thumb];` +
        `[h]scale=${hash.width}:${hash.height},format=rgba[hash]`,
        "-map_metadata",
        "-1",
        "-map",
        "[poster]",
        "-frames:v",
        "1",
        ...jpegOutputArgs(posterPath, 3),
        "-map",
        "[thumb]",
        "-frames:v",
        "1",
        ...jpegOutputArgs(`${outDir}/${THUMBNAIL_FILE}`, 4),
        "-map",
        "[hash]",
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgba",
        "-y",
        `file:${rgbaPath}`,
      ]);
      if (!(await isNonEmptyFile(posterPath))) continue;
      const rgba = await Deno.readFile(rgbaPath);
      if (rgba.length !== hash.width * hash.height * 4) {
        throw new Error(`Unexpected ThumbHash frame of ${rgba.length} bytes`);
      }
      return { time: at, thumbhash: base64(rgbaToThumbHash(hash.width, hash.height, rgba)) };
    }
    throw new Error("Poster failed: ffmpeg wrote no frame");
  } finally {
    await Deno.remove(rgbaPath).catch(() => {});
  }
}

/** Writes one 320 px wide JPEG of the frame at `at` (the thumbnail route's `?time=`); false when there is none. */
export async function renderFrame(
  tools: MediaTools,
  source: ToolInput,
  options: { at: number; outPath: string },
): Promise<boolean> {
  await ffmpeg(tools, [
    "-ss",
    options.at.toFixed(3),
    ...hardenedInputArgs(source, tools.limits),
    "-map",
    "0:V:0",
    "-frames:v",
    "1",
    "-vf",
    `scale=${THUMBNAIL_WIDTH}:-2`,
    "-map_metadata",
    "-1",
    ...jpegOutputArgs(options.outPath, 4),
  ]);
  return await isNonEmptyFile(options.outPath);
}
