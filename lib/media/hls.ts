import type { HlsPolicy, RenditionPolicy } from "../config/config.ts";
import type { MediaLimits } from "./limits.ts";
import {
  BT709_TAGS,
  NO_UPLOADER_EXTRAS,
  PROGRESS_ON_STDOUT,
  progressParser,
  renditionSize,
  type RenditionSource,
  TONEMAP,
} from "./rendition.ts";
import { runTool } from "./run_tool.ts";
import { FFMPEG_QUIET, hardenedInputArgs, type MediaTools } from "./tools.ts";

/**
 * Adaptive streaming: one ffmpeg run decodes the source once, `split`s it,
 * encodes one H.264 rung per size (and the audio once) and writes CMAF
 * (fragmented MP4) segments with ffmpeg's `dash` muxer, which also writes
 * HLS playlists over the same segments (`-hls_playlist 1`): a DASH manifest
 * and an HLS master playlist for the price of one.
 */

/** Seconds per segment; every rung has a keyframe exactly on each boundary. */
export const SEGMENT_SECONDS = 2;

/** The AAC bitrate of the ladder's one audio track, kbit/s. */
const LADDER_AUDIO_KBPS = 96;

/** The rungs a ladder may have: the shorter side and the video bitrate (kbit/s). */
export const LADDER: readonly { short: number; kbps: number }[] = [
  { short: 360, kbps: 700 },
  { short: 720, kbps: 2500 },
  { short: 1080, kbps: 5000 },
];

/** The playlist and manifest names inside a ladder's directory. */
export const MASTER_PLAYLIST = "master.m3u8";
export const DASH_MANIFEST = "manifest.mpd";

/** The only file names a ladder's directory may hold (and the HLS route serves). */
export const LADDER_FILE =
  /^(?:master\.m3u8|manifest\.mpd|media_\d{1,2}\.m3u8|init-stream\d{1,2}\.m4s|chunk-stream\d{1,2}-\d{5,6}\.m4s)$/;

/** One rung of a ladder to make. */
export interface Rung {
  width: number;
  height: number;
  /** Peak video bitrate, kbit/s. */
  kbps: number;
}

/** What the ladder is made from: what a rendition is, and its bitrate and duration. */
export interface LadderSource extends RenditionSource {
  /** Overall bitrate of the source, kbit/s, when known: no rung is given more. */
  bitrate?: number | null;
  duration: number | null;
}

/**
 * Whether a video gets a ladder: HLS is on, and the video lasts at least
 * `minDuration` seconds (a receiver of a long video gets the rung its link
 * carries, and pays only for what it watches) or its overall bitrate is above
 * `minBitrate` kbit/s, 0 meaning no such rule (a progressive file faster than
 * the receiver's link stalls however short it is). A short, light clip plays
 * from its progressive file at once, and a ladder would only cost an encode.
 */
export function wantsLadder(
  metadata: { duration: number | null; bitrate?: number | null },
  policy: HlsPolicy,
): boolean {
  if (!policy.enabled) return false;
  if ((metadata.duration ?? 0) >= policy.minDuration) return true;
  return policy.minBitrate > 0 && (metadata.bitrate ?? 0) > policy.minBitrate;
}

/**
 * The rungs for a source: every {@linkcode LADDER} size no larger than the
 * source and the compact-rendition policy's `maxHeight`, with bitrates capped
 * by the policy's and by the source's own (a rung never spends more than the
 * original did). A source smaller than the smallest rung gets one rung at its
 * own size. Sizes are even and keep the display aspect.
 */
