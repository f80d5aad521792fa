import type { VideoMetadata } from "./probe.ts";

/** How an attachment becomes playable in browsers. */
export type PlaybackPlan = "original" | "remux" | "transcode";

/** Pixel formats every browser decodes in H.264 (8-bit 4:2:0). */
const PLAYABLE_PIX_FMTS = new Set(["yuv420p", "yuvj420p"]);
/** Audio codecs every browser plays inside MP4. */
const PLAYABLE_AUDIO = new Set(["aac", "mp3"]);

/**
 * Decides what a browser needs. Only H.264 8-bit 4:2:0 video with AAC/MP3 (or
 * no) audio in an MP4 plays in current Chrome, Firefox and Safari alike, on
 * every platform, so that alone is served as uploaded. The same streams in a
 * MOV or MKV, or an MP4 whose `moov` box is at the end, are remuxed into a
 * faststart MP4 without re-encoding. Everything else (HEVC, VP8/VP9/AV1, MPEG-4 Part 2,
 * Theora, 10-bit or 4:2:2 video, other audio) is transcoded to H.264/AAC:
 * VP9/AV1 WebM plays in Chrome and Firefox, but not in every Safari, and one
 * rendition that plays everywhere beats a per-browser choice.
 */
export function planPlayback(
  container: string,
  metadata: Pick<VideoMetadata, "codec" | "pixFmt" | "audioCodec"> & { hdr?: boolean },
  moovFirst: boolean,
): PlaybackPlan {
  const videoOk = metadata.codec === "h264" && PLAYABLE_PIX_FMTS.has(metadata.pixFmt ?? "") &&
    !metadata.hdr;
  const audioOk = metadata.audioCodec === null || PLAYABLE_AUDIO.has(metadata.audioCodec);
  if (!videoOk || !audioOk) return "transcode";
  if (container === "mp4" && moovFirst) return "original";
  // AVI has no reliable timestamps to copy; the others remux cleanly.
  return container === "avi" ? "transcode" : "remux";
}
