import type { RenditionPolicy } from "../config/config.ts";
import type { MediaLimits } from "./limits.ts";
import { containerNamed } from "./containers.ts";
import { probeVideo } from "./probe.ts";
import { runTool } from "./run_tool.ts";
import { FFMPEG_QUIET, hardenedInputArgs, type MediaTools } from "./tools.ts";

/** The progressive rendition as made: what the Attachment JSON lists for it. */
export interface PlaybackMeta {
  width: number | null;
  height: number | null;
  /** Overall bitrate, kbit/s. */
  bitrate: number | null;
  codec: string;
  bytes: number;
}

/**
 * What no output made for receivers carries over from the upload: subtitle
 * and data streams, container and stream tags, chapters (they may hold a
 * location). Shared by the progressive rendition and the adaptive ladder.
 */
export const NO_UPLOADER_EXTRAS: readonly string[] = [
  "-sn",
  "-dn",
  "-map_metadata",
  "-1",
  "-map_chapters",
  "-1",
];

/** The colour tags of a transcoded output: SDR BT.709, what it now is. */
export const BT709_TAGS: readonly string[] = [
  "-color_primaries",
  "bt709",
  "-color_trc",
  "bt709",
  "-colorspace",
  "bt709",
];

/** ffmpeg's progress as `key=value` lines on stdout, for `progressParser`. */
export const PROGRESS_ON_STDOUT: readonly string[] = ["-nostats", "-progress", "pipe:1"];

/** The AAC bitrate of a rendition, kbit/s. */
const AUDIO_KBPS = 128;

/**
 * The longest side a rendition may have: 16/9 of the policy's shorter side,
 * even (1920 for 1080, 1280 for 720).
 */
export function renditionLongSide(policy: Pick<RenditionPolicy, "maxHeight">): number {
  return Math.round((policy.maxHeight * 16) / 9 / 2) * 2;
}

/**
 * The peak video bitrate of a rendition, kbit/s: the policy's bitrate less
 * the audio, so the whole file stays within it (but never under half of it).
 */
export function renditionVideoKbps(
  policy: Pick<RenditionPolicy, "maxBitrate">,
  hasAudio: boolean,
): number {
  const cap = policy.maxBitrate;
  return Math.max(Math.round(cap / 2), cap - (hasAudio ? AUDIO_KBPS : 0));
}

/** What a rendition is made from. */
export interface RenditionSource {
  path: string;
  demuxer: string;
  /** Display dimensions (after rotation). */
  width: number;
  height: number;
  hasAudio: boolean;
  /** Source frame rate, when known; above the policy's the rendition is resampled to it. */
  fps?: number | null;
  /** PQ or HLG source: tone-mapped to SDR BT.709. */
  hdr?: boolean;
}

/** zimg's tone mapping from HDR (PQ/HLG, BT.2020) to SDR BT.709, for browsers without HDR. */
export const TONEMAP = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709," +
  "tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv";

/** The video filter chain of a transcode: tone map if HDR, scale, cap the frame rate, 8-bit 4:2:0. */
export function renditionFilter(source: RenditionSource, policy: RenditionPolicy): string {
  const size = renditionSize(source, policy);
  const filters = [
    ...(source.hdr ? [TONEMAP] : []),
    `scale=${size.width}:${size.height}`,
    ...(source.fps && source.fps > policy.maxFps ? [`fps=${policy.maxFps}`] : []),
    "format=yuv420p",
  ];
  return filters.join(",");
}

/**
 * Output size for a display size: the shorter side capped at the policy's
 * `maxHeight` and the longer at 16/9 of it (1080p in either orientation by
 * default), never upscaled, even numbers (H.264 4:2:0 needs them), aspect kept.
 *
 * @example
 * ```ts
 * renditionSize({ width: 3840, height: 2160 }, { maxHeight: 1080 }); // { width: 1920, height: 1080 }
 * renditionSize({ width: 1080, height: 1920 }, { maxHeight: 1080 }); // { width: 1080, height: 1920 }
 * ```
 */
export function renditionSize(
  display: { width: number; height: number },
  policy: Pick<RenditionPolicy, "maxHeight">,
): { width: number; height: number } {
  const { width, height } = display;
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  const factor = Math.min(1, renditionLongSide(policy) / long, policy.maxHeight / short);
  const even = (n: number): number => Math.max(2, Math.round((n * factor) / 2) * 2);
  return { width: even(width), height: even(height) };
}

/**
 * The arguments around the codec options of a rendition: hardened input, the
 * first real video stream and the first audio stream only (capital V: never
 * an attached picture), no subtitles or data, no uploader tags or chapters
 * (they may carry location), the `moov` box first, progress on stdout.
 */
function renditionArgs(
  source: RenditionSource,
  options: { outPath: string; limits: MediaLimits; codecArgs: string[] },
): string[] {
  const { outPath, limits, codecArgs } = options;
  return [
    ...FFMPEG_QUIET,
    ...PROGRESS_ON_STDOUT,
    ...hardenedInputArgs(source, limits),
    "-map",
    "0:V:0",
    ...(source.hasAudio ? ["-map", "0:a:0"] : []),
    ...codecArgs,
    ...NO_UPLOADER_EXTRAS,
    "-movflags",
    "+faststart",
    "-f",
    "mp4",
    "-y",
    `file:${outPath}`,
  ];
}

