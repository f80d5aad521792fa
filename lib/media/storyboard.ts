import { runTool } from "./run_tool.ts";
import {
  FFMPEG_QUIET,
  hardenedInputArgs,
  isNonEmptyFile,
  jpegOutputArgs,
  type MediaTools,
} from "./tools.ts";

/** Width of a storyboard tile, in pixels, for every video not taller than 1:4. */
export const STORYBOARD_TILE_WIDTH = 160;

/**
 * The most tiles a storyboard has, whatever the duration: past it the
 * interval grows instead, so the sprite stays at most 10 × 10 tiles.
 */
export const STORYBOARD_MAX_TILES = 100;

/** Tiles per sprite row: wide enough for a seek bar, narrow enough for a JPEG. */
const MAX_COLUMNS = 10;

/**
 * Cap on a tile's height, so that an absurdly tall video (8192 × 2, say)
 * cannot ask for a sprite taller than a JPEG can be (65 535 px).
 */
const MAX_TILE_HEIGHT = 4 * STORYBOARD_TILE_WIDTH;

/** The shortest time between two tiles: finer than a second is noise on a seek bar. */
const MIN_INTERVAL_MS = 1000;

/** How the frames of a storyboard sit in its sprite and when each one applies. */
export interface StoryboardLayout {
  /** Seconds between two tiles (a whole number of milliseconds). */
  interval: number;
  columns: number;
  rows: number;
  /** Tiles that carry a frame; the last row may end with empty cells. */
  count: number;
  /** Pixels. */
  tileWidth: number;
  /** Pixels. */
  tileHeight: number;
  /** Seconds, rounded to the millisecond: where the last cue ends. */
  duration: number;
}

function even(n: number): number {
  return Math.max(2, Math.round(n / 2) * 2);
}

function tileSize(display: { width: number; height: number }): {
  tileWidth: number;
  tileHeight: number;
} {
  const { width, height } = display;
  const tileHeight = even((STORYBOARD_TILE_WIDTH * height) / width);
  if (tileHeight <= MAX_TILE_HEIGHT) return { tileWidth: STORYBOARD_TILE_WIDTH, tileHeight };
  return { tileWidth: even((MAX_TILE_HEIGHT * width) / height), tileHeight: MAX_TILE_HEIGHT };
}

/** What {@linkcode planStoryboard} needs of a video. */
export interface StoryboardVideo {
  /** Seconds. */
  duration: number;
  /** Display width in pixels, after rotation. */
  width: number;
  /** Display height in pixels, after rotation. */
  height: number;
}

/**
 * Plans a storyboard so that its size is bounded whatever the duration: one
 * tile per second for clips up to 100 s, then 100 tiles spread evenly (an
 * interval of duration / 100, rounded up to the millisecond), so the sprite
 * never holds more than {@linkcode STORYBOARD_MAX_TILES} tiles in at most 10
 * columns and 10 rows. Any clip, even a sub-second one, gets at least one tile.
 *
 * Tiles are 160 px wide and keep the display aspect ratio with an even
 * height; a video taller than 1:4 gets 640 px tall tiles narrower than 160 px
 * instead, which keeps the sprite within what a JPEG can hold.
 *
 * @example
 * ```ts
 * planStoryboard({ duration: 600, width: 1920, height: 1080 });
 * // { interval: 6, columns: 10, rows: 10, count: 100, tileWidth: 160, tileHeight: 90, duration: 600 }
 * ```
 */
export function planStoryboard(video: StoryboardVideo): StoryboardLayout {
  const { duration, width, height } = video;
  if (!Number.isFinite(duration) || duration <= 0) {
    throw new Error(`Cannot plan a storyboard for duration "${duration}"`);
  }
  for (const side of [width, height]) {
    if (!Number.isFinite(side) || side < 1) {
      throw new Error(
        `Cannot plan a storyboard for dimensions "${width}x${height}"`,
      );
    }
  }
  // Whole milliseconds keep the arithmetic exact: count can never reach 101
  // through rounding, and every cue time is exactly representable in WebVTT.
  const durationMs = Math.max(1, Math.round(duration * 1000));
  const intervalMs = Math.max(MIN_INTERVAL_MS, Math.ceil(durationMs / STORYBOARD_MAX_TILES));
  const count = Math.min(STORYBOARD_MAX_TILES, Math.max(1, Math.ceil(durationMs / intervalMs)));
  const columns = Math.min(MAX_COLUMNS, count);
  return {
    interval: intervalMs / 1000,
    columns,
    rows: Math.ceil(count / columns),
    count,
    ...tileSize(video),
    duration: durationMs / 1000,
  };
}