export function planLadder(
  source: Pick<LadderSource, "width" | "height" | "bitrate" | "hasAudio">,
  policy: Pick<RenditionPolicy, "maxHeight" | "maxBitrate">,
): Rung[] {
  const short = Math.min(source.width, source.height);
  const cap = Math.min(
    policy.maxBitrate,
    source.bitrate && source.bitrate > 0 ? Math.max(200, source.bitrate) : Infinity,
  );
  const sizes = LADDER.filter((rung) => rung.short <= Math.min(short, policy.maxHeight));
  const chosen = sizes.length > 0
    ? sizes
    : [{ short: Math.min(short, policy.maxHeight), kbps: 700 }];
  return chosen.map((rung) => {
    const size = renditionSize(source, { maxHeight: rung.short });
    return { ...size, kbps: Math.max(100, Math.min(rung.kbps, cap)) };
  });
}

/** Options for {@linkcode ladderArgs}. */
export interface LadderArgsOptions {
  rungs: Rung[];
  /** The directory the manifest, playlists and segments are written to. */
  outDir: string;
  limits: MediaLimits;
  maxFps: number;
}

/**
 * ffmpeg arguments for a whole ladder in one run: hardened input, one
 * decode (tone-mapped to SDR when HDR, frame rate capped) `split` into one
 * scale per rung, each encoded with x264 at a capped bitrate and keyframes
 * forced every {@linkcode SEGMENT_SECONDS} with scene-cut keyframes off, so
 * segments line up across rungs and a player can switch at any boundary.
 * No subtitles, data, uploader tags or chapters reach the output.
 */
export function ladderArgs(source: LadderSource, options: LadderArgsOptions): string[] {
  const { rungs, outDir, limits, maxFps } = options;
  const head = [
    ...(source.hdr ? [TONEMAP] : []),
    ...(source.fps && source.fps > maxFps ? [`fps=${maxFps}`] : []),
    `split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join("")}`,
  ].join(",");
  const graph = [
    `[0:V:0]${head}`,
    ...rungs.map((r, i) => `[s${i}]scale=${r.width}:${r.height},format=yuv420p[v${i}]`),
  ].join(";");
  const perRung = rungs.flatMap((r, i) => [
    `-b:v:${i}`,
    `${r.kbps}k`,
    `-maxrate:v:${i}`,
    `${Math.round(r.kbps * 1.1)}k`,
    `-bufsize:v:${i}`,
    `${r.kbps * 2}k`,
  ]);
  return [
    ...FFMPEG_QUIET,
    ...PROGRESS_ON_STDOUT,
    ...hardenedInputArgs(source, limits),
    "-filter_complex",
    graph,
    ...rungs.flatMap((_, i) => ["-map", `[v${i}]`]),
    ...(source.hasAudio ? ["-map", "0:a:0"] : []),
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-profile:v",
    "high",
    ...perRung,
    "-force_key_frames",
    `expr:gte(t,n_forced*${SEGMENT_SECONDS})`,
    "-sc_threshold",
    "0",
    ...BT709_TAGS,
    ...(source.hasAudio ? ["-c:a", "aac", "-b:a", `${LADDER_AUDIO_KBPS}k`, "-ac", "2"] : []),
    ...NO_UPLOADER_EXTRAS,
    "-f",
    "dash",
    "-seg_duration",
    String(SEGMENT_SECONDS),
    "-use_template",
    "1",
    "-use_timeline",
    "0",
    "-hls_playlist",
    "1",
    "-adaptation_sets",
    source.hasAudio ? "id=0,streams=v id=1,streams=a" : "id=0,streams=v",
    "-y",
    `file:${outDir}/${DASH_MANIFEST}`,
  ];
}

/** How long a ladder may take: twenty times the duration, at least two minutes, at most six hours. */
export function ladderTimeoutMs(durationSeconds: number | null): number {
  return Math.min(6 * 3600_000, Math.max(120_000, (durationSeconds ?? 0) * 20_000));
}

/**
 * Runs ffmpeg for a whole ladder into `options.outDir` (created empty, mode
 * 0700): the one run of it, whether a worker of the service or a remote
 * runner makes it, so both get the same flags, limits and timeout. Throws
 * with the end of ffmpeg's stderr when it fails; the caller checks the
 * directory ({@linkcode checkLadder}).
 */