/** Options for {@linkcode transcodeArgs}. */
export interface TranscodeOptions {
  limits: MediaLimits;
  /** The compact-rendition policy the output must keep to. */
  policy: RenditionPolicy;
}

/**
 * ffmpeg arguments for a browser-playable H.264 High/AAC MP4 within the
 * compact-rendition policy: scaled and frame-rate capped by the filter,
 * quality-driven (CRF 23) but with the video's rate capped by the VBV
 * (`-maxrate`, over a two-second `-bufsize`), so a busy scene never takes it
 * over the policy's bitrate. ffmpeg applies the display rotation before the
 * filters, so the output is upright with no rotation flag. HDR is tone-mapped
 * and every output is tagged BT.709, what it now is.
 */
export function transcodeArgs(
  source: RenditionSource,
  outPath: string,
  options: TranscodeOptions,
): string[] {
  const { limits, policy } = options;
  const videoKbps = renditionVideoKbps(policy, source.hasAudio);
  return renditionArgs(source, {
    outPath,
    limits,
    codecArgs: [
      "-vf",
      renditionFilter(source, policy),
      ...BT709_TAGS,
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-crf",
      "23",
      "-maxrate",
      `${videoKbps}k`,
      "-bufsize",
      `${videoKbps * 2}k`,
      "-profile:v",
      "high",
      ...(source.hasAudio ? ["-c:a", "aac", "-b:a", `${AUDIO_KBPS}k`, "-ac", "2"] : []),
    ],
  });
}

/**
 * ffmpeg arguments that copy the streams into a faststart MP4 without
 * re-encoding (the display rotation travels with the video stream).
 */
export function remuxArgs(
  source: RenditionSource,
  outPath: string,
  limits: MediaLimits,
): string[] {
  return renditionArgs(source, { outPath, limits, codecArgs: ["-c", "copy"] });
}

/** How long a rendition may take: ten times the duration, at least a minute, at most six hours. */
export function renditionTimeoutMs(durationSeconds: number | null): number {
  return Math.min(6 * 3600_000, Math.max(60_000, (durationSeconds ?? 0) * 10_000));
}

/**
 * Reads ffmpeg `-progress` output and reports the fraction done (0–1), given
 * the source duration.
 */
export function progressParser(
  durationSeconds: number | null,
  onProgress: (fraction: number) => void,
): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder();
  let pending = "";
  return (chunk) => {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      const match = /^out_time_(?:us|ms)=(\d+)$/.exec(line.trim());
      if (match && durationSeconds && durationSeconds > 0) {
        onProgress(Math.min(1, Number(match[1]) / 1e6 / durationSeconds));
      } else if (line.trim() === "progress=end") {
        onProgress(1);
      }
    }
  };
}

/** Options for {@linkcode makeRendition}. */
export interface MakeRenditionOptions {
  /** `remux` copies the streams; `transcode` encodes within `policy`. */
  plan: "remux" | "transcode";
  outPath: string;
  policy: RenditionPolicy;
  /** Seconds, for the timeout and the progress fraction. */
  duration: number | null;
  onProgress: (fraction: number) => void;
  signal?: AbortSignal;
}

/**
 * Runs ffmpeg for the progressive rendition of `source` into `outPath`: the
 * one run of it, whether a worker of the service or a remote runner makes
 * it (lib/runners/runner.ts), so both get the same flags, limits and
 * timeout. Throws with the end of ffmpeg's stderr when it fails.
 */
export async function makeRendition(
  tools: MediaTools,
  source: RenditionSource,
  options: MakeRenditionOptions,
): Promise<void> {
  const { plan, outPath, policy, duration } = options;
  const args = plan === "remux"
    ? remuxArgs(source, outPath, tools.limits)
    : transcodeArgs(source, outPath, { limits: tools.limits, policy });
  const result = await runTool(tools.ffmpegPath, args, {
    timeoutMs: renditionTimeoutMs(duration),
    maxStdoutBytes: 64 * 1024,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
    onStdout: progressParser(duration, options.onProgress),
    signal: options.signal,
  });
  if (result.timedOut) throw new Error("ffmpeg timed out making the playable rendition");
  if (result.code !== 0) {
    throw new Error(`ffmpeg exited with ${result.code}: ${result.stderr.trim().slice(-500)}`);
  }
}

/**
 * Checks a rendition as an upload is checked (ffprobe under the demuxer
 * allowlist and the limits): it must be an MP4 with an H.264 video stream.
 * Returns what the Attachment JSON lists for it. The service runs it on
 * every rendition before storing it, its own worker's and a runner's alike.
 */
export async function checkRendition(tools: MediaTools, path: string): Promise<PlaybackMeta> {
  const output = await probeVideo(tools, path, { container: containerNamed("mp4") });
  if (output.codec !== "h264") throw new Error(`Rendition has codec "${output.codec}"`);
  return {
    width: output.width,
    height: output.height,
    bitrate: output.bitrate,
    codec: output.codec,
    bytes: (await Deno.stat(path)).size,
  };
}
