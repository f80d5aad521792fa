import type { Config } from "../config/config.ts";
import { ApiError } from "../core/errors.ts";

/**
 * Bounds on what an upload may ask ffmpeg to do. The probe result is checked
 * against them before anything is stored, and ffmpeg/ffprobe get the same
 * numbers as their own `-max_pixels` / `-max_streams`, so a file that lies
 * in its headers is stopped by the tool as well.
 */
export interface MediaLimits {
  /** Largest frame (width × height) of any video stream. */
  maxPixels: number;
  /** Most streams of any kind. */
  maxStreams: number;
  /** Longest declared duration, in seconds, of the file and of each stream. */
  maxDurationSeconds: number;
  /** Address-space limit of each ffmpeg/ffprobe process, in bytes; 0 = none. */
  toolMemoryBytes: number;
}

/**
 * The highest frame rate a declared frame count is measured against: phones
 * record slow motion at 240 fps. More frames than the longest allowed
 * duration holds at this rate is a header lie or a bomb.
 */
export const MAX_FRAMES_PER_SECOND = 240;

/**
 * The longest side of a frame ffprobe's answer may report, whatever
 * `MAX_PIXELS` allows: H.264 and HEVC levels stop at 8192, and a wider or
 * taller number is a header lie. A fixed bound, not a setting.
 */
export const MAX_DIMENSION = 8192;

/** The limits of a configuration: their defaults are the config schema's (`lib/config/config.ts`). */
export function mediaLimitsOf(
  config: Pick<Config, "maxPixels" | "maxStreams" | "maxDurationSeconds" | "mediaMemoryLimitMb">,
): MediaLimits {
  return {
    maxPixels: config.maxPixels,
    maxStreams: config.maxStreams,
    maxDurationSeconds: config.maxDurationSeconds,
    toolMemoryBytes: config.mediaMemoryLimitMb * 1024 * 1024,
  };
}

/** One stream as ffprobe reported it (after reading every packet with `-count_packets`). */
export interface StreamInventory {
  /** `video`, `audio`, `subtitle`, `data`, `attachment`. */
  type: string;
  /** Coded width × height, 0 when not a picture. */
  pixels: number;
  /** Declared duration in seconds, when the stream declares one. */
  duration: number | null;
  /** Frames the headers declare (`nb_frames`), when they do. */
  declaredFrames: number | null;
  /** Packets ffprobe actually read from the file, when counted. */
  packets: number | null;
  /** Cover art (`attached_pic`), not a moving picture. */
  attachedPicture: boolean;
}

/** What {@linkcode assertWithinLimits} looks at. */
export interface ProbeInventory {
  streams: StreamInventory[];
  /** The container's declared duration, in seconds. */
  duration: number | null;
  /** Index in `streams` of the video stream the service will use. */
  videoIndex: number;
}

function refuse(detail: string): never {
  throw new ApiError("invalid_video", detail);
}

/**
 * Refuses (422 `invalid_video`) a probed file that is over a limit: too many
 * streams, any attachment (an arbitrary file riding inside the container),
 * a picture over `maxPixels`, a declared duration over `maxDurationSeconds`
 * (the container's or any stream's), a declared frame count no allowed video
 * could have, a stream whose declared samples are not in the file (they live
 * in another file, or the file was cut short), or a video stream with fewer
 * packets than it declares (truncated).
 *
 * @example
 * ```ts
 * assertWithinLimits(metadata.inventory, mediaLimitsOf(config));
 * ```
 */
export function assertWithinLimits(inventory: ProbeInventory, limits: MediaLimits): void {
  const { streams } = inventory;
  if (streams.length > limits.maxStreams) {
    refuse(`The file has ${streams.length} streams; the limit is ${limits.maxStreams}`);
  }
  if (streams.some((s) => s.type === "attachment")) {
    refuse("The file carries attached files; only audio, video and subtitle streams are accepted");
  }
  for (const stream of streams) {
    if (stream.type === "video" && stream.pixels > limits.maxPixels) {
      refuse(
        `A video stream has ${stream.pixels} pixels per frame; the limit is ${limits.maxPixels}`,
      );
    }
  }
  const durations = [inventory.duration, ...streams.map((s) => s.duration)];
  const longest = Math.max(0, ...durations.filter((d): d is number => d !== null));
  if (longest > limits.maxDurationSeconds) {
    refuse(`The file declares ${longest} s; the limit is ${limits.maxDurationSeconds} s`);
  }
  const maxFrames = limits.maxDurationSeconds * MAX_FRAMES_PER_SECOND;
  for (const stream of streams) {
    if (stream.declaredFrames !== null && stream.declaredFrames > maxFrames) {
      refuse(`A stream declares ${stream.declaredFrames} frames; the limit is ${maxFrames}`);
    }
    if (stream.packets !== null && stream.packets > maxFrames) {
      refuse(`A stream has ${stream.packets} packets; the limit is ${maxFrames}`);
    }
  }
  for (const stream of streams) {
    // Declared samples that are not in the file: an external data reference
    // (ffmpeg does not follow it) or a file cut short before them. Data
    // streams are never played or copied to receivers, and a QuickTime
    // chapter track (as ffmpeg itself writes one) is one whose samples the
    // demuxer turns into chapters rather than packets.
    if (stream.type !== "data" && stream.packets === 0 && (stream.declaredFrames ?? 0) > 0) {
      refuse("A stream's data is not in this file");
    }
  }
  const video = streams[inventory.videoIndex];
  if (video && video.packets !== null) {
    if (video.packets === 0) refuse("The video stream has no data in this file");
    // A few frames of slack: some muxers count a frame the file never stored.
    const expected = video.declaredFrames;
    if (expected !== null && video.packets < expected - Math.max(2, expected / 100)) {
      refuse(
        `The video stream declares ${expected} frames but the file holds ${video.packets}: ` +
          "it is truncated",
      );
    }
  }
}