export async function makeLadder(
  tools: MediaTools,
  source: LadderSource,
  options: Omit<LadderArgsOptions, "limits"> & {
    onProgress: (fraction: number) => void;
    signal?: AbortSignal;
  },
): Promise<void> {
  const { rungs, outDir, maxFps } = options;
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(outDir, { mode: 0o700 });
  const result = await runTool(
    tools.ffmpegPath,
    ladderArgs(source, { rungs, outDir, limits: tools.limits, maxFps }),
    {
      timeoutMs: ladderTimeoutMs(source.duration),
      maxStdoutBytes: 64 * 1024,
      addressSpaceBytes: tools.limits.toolMemoryBytes,
      onStdout: progressParser(source.duration, options.onProgress),
      signal: options.signal,
    },
  );
  if (result.timedOut) throw new Error("ffmpeg timed out making the adaptive ladder");
  if (result.code !== 0) {
    throw new Error(`ffmpeg exited with ${result.code}: ${result.stderr.trim().slice(-500)}`);
  }
}

/** One rung as made and checked: what the Attachment JSON lists. */
export interface MadeRung {
  width: number;
  height: number;
  /** The `BANDWIDTH` of its variant, bit/s (video peak plus audio). */
  bandwidth: number;
  /** Its `CODECS`, e.g. `avc1.64001f,mp4a.40.2`. */
  codecs: string;
  /** Bytes of its init and media segments. */
  bytes: number;
}

/** A finished ladder: its rungs, and the bytes of everything in its directory. */
export interface MadeLadder {
  rungs: MadeRung[];
  audioBytes: number;
  totalBytes: number;
}

const VARIANT = /^#EXT-X-STREAM-INF:(.*)\n(media_\d{1,2}\.m3u8)$/gm;
const AUDIO_MEDIA = /^#EXT-X-MEDIA:TYPE=AUDIO,.*URI="(media_\d{1,2}\.m3u8)"/gm;

function attribute(list: string, name: string): string | null {
  const match = new RegExp(`(?:^|,)${name}=("[^"]*"|[^,]*)`).exec(list);
  return match?.[1] ? match[1].replace(/^"|"$/g, "") : null;
}

/** The files a media playlist names (its init segment and media segments). */
export function playlistFiles(playlist: string): string[] {
  const files: string[] = [];
  for (const line of playlist.split("\n")) {
    const map = /^#EXT-X-MAP:URI="([^"]+)"/.exec(line);
    if (map?.[1]) files.push(map[1]);
    else if (line && !line.startsWith("#")) files.push(line.trim());
  }
  return files;
}

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info.size : 0;
  } catch {
    return 0;
  }
}

/**
 * Checks a ladder's directory as ffmpeg left it and measures it: the master
 * playlist names one variant per rung with its `BANDWIDTH`, `RESOLUTION`
 * and `CODECS`; every playlist names only files of {@linkcode LADDER_FILE}'s
 * shape that exist and are not empty; nothing else is in the directory; and
 * ffprobe, allowed only the HLS demuxer and the MP4 family for its segments,
 * reads the master playlist as H.264 streams of the rungs' sizes lasting the
 * source's duration within one segment.
 */