/**
 * The `fps` filter's options that put the frame shown at cue i×interval in
 * tile i. `round=up` takes the last frame at or before each tick (the default,
 * `near`, takes one half an interval later); `start_time=0` repeats the first
 * frame when the video starts after the audio, instead of shifting every tile
 * one interval late; `eof_action=pass` still emits the pending frame at the
 * end, without which a sub-second clip gives no frame at all.
 */
function fpsFilter(intervalMs: number): string {
  return `fps=fps=1000/${intervalMs}:start_time=0:round=up:eof_action=pass`;
}

/**
 * Writes the storyboard sprite of `source` to `outPath` (a JPEG of
 * `columns × tileWidth` by `rows × tileHeight` pixels, empty cells black) in
 * one ffmpeg run that decodes the video once, and returns the layout to give
 * {@linkcode storyboardVtt}. `width`/`height` are the display dimensions:
 * ffmpeg rotates before the filters, so a portrait phone video gets portrait
 * tiles. Throws with the end of ffmpeg's stderr when no sprite was written,
 * and leaves no partial file behind.
 */
export async function makeStoryboard(
  tools: MediaTools,
  source: { path: string; demuxer: string; duration: number; width: number; height: number },
  outPath: string,
): Promise<StoryboardLayout> {
  const layout = planStoryboard(source);
  const intervalMs = Math.round(layout.interval * 1000);
  await Deno.remove(outPath).catch(() => {});
  const result = await runTool(tools.ffmpegPath, [
    ...FFMPEG_QUIET,
    ...hardenedInputArgs(source, tools.limits),
    // `V`, not `v`: cover art attached to a video is not the video.
    "-map",
    "0:V:0",
    "-vf",
    [
      fpsFilter(intervalMs),
      `scale=${layout.tileWidth}:${layout.tileHeight}`,
      // Square pixels: browsers ignore a JPEG's aspect ratio, and `#xywh=` counts pixels.
      "setsar=1",
      `tile=${layout.columns}x${layout.rows}`,
    ].join(","),
    "-frames:v",
    "1",
    ...jpegOutputArgs(outPath, 5),
  ], {
    timeoutMs: Math.max(60_000, layout.duration * 2000),
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  let problem = "";
  if (result.timedOut) problem = "ffmpeg timed out";
  else if (result.code !== 0) {
    problem = `ffmpeg exited with ${result.code}: ${result.stderr.trim()}`;
  } else if (!(await isNonEmptyFile(outPath))) {
    problem = `ffmpeg wrote no sprite: ${result.stderr.trim()}`;
  }
  if (problem) {
    await Deno.remove(outPath).catch(() => {});
    throw new Error(`Storyboard failed: ${problem.slice(-500)}`);
  }
  return layout;
}

function vttTime(ms: number): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor(ms / 60_000) % 60;
  const seconds = Math.floor(ms / 1000) % 60;
  return `${pad(hours)}:${pad(minutes)}:${pad(seconds)}.${pad(ms % 1000, 3)}`;
}

/**
 * The WebVTT seek-preview track for a sprite: one cue per tile whose payload
 * is the sprite's URL with a `#xywh=` media fragment naming the tile, the form
 * video players (Video.js, Plyr, Vidstack, JW Player) read thumbnails in.
 *
 * `spriteUrl` is written into every cue as it is, so one that could end a cue
 * or start a new one (a line break, `-->`) is refused, as is one that already
 * has a fragment, which `#xywh=` would not survive.
 *
 * @example
 * ```ts
 * storyboardVtt(planStoryboard(2, 320, 240), "https://x/s.jpg?token=t");
 * // "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhttps://x/s.jpg?token=t#xywh=0,0,160,120\n\n…"
 * ```
 */
export function storyboardVtt(layout: StoryboardLayout, spriteUrl: string): string {
  if (spriteUrl === "") throw new Error("Sprite URL is empty");
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(spriteUrl)) {
    throw new Error("Sprite URL contains a control character, which could end a WebVTT cue");
  }
  if (spriteUrl.includes("-->")) {
    throw new Error('Sprite URL contains "-->", which would start a WebVTT cue timing');
  }
  if (spriteUrl.includes("#")) {
    throw new Error('Sprite URL already has a fragment "#", which "#xywh=" cannot follow');
  }
  const intervalMs = Math.round(layout.interval * 1000);
  const durationMs = Math.round(layout.duration * 1000);
  const cues: string[] = [];
  for (let i = 0; i < layout.count; i++) {
    const start = vttTime(i * intervalMs);
    const end = vttTime(Math.min((i + 1) * intervalMs, durationMs));
    const x = (i % layout.columns) * layout.tileWidth;
    const y = Math.floor(i / layout.columns) * layout.tileHeight;
    cues.push(
      `${start} --> ${end}\n${spriteUrl}#xywh=${x},${y},${layout.tileWidth},${layout.tileHeight}`,
    );
  }
  return `WEBVTT\n\n${cues.join("\n\n")}\n`;
}
