/**
 * The copy of an original that receivers get: the same packets in the same
 * container, without anything that says where, on what or by whom it was
 * recorded. A remux (stream copy), never a re-encode, so the media bytes are
 * the uploader's, frame for frame.
 *
 * @module
 */
import type { Container } from "./containers.ts";
import { runTool } from "./run_tool.ts";
import { FFMPEG_QUIET, hardenedInputArgs, type MediaTools, type ToolInput } from "./tools.ts";

/** How long a stripping remux may take: it copies packets, so a minute is generous. */
const STRIP_TIMEOUT_MS = 5 * 60_000;

/** The language tag of each kept stream, read from the original (ISO 639-2, or none). */
async function streamLanguages(tools: MediaTools, input: ToolInput): Promise<(string | null)[]> {
  const result = await runTool(tools.ffprobePath, [
    "-hide_banner",
    "-v",
    "error",
    ...hardenedInputArgs(input, tools.limits),
    "-show_entries",
    "stream=codec_type,disposition:stream_tags=language",
    "-of",
    "json",
  ], {
    timeoutMs: tools.probeTimeoutMs,
    maxStdoutBytes: 256 * 1024,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.code !== 0 || result.timedOut || result.stdoutTruncated) {
    throw new Error("ffprobe could not list the streams to keep");
  }
  const streams = (JSON.parse(result.stdout) as {
    streams?: {
      codec_type?: string;
      disposition?: { attached_pic?: number };
      tags?: { language?: string };
    }[];
  }).streams ?? [];
  // The same selection as the -map options below: real video streams, then audio.
  const kept = [
    ...streams.filter((s) => s.codec_type === "video" && !s.disposition?.attached_pic),
    ...streams.filter((s) => s.codec_type === "audio"),
  ];
  return kept.map((s) => {
    const language = s.tags?.language;
    return language && /^[a-z]{3}$/.test(language) && language !== "und" ? language : null;
  });
}

/**
 * ffmpeg arguments that copy the real video streams and the audio streams
 * of `input` into `outPath`, in the same container, and drop everything
 * else: container and stream tags (QuickTime `mdta` keys and `udta` atoms
 * such as `©xyz`, Matroska tags, titles, comments, creation dates, encoder
 * and device names), chapters, XMP and other boxes the muxer does not know,
 * subtitle, data and attachment streams (timed location tracks), cover art.
 * What playback needs is kept: the display matrix (rotation) travels as
 * stream side data, colour information is part of the codec parameters, and
 * each stream's language is written back from `languages`.
 */
export function stripArgs(
  input: ToolInput & { container: Container },
  options: { outPath: string; languages: (string | null)[]; limits: MediaTools["limits"] },
): string[] {
  const { outPath, languages, limits } = options;
  const iso = input.container.muxer === "mp4" || input.container.muxer === "mov";
  return [
    ...FFMPEG_QUIET,
    ...hardenedInputArgs(input, limits),
    "-map",
    "0:V",
    "-map",
    "0:a?",
    "-c",
    "copy",
    "-map_metadata",
    "-1",
    "-map_chapters",
    "-1",
    "-sn",
    "-dn",
    // No "Lavf…" encoder tag, no muxing time: nothing but the packets and what plays them.
    "-fflags",
    "+bitexact",
    ...languages.flatMap((language, i) =>
      language ? [`-metadata:s:${i}`, `language=${language}`] : []
    ),
    ...(iso ? ["-movflags", "+faststart"] : []),
    "-f",
    input.container.muxer,
    "-y",
    `file:${outPath}`,
  ];
}

/** Writes the receivers' copy of `input` to `outPath` (see {@linkcode stripArgs}). */
export async function makeStrippedCopy(
  tools: MediaTools,
  input: ToolInput & { container: Container },
  outPath: string,
): Promise<void> {
  const languages = await streamLanguages(tools, input);
  const result = await runTool(
    tools.ffmpegPath,
    stripArgs(input, { outPath, languages, limits: tools.limits }),
    {
      timeoutMs: STRIP_TIMEOUT_MS,
      maxStdoutBytes: 64 * 1024,
      addressSpaceBytes: tools.limits.toolMemoryBytes,
    },
  );
  if (result.timedOut) throw new Error("ffmpeg timed out stripping the metadata");
  if (result.code !== 0) {
    throw new Error(`ffmpeg exited with ${result.code}: ${result.stderr.trim().slice(-500)}`);
  }
  const written = await Deno.stat(outPath).catch(() => null);
  if (!written || written.size === 0) throw new Error("ffmpeg wrote no stripped copy");
}
