import type { RenditionPolicy } from "../config/config.ts";
import type { VideoMetadata } from "./probe.ts";
import { renditionLongSide } from "./rendition.ts";

/** How an attachment becomes playable in browsers. */
export type PlaybackPlan = "original" | "remux" | "transcode";

/** Pixel formats every browser decodes in H.264 (8-bit 4:2:0). */
const PLAYABLE_PIX_FMTS = new Set(["yuv420p", "yuvj420p"]);
/** Audio codecs every browser plays inside MP4. */
const PLAYABLE_AUDIO = new Set(["aac", "mp3"]);

/** What {@linkcode planPlayback} looks at besides the streams. */
export interface PlaybackOptions {
  /** The sniffed container's name (`mp4`, `mov`, `mkv`, …). */
  container: string;
  /** An ISO file whose `moov` box comes before its media data. */
  moovFirst: boolean;
  /** Above any of its limits the original is never streamed as it is. */
  policy: RenditionPolicy;
}

/** The parts of the metadata a plan depends on (unknown numbers are null). */
export type PlaybackMetadata =
  & Pick<VideoMetadata, "codec" | "pixFmt" | "audioCodec">
  & {
    width?: number | null;
    height?: number | null;
    fps?: number | null;
    /** Overall bitrate, kbit/s. */
    bitrate?: number | null;
    hdr?: boolean;
  };

/**
 * Whether a video is over the compact-rendition policy: its shorter side
 * above `maxHeight` or its longer side above 16/9 of it, its overall
 * bitrate above `maxBitrate` kbit/s, or its frame rate above `maxFps`.
 * Unknown values are not held against it.
 */
export function exceedsPolicy(metadata: PlaybackMetadata, policy: RenditionPolicy): boolean {
  const width = metadata.width ?? 0;
  const height = metadata.height ?? 0;
  return Math.min(width, height) > policy.maxHeight ||
    Math.max(width, height) > renditionLongSide(policy) ||
    (metadata.bitrate ?? 0) > policy.maxBitrate ||
    (metadata.fps ?? 0) > policy.maxFps;
}

/**
 * Decides what a browser needs. Only H.264 8-bit 4:2:0 video with AAC/MP3 (or
 * no) audio in an MP4 plays in current Chrome, Firefox and Safari alike, on
 * every platform, so that alone is served as uploaded. The same streams in a
 * MOV or MKV, or an MP4 whose `moov` box is at the end, are remuxed into a
 * faststart MP4 without re-encoding. Everything else (HEVC, VP8/VP9/AV1, MPEG-4 Part 2,
 * Theora, 10-bit or 4:2:2 video, other audio) is transcoded to H.264/AAC:
 * VP9/AV1 WebM plays in Chrome and Firefox, but not in every Safari, and one
 * rendition that plays everywhere beats a per-browser choice. So is a video
 * over the compact-rendition policy (size, bitrate or frame rate), however
 * playable: receivers stream a rendition within it.
 */
export function planPlayback(metadata: PlaybackMetadata, options: PlaybackOptions): PlaybackPlan {
  const { container, moovFirst, policy } = options;
  const videoOk = metadata.codec === "h264" && PLAYABLE_PIX_FMTS.has(metadata.pixFmt ?? "") &&
    !metadata.hdr;
  const audioOk = metadata.audioCodec === null || PLAYABLE_AUDIO.has(metadata.audioCodec);
  if (!videoOk || !audioOk || exceedsPolicy(metadata, policy)) return "transcode";
  if (container === "mp4" && moovFirst) return "original";
  // AVI has no reliable timestamps to copy; the others remux cleanly.
  return container === "avi" ? "transcode" : "remux";
}
