/**
 * Test videos made with ffmpeg's lavfi sources at test time (nothing binary is
 * committed). Each fixture is generated once per test process.
 */
import { parseConfig } from "../lib/config/config.ts";
import { type MediaTools, mediaToolsOf } from "../lib/media/tools.ts";

/** ffmpeg and ffprobe as a configuration with the defaults has them, probes limited to 10 s. */
export const TEST_TOOLS: MediaTools = mediaToolsOf(parseConfig({ PROBE_TIMEOUT_MS: "10000" }));

/** Names of the fixtures this module can make. */
export type FixtureName =
  | "h264.mp4"
  | "vp9.webm"
  | "theora.ogv"
  | "mpeg4.avi"
  | "h264.mkv"
  | "h264.mov"
  | "portrait.mp4"
  | "short.mp4"
  | "cover_art.mp4"
  | "text.mp4"
  | "hevc.mov"
  | "portrait_hevc.mov"
  | "moov_end.mp4"
  | "long.avi"
  | "padded.mp4"
  | "black_start.mp4"
  | "hdr.mov";

const SRC = "testsrc2=size=320x240:rate=25";
const TONE = "sine=frequency=440:sample_rate=48000";

/** lavfi test pattern (and a tone when `audio` is given) for `seconds`, then codec options. */
export function lavfi(
  seconds: number,
  audio: string[] | null,
  video: string[],
  format: string,
): string[] {
  const inputs = ["-f", "lavfi", "-i", `${SRC}:duration=${seconds}`];
  if (audio) inputs.push("-f", "lavfi", "-i", `${TONE}:duration=${seconds}`);
  return [...inputs, ...video, ...(audio ? [...audio, "-shortest"] : []), "-f", format];
}

/** H.264 in 4:2:0 at libx264's fastest preset: the fixtures' usual video codec options. */
export const X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];

type Derived = "text.mp4" | "portrait.mp4" | "portrait_hevc.mov" | "padded.mp4";

const RECIPES: Record<Exclude<FixtureName, Derived>, string[]> = {
  "hevc.mov": lavfi(2, ["-c:a", "aac"], [
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
    "-tag:v",
    "hvc1",
  ], "mov"),
  "moov_end.mp4": lavfi(2, ["-c:a", "aac"], X264, "mp4"),
  // 10-bit HEVC tagged HDR10 (PQ, BT.2020), as an iPhone or a recent Android records.
  "hdr.mov": lavfi(1, null, [
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
    "-pix_fmt",
    "yuv420p10le",
    "-color_primaries",
    "bt2020",
    "-color_trc",
    "smpte2084",
    "-colorspace",
    "bt2020nc",
    "-tag:v",
    "hvc1",
  ], "mov"),
  // 1.5 s of black, then the pattern: a fade-in that a naive thumbnail at 1 s would catch.
  "black_start.mp4": [
    "-f",
    "lavfi",
    "-i",
    "color=c=black:size=320x240:rate=25:duration=1.5,format=yuv420p[b];" +
    "testsrc2=size=320x240:rate=25:duration=2.5[t];[b][t]concat",
    ...X264,
    "-f",
    "mp4",
  ],
  "long.avi": [
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=25:duration=20",
    "-f",
    "lavfi",
    "-i",
    `${TONE}:duration=20`,
    "-c:v",
    "mpeg4",
    "-q:v",
    "3",
    "-c:a",
    "libmp3lame",
    "-shortest",
    "-f",
    "avi",
  ],
  "h264.mp4": lavfi(2, ["-c:a", "aac"], [...X264, "-movflags", "+faststart"], "mp4"),
  "vp9.webm": lavfi(1, ["-c:a", "libopus"], [
    "-c:v",
    "libvpx-vp9",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-b:v",
    "200k",
  ], "webm"),
  "theora.ogv": lavfi(1, ["-c:a", "libvorbis"], ["-c:v", "libtheora", "-q:v", "5"], "ogg"),
  "mpeg4.avi": lavfi(1, ["-c:a", "libmp3lame"], ["-c:v", "mpeg4", "-q:v", "5"], "avi"),
  "h264.mkv": lavfi(1, null, X264, "matroska"),
  "h264.mov": lavfi(1, ["-c:a", "aac"], X264, "mov"),
  "short.mp4": [
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=160x120:rate=25:duration=0.4",
    ...X264,
    "-f",
    "mp4",
  ],
  "cover_art.mp4": [
    "-f",
    "lavfi",
    "-i",
    `${TONE}:duration=1`,
    "-f",
    "lavfi",
    "-i",
    "color=c=red:size=64x64:duration=1",
    "-map",
    "0:a",
    "-map",
    "1:v",
    "-frames:v",
    "1",
    "-c:a",
    "aac",
    "-c:v",
    "mjpeg",
    "-disposition:v:0",
    "attached_pic",
    "-f",
    "mp4",
  ],
};

let dirPromise: Promise<string> | null = null;
const made = new Map<FixtureName, Promise<string>>();

/** Runs ffmpeg quietly for a test input; throws with its stderr when it fails. */
export async function ffmpeg(args: string[]): Promise<void> {
  const out = await new Deno.Command("ffmpeg", {
    args: ["-nostdin", "-hide_banner", "-v", "error", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`ffmpeg failed for a fixture: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function generate(dir: string, name: FixtureName): Promise<string> {
  const path = `${dir}/${name}`;
  if (name === "text.mp4") {
    await Deno.writeTextFile(path, "This is not a video, whatever its name says.\n".repeat(20));
  } else if (name === "padded.mp4") {
    // A real MP4 made 16 MiB larger by a trailing `free` box: big enough that
    // streaming it outlasts the socket buffers.
    const video = await Deno.readFile(await fixture("h264.mp4"));
    const padding = 16 * 1024 * 1024;
    const bytes = new Uint8Array(video.length + padding);
    bytes.set(video);
    const view = new DataView(bytes.buffer, video.length, 8);
    view.setUint32(0, padding);
    bytes.set(new TextEncoder().encode("free"), video.length + 4);
    await Deno.writeFile(path, bytes);
  } else if (name === "portrait.mp4" || name === "portrait_hevc.mov") {
    // Landscape pixels with a 90° display matrix: a phone held upright.
    const hevc = name === "portrait_hevc.mov";
    const landscape = await fixture(hevc ? "hevc.mov" : "h264.mp4");
    await ffmpeg([
      "-i",
      landscape,
      "-c",
      "copy",
      "-metadata:s:v:0",
      "rotate=90",
      "-f",
      hevc ? "mov" : "mp4",
      "-y",
      path,
    ]);
  } else {
    await ffmpeg([...RECIPES[name], "-y", path]);
  }
  return path;
}

/** The path of a generated fixture (made on first use). */
export function fixture(name: FixtureName): Promise<string> {
  if (!dirPromise) {
    dirPromise = Deno.makeTempDir({ prefix: "offchat-fixtures-" });
    const dir = dirPromise;
    // The fixtures live as long as the test process; remove them when it ends.
    globalThis.addEventListener("unload", () => {
      dir.then((path) => Deno.removeSync(path, { recursive: true })).catch(() => {});
    });
  }
  let promise = made.get(name);
  if (!promise) {
    promise = dirPromise.then((dir) => generate(dir, name));
    made.set(name, promise);
  }
  return promise;
}

/** Runs ffprobe on bytes or a file and returns its JSON (for checking served files). */
export async function ffprobeJson(path: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-show_format", "-show_streams", "-of", "json", path],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
