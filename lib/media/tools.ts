import { DEMUXER_ALLOWLIST } from "./sniff.ts";

/** Where the media binaries are and how long they may run. */
export interface MediaTools {
  ffmpegPath: string;
  ffprobePath: string;
  probeTimeoutMs: number;
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