export async function checkLadder(
  tools: MediaTools,
  options: { outDir: string; rungs: Rung[]; hasAudio: boolean; duration: number | null },
): Promise<MadeLadder> {
  const { outDir, rungs, hasAudio, duration } = options;
  const master = await Deno.readTextFile(`${outDir}/${MASTER_PLAYLIST}`);
  const variants = [...master.matchAll(VARIANT)];
  if (variants.length !== rungs.length) {
    throw new Error(`The master playlist has ${variants.length} variants, not ${rungs.length}`);
  }
  const audioPlaylists = [...master.matchAll(AUDIO_MEDIA)].map((m) => m[1] ?? "");
  if (hasAudio !== (audioPlaylists.length === 1)) {
    throw new Error("The master playlist's audio does not match the source");
  }
  const named = new Set([MASTER_PLAYLIST, DASH_MANIFEST]);
  const bytesOf = async (playlistName: string): Promise<number> => {
    named.add(playlistName);
    let bytes = 0;
    for (const file of playlistFiles(await Deno.readTextFile(`${outDir}/${playlistName}`))) {
      if (!LADDER_FILE.test(file)) throw new Error(`A playlist names "${file.slice(0, 80)}"`);
      const size = await sizeOf(`${outDir}/${file}`);
      if (size === 0) throw new Error(`The ladder's ${file} is missing or empty`);
      named.add(file);
      bytes += size;
    }
    return bytes;
  };
  const made: MadeRung[] = [];
  for (const [, list = "", playlistName = ""] of variants) {
    const resolution = attribute(list, "RESOLUTION");
    const bandwidth = Number(attribute(list, "BANDWIDTH"));
    const codecs = attribute(list, "CODECS");
    if (!resolution || !codecs || !Number.isFinite(bandwidth) || bandwidth <= 0) {
      throw new Error("A variant lacks BANDWIDTH, RESOLUTION or CODECS");
    }
    const [width = 0, height = 0] = resolution.split("x").map(Number);
    made.push({ width, height, bandwidth, codecs, bytes: await bytesOf(playlistName) });
  }
  const audioBytes = hasAudio ? await bytesOf(audioPlaylists[0] ?? "") : 0;
  let totalBytes = 0;
  for await (const entry of Deno.readDir(outDir)) {
    if (!entry.isFile || !named.has(entry.name)) {
      throw new Error(`The ladder's directory holds an unexpected "${entry.name.slice(0, 80)}"`);
    }
    totalBytes += await sizeOf(`${outDir}/${entry.name}`);
  }
  const expected = rungs.map((r) => `${r.width}x${r.height}`).sort();
  const got = made.map((r) => `${r.width}x${r.height}`).sort();
  if (expected.join() !== got.join()) {
    throw new Error(`The ladder has ${got.join(", ")}, not ${expected.join(", ")}`);
  }
  await probeLadder(tools, { outDir, rungs, duration });
  return { rungs: made, audioBytes, totalBytes };
}

async function probeLadder(
  tools: MediaTools,
  options: { outDir: string; rungs: Rung[]; duration: number | null },
): Promise<void> {
  const { outDir, rungs, duration } = options;
  const result = await runTool(tools.ffprobePath, [
    "-hide_banner",
    "-v",
    "error",
    "-protocol_whitelist",
    "file",
    // The HLS demuxer, and the MP4 family its segments open with (they inherit the list).
    "-format_whitelist",
    "hls,mov,mp4,m4a,3gp,3g2,mj2",
    "-f",
    "hls",
    "-show_entries",
    "stream=codec_type,codec_name,width,height:format=duration",
    "-of",
    "json",
    `file:${outDir}/${MASTER_PLAYLIST}`,
  ], {
    timeoutMs: tools.probeTimeoutMs,
    maxStdoutBytes: 256 * 1024,
    addressSpaceBytes: tools.limits.toolMemoryBytes,
  });
  if (result.timedOut || result.code !== 0) {
    throw new Error(`ffprobe could not read the ladder: ${result.stderr.trim().slice(-300)}`);
  }
  const parsed = JSON.parse(result.stdout) as {
    streams?: { codec_type?: string; codec_name?: string; width?: number; height?: number }[];
    format?: { duration?: string };
  };
  const videos = (parsed.streams ?? []).filter((s) => s.codec_type === "video");
  if (videos.length !== rungs.length || videos.some((s) => s.codec_name !== "h264")) {
    throw new Error("ffprobe does not read one H.264 stream per rung in the ladder");
  }
  const length = Number(parsed.format?.duration);
  if (duration && (!Number.isFinite(length) || Math.abs(length - duration) > SEGMENT_SECONDS)) {
    throw new Error(`The ladder lasts ${length} s, the source ${duration} s`);
  }
}
