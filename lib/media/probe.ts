import { ApiError } from "../core/errors.ts";
import { MAX_DIMENSION, type ProbeInventory } from "./limits.ts";
import { runTool } from "./run_tool.ts";
import type { Container } from "./containers.ts";
import { hardenedInputArgs, type MediaTools } from "./tools.ts";

/** What ffprobe tells about an accepted video. */
export interface VideoMetadata {
  duration: number;
  /** Display width: coded width, or coded height when rotated by ±90°. */
  width: number;
  height: number;
  rotation: number;
  /** Overall bitrate in kbit/s, or null when unknown. */
  bitrate: number | null;
  codec: string;
  audioCodec: string | null;
  fps: number | null;
  pixFmt: string | null;
  colorSpace: string | null;
  /** PQ (HDR10) or HLG transfer. */
  hdr: boolean;
  hasAudio: boolean;
  audioChannels: number | null;
  audioSampleRate: number | null;
  /** Every stream, for {@linkcode assertWithinLimits} in `limits.ts`. */
  inventory: ProbeInventory;
}

/** Options for {@linkcode parseProbeOutput}. */
export interface ParseProbeOptions {
  /** Longest side a video may have ({@linkcode MAX_DIMENSION} unless a test lifts it). */
  maxDimension?: number;
  /** ffprobe ran with `-count_packets`: a stream without `nb_read_packets` has none. */
  countedPackets?: boolean;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  color_space?: string;
  color_transfer?: string;
  channels?: number;
  sample_rate?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  disposition?: { attached_pic?: number };
  tags?: Record<string, string>;
  side_data_list?: { rotation?: number }[];
}

interface ProbeOutput {
  streams?: ProbeStream[];
  format?: { duration?: string; bit_rate?: string };
}

function parseRate(rate: string | undefined): number | null {
  const match = rate ? /^(\d+)\/(\d+)$/.exec(rate) : null;
  if (!match || Number(match[2]) === 0) return null;
  const value = Number(match[1]) / Number(match[2]);
  return value > 0 && value < 1000 ? Math.round(value * 100) / 100 : null;
}

function positive(value: string | undefined): number | null {
  const n = value === undefined ? NaN : Number(value);
  return Number.isFinite(n) && n > 0 ? n : null;
}

function rotationOf(stream: ProbeStream): number {
  const raw = stream.side_data_list?.find((d) => typeof d.rotation === "number")?.rotation ??
    (stream.tags?.rotate !== undefined ? Number(stream.tags.rotate) : 0);
  const normalized = ((Math.round(raw / 90) * 90) % 360 + 360) % 360;
  return Number.isFinite(normalized) ? normalized : 0;
}

/**
 * Reads the metadata of an ffprobe JSON document. Throws 422 `invalid_video`
 * when there is no real video stream (cover art does not count), its
 * dimensions are absurd or it has no duration. The configured limits
 * (duration included) are checked on the result by `assertWithinLimits`.
 */
export function parseProbeOutput(json: string, options: ParseProbeOptions = {}): VideoMetadata {
  const maxDimension = options.maxDimension ?? MAX_DIMENSION;
  let output: ProbeOutput;
  try {
    output = JSON.parse(json);
  } catch {
    throw new ApiError("invalid_video", "The file could not be read as a video");
  }
  const streams = output.streams ?? [];
  const video = streams.find((s) =>
    s.codec_type === "video" && s.disposition?.attached_pic !== 1 && s.codec_name !== "mjpeg" &&
    s.codec_name !== "png"
  );
  if (!video) throw new ApiError("invalid_video", "The file has no video stream");
  const audio = streams.find((s) => s.codec_type === "audio");
  const codedWidth = video.width ?? 0;
  const codedHeight = video.height ?? 0;
  if (
    codedWidth < 1 || codedHeight < 1 || codedWidth > maxDimension ||
    codedHeight > maxDimension
  ) {
    throw new ApiError(
      "invalid_video",
      `Video dimensions "${codedWidth}x${codedHeight}" are outside 1..${maxDimension}`,
    );
  }
  const duration = positive(output.format?.duration) ?? positive(video.duration);
  if (duration === null) throw new ApiError("invalid_video", "The video has no duration");
  const rotation = rotationOf(video);
  const sideways = rotation === 90 || rotation === 270;
  const bitRate = positive(output.format?.bit_rate);
  const count = (value: string | undefined): number | null => {
    const n = value === undefined ? NaN : Number(value);
    return Number.isInteger(n) && n >= 0 ? n : null;
  };
  const inventory: ProbeInventory = {
    streams: streams.map((s) => ({
      type: s.codec_type ?? "unknown",
      pixels: (s.width ?? 0) * (s.height ?? 0),
      duration: positive(s.duration),
      declaredFrames: count(s.nb_frames),
      // With -count_packets, ffprobe leaves the field out when it read none.
      packets: count(s.nb_read_packets) ?? (options.countedPackets ? 0 : null),
      attachedPicture: s.disposition?.attached_pic === 1,
    })),
    duration: positive(output.format?.duration),
    videoIndex: streams.indexOf(video),
  };
  return {
    duration: Math.round(duration * 1000) / 1000,
    width: sideways ? codedHeight : codedWidth,
    height: sideways ? codedWidth : codedHeight,
    rotation,
    bitrate: bitRate === null ? null : Math.round(bitRate / 1000),
    codec: video.codec_name ?? "unknown",
    audioCodec: audio?.codec_name ?? null,
    fps: parseRate(video.avg_frame_rate) ?? parseRate(video.r_frame_rate),
    pixFmt: video.pix_fmt ?? null,
    colorSpace: video.color_space ?? null,
    hdr: video.color_transfer === "smpte2084" || video.color_transfer === "arib-std-b67",
    hasAudio: audio !== undefined,
    audioChannels: audio?.channels ?? null,
    audioSampleRate: positive(audio?.sample_rate),
    inventory,
  };
}

/** Options for {@linkcode probeVideo}. */
export interface ProbeVideoOptions {
  /** What the file was sniffed as: it names the one demuxer ffprobe may use. */
  container: Container;
}

/**
 * Runs ffprobe on a sniffed file under the hardened input options and the
 * tools' limits, and returns its metadata; 422 when ffprobe cannot read it or
 * runs past the timeout. Every packet is read (`-count_packets`, demuxing
 * only, no decoding), so the result says how much of what the headers declare
 * is really in the file.
 */
export async function probeVideo(
  tools: MediaTools,
  path: string,
  options: ProbeVideoOptions,
): Promise<VideoMetadata> {
  const { container } = options;
  const run = () =>
    runTool(tools.ffprobePath, [
      "-hide_banner",
      "-v",
      "error",
      ...hardenedInputArgs({ path, demuxer: container.demuxer }, tools.limits),
      "-count_packets",
      "-show_format",
      "-show_streams",
      "-of",
      "json",
    ], {
      timeoutMs: tools.probeTimeoutMs,
      maxStdoutBytes: 2 * 1024 * 1024,
      addressSpaceBytes: tools.limits.toolMemoryBytes,
    });
  const result = tools.probeSlots ? await tools.probeSlots.run(run) : await run();
  if (result.timedOut) {
    throw new ApiError("invalid_video", "Reading the video took too long");
  }
  if (result.code !== 0 || result.stdoutTruncated) {
    throw new ApiError("invalid_video", "The file could not be read as a video");
  }
  return parseProbeOutput(result.stdout, { countedPackets: true });
}
