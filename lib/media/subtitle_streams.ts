import { runTool } from "./run_tool.ts";
import { FFMPEG_QUIET, hardenedInputArgs, type MediaTools, type ToolInput } from "./tools.ts";
import { type Cue, parseSubtitles, type SubtitleLimits } from "./subtitle_text.ts";

/** Text subtitle codecs ffmpeg can turn into WebVTT; any other subtitle stream is an image one. */
const TEXT_CODECS = new Set(["mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"]);

/**
 * The limits of an extracted track: more cues than a sidecar may have (a
 * long film with sound descriptions), still bounded.
 */
export const EMBEDDED_LIMITS: SubtitleLimits = { maxCues: 20_000, maxCueChars: 1000 };

/** Largest WebVTT file ffmpeg may write for one track (`-fs`). */
const MAX_TRACK_BYTES = 4 * 1024 * 1024;

/** A subtitle stream of an upload: its position among the subtitle streams, and what it says of itself. */
export interface SubtitleStream {
  /** N of `-map 0:s:N`. */
  index: number;
  codec: string;
  /** Whether it is text (extracted) rather than images (skipped). */
  text: boolean;
  language: string | null;
  title: string | null;
}

interface ProbedStream {
  codec_name?: string;
  tags?: Record<string, string>;
}

/** The subtitle streams ffprobe finds in `source` (only the codec, language and title of each). */
export async function probeSubtitleStreams(
  tools: MediaTools,
  source: ToolInput,
): Promise<SubtitleStream[]> {
  const result = await runTool(tools.ffprobePath, [
    "-hide_banner",
    "-v",
    "error",
    ...hardenedInputArgs(source, tools.limits),
    "-select_streams",
    "s",
    "-show_entries",
    "stream=codec_name:stream_tags=language,title",
    "-of",
    "json",
  ], {
    timeoutMs: tools.probeTimeoutMs,
    maxStdoutBytes: 256 * 1024,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.timedOut) throw new Error("ffprobe timed out listing subtitle streams");
  if (result.code !== 0 || result.stdoutTruncated) {
    throw new Error(`ffprobe exited with ${result.code}: ${result.stderr.trim()}`);
  }
  const streams = (JSON.parse(result.stdout) as { streams?: ProbedStream[] }).streams ?? [];
  return streams.map((stream, index) => {
    const codec = stream.codec_name ?? "unknown";
    const tag = (name: string) => {
      const entry = Object.entries(stream.tags ?? {}).find(([key]) => key.toLowerCase() === name);
      return entry?.[1] ?? null;
    };
    return {
      index,
      codec,
      text: TEXT_CODECS.has(codec),
      language: tag("language"),
      title: tag("title"),
    };
  });
}

/**
 * Extracts subtitle stream `index` of `source` as WebVTT into `outPath`
 * (`-map 0:s:N -c:s webvtt`, at most {@linkcode MAX_TRACK_BYTES}), then reads
 * it back through our own parser, so an extracted track is sanitised
 * exactly like a sidecar file. Throws when ffmpeg fails.
 */
export async function extractSubtitleStream(
  tools: MediaTools,
  source: ToolInput,
  track: { index: number; outPath: string },
): Promise<Cue[]> {
  const result = await runTool(tools.ffmpegPath, [
    ...FFMPEG_QUIET,
    ...hardenedInputArgs(source, tools.limits),
    "-map",
    `0:s:${track.index}`,
    "-c:s",
    "webvtt",
    "-fs",
    String(MAX_TRACK_BYTES),
    "-f",
    "webvtt",
    "-y",
    `file:${track.outPath}`,
  ], {
    timeoutMs: 120_000,
    maxStdoutBytes: 4096,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.timedOut) throw new Error("ffmpeg timed out extracting subtitles");
  if (result.code !== 0) {
    throw new Error(`ffmpeg exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return parseSubtitles(await Deno.readFile(track.outPath), EMBEDDED_LIMITS);
}
