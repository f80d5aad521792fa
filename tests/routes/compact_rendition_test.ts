/**
 * Issue 12, point 2: an original over the compact-rendition policy (size,
 * bitrate, frame rate) is streamed as a rendition within it, however playable
 * it is; one under the policy is served as it is. The service runs with low
 * limits here (240p, 30 fps, 400 kbit/s) so that the fixtures stay tiny.
 */
import assert from "node:assert/strict";
import { parseConfig, type RenditionPolicy } from "../../lib/config/config.ts";
import { exceedsPolicy, planPlayback } from "../../lib/media/playback.ts";
import { renditionSize, transcodeArgs } from "../../lib/media/rendition.ts";
import { ffmpeg, TEST_TOOLS } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

const DEFAULT_POLICY = parseConfig({}).renditionPolicy;
const LOW_ENV = {
  RENDITION_MAX_HEIGHT: "240",
  RENDITION_MAX_FPS: "30",
  RENDITION_MAX_BITRATE: "400",
};
const LOW_POLICY: RenditionPolicy = { maxHeight: 240, maxFps: 30, maxBitrate: 400 };

const PLAYABLE = { codec: "h264", pixFmt: "yuv420p", audioCodec: "aac" };
const MP4 = { container: "mp4", moovFirst: true };

Deno.test("compact rendition: the defaults are 1080p, 5000 kbit/s and 60 fps", () => {
  assert.deepEqual(DEFAULT_POLICY, { maxHeight: 1080, maxBitrate: 5000, maxFps: 60 });
  assert.deepEqual(parseConfig(LOW_ENV).renditionPolicy, LOW_POLICY);
  assert.throws(() => parseConfig({ RENDITION_MAX_HEIGHT: "100" }), /RENDITION_MAX_HEIGHT/);
  assert.throws(() => parseConfig({ RENDITION_MAX_FPS: "0" }), /RENDITION_MAX_FPS/);
  assert.throws(() => parseConfig({ RENDITION_MAX_BITRATE: "5M" }), /RENDITION_MAX_BITRATE/);
});

Deno.test("compact rendition: planPlayback transcodes a playable MP4 over any limit", () => {
  const policy = DEFAULT_POLICY;
  const plan = (extra: Record<string, number | null>) =>
    planPlayback({ ...PLAYABLE, ...extra }, { ...MP4, policy });
  const hd = { width: 1920, height: 1080, fps: 30, bitrate: 4000 };
  assert.equal(plan(hd), "original");
  // Portrait 1080p is within the policy too; unknown numbers are not held against a video.
  assert.equal(plan({ width: 1080, height: 1920, fps: 60, bitrate: 5000 }), "original");
  assert.equal(plan({ width: null, height: null, fps: null, bitrate: null }), "original");
  // The shorter side over 1080, the longer over 1920, in either orientation.
  assert.equal(plan({ ...hd, width: 3840, height: 2160 }), "transcode");
  assert.equal(plan({ ...hd, width: 1440, height: 1440 }), "transcode");
  assert.equal(plan({ ...hd, width: 2560, height: 1080 }), "transcode");
  assert.equal(plan({ ...hd, width: 1080, height: 2400 }), "transcode");
  assert.equal(plan({ ...hd, bitrate: 5001 }), "transcode");
  assert.equal(plan({ ...hd, fps: 120 }), "transcode");
  // Over the policy, what would have been a remux is a transcode as well.
  const mov = (extra: Record<string, number>) =>
    planPlayback({ ...PLAYABLE, ...hd, ...extra }, { container: "mov", moovFirst: true, policy });
  assert.equal(mov({}), "remux");
  assert.equal(mov({ fps: 240 }), "transcode");
  assert.equal(exceedsPolicy({ ...PLAYABLE, ...hd }, { ...policy, maxBitrate: 3999 }), true);
});

Deno.test("compact rendition: the transcode scales, caps the frame rate and peaks at the bitrate", () => {
  assert.deepEqual(renditionSize({ width: 3840, height: 2160 }, DEFAULT_POLICY), {
    width: 1920,
    height: 1080,
  });
  assert.deepEqual(renditionSize({ width: 1080, height: 1920 }, DEFAULT_POLICY), {
    width: 1080,
    height: 1920,
  });
  assert.deepEqual(renditionSize({ width: 1280, height: 720 }, { maxHeight: 480 }), {
    width: 854,
    height: 480,
  });
  const source = { path: "/x.mp4", demuxer: "mov", width: 3840, height: 2160, fps: 120 };
  const args = (hasAudio: boolean) =>
    transcodeArgs({ ...source, hasAudio }, "/out.mp4", {
      limits: TEST_TOOLS.limits,
      policy: DEFAULT_POLICY,
    });
  const value = (list: string[], flag: string) => list[list.indexOf(flag) + 1] ?? "";
  assert.match(value(args(false), "-vf"), /scale=1920:1080,fps=60,/);
  assert.equal(value(args(false), "-crf"), "23");
  assert.equal(value(args(false), "-maxrate"), "5000k");
  assert.equal(value(args(false), "-bufsize"), "10000k");
  // With audio, the video leaves room for the 128 kbit/s AAC.
  assert.equal(value(args(true), "-maxrate"), "4872k");
  assert.equal(value(args(true), "-b:a"), "128k");
});

/** A short (2 s unless told) H.264 MP4 with its moov first: browser-playable as it is. */
async function playableMp4(
  dir: string,
  options: { name: string; size: string; rate: number; seconds?: number; x264: string[] },
): Promise<string> {
  const path = `${dir}/${options.name}.mp4`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=${options.size}:rate=${options.rate}:duration=${options.seconds ?? 2}`,
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    ...options.x264,
    "-movflags",
    "+faststart",
    "-f",
    "mp4",
    "-y",
    path,
  ]);
  return path;
}

interface Served {
  playback: unknown;
  width: number;
  height: number;
  fps: string;
  kbps: number;
  seconds: number;
  codec: string;
}

/** A file's overall bitrate (kbit/s) and duration. */
async function probeFormat(path: string): Promise<{ kbps: number; seconds: number }> {
  const probe = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-show_entries", "format=bit_rate,duration", "-of", "json", path],
    stdout: "piped",
  }).output();
  const format = JSON.parse(new TextDecoder().decode(probe.stdout)).format;
  return { kbps: Number(format.bit_rate) / 1000, seconds: Number(format.duration) };
}

/** Uploads a file, waits for processing, and ffprobes what its stream_url serves. */
async function served(ctx: TestContext, path: string): Promise<Served> {
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, path));
  const attachment = await waitForProcessed(ctx, "alice", String(created.id), 60_000);
  assert.equal(attachment.status, "ready", JSON.stringify(attachment));
  const response = await ctx.app.request(localPath(String(attachment.stream_url)));
  assert.equal(response.status, 200);
  const out = `${path}.served.mp4`;
  await Deno.writeFile(out, new Uint8Array(await response.arrayBuffer()));
  const probe = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-show_streams", "-show_format", "-of", "json", out],
    stdout: "piped",
  }).output();
  const json = JSON.parse(new TextDecoder().decode(probe.stdout));
  const video = json.streams.find((s: { codec_type: string }) => s.codec_type === "video");
  return {
    playback: attachment.playback,
    width: video.width,
    height: video.height,
    fps: video.r_frame_rate,
    ...await probeFormat(out),
    codec: video.codec_name,
  };
}

Deno.test("compact rendition: playable originals over the policy stream within it", async () => {
  await using ctx = await createTestContext({ env: LOW_ENV });
  const dir = ctx.dataDir;
  // Each fixture over one limit only: a high CRF keeps the others' bitrate under 400 kbit/s.
  const lean = ["-crf", "38"];
  // Under every limit: served as it is (metadata stripped), not re-encoded.
  const under = await served(
    ctx,
    await playableMp4(dir, { name: "under", size: "320x240", rate: 25, x264: lean }),
  );
  assert.equal(under.playback, "original");
  assert.deepEqual([under.width, under.height, under.fps], [320, 240, "25/1"]);

  // 480p: scaled to 240p.
  const big = await served(
    ctx,
    await playableMp4(dir, { name: "big", size: "640x480", rate: 25, x264: ["-crf", "47"] }),
  );
  assert.equal(big.playback, "transcode");
  assert.deepEqual([big.codec, big.width, big.height], ["h264", 320, 240]);

  // 60 fps: down to 30.
  const fast = await served(
    ctx,
    await playableMp4(dir, { name: "fast", size: "320x240", rate: 60, x264: lean }),
  );
  assert.equal(fast.playback, "transcode");
  assert.deepEqual([fast.codec, fast.width, fast.height, fast.fps], ["h264", 320, 240, "30/1"]);

  // Several Mb/s of noise at 240p: the rendition's video is held by the VBV to the
  // policy's 400 kbit/s, which over any stretch of T seconds means at most 400 × T
  // plus the 800 kbit buffer (which counts in a file this short).
  const heavy = await playableMp4(dir, {
    name: "heavy",
    size: "320x240",
    rate: 25,
    seconds: 4,
    x264: ["-vf", "noise=alls=60:allf=t", "-crf", "5"],
  });
  const source = await probeFormat(heavy);
  assert.ok(source.kbps > 10 * 400, `source ${source.kbps} kbit/s`);
  const dense = await served(ctx, heavy);
  assert.equal(dense.playback, "transcode");
  assert.equal(dense.codec, "h264");
  const bound = 400 + 800 / dense.seconds;
  assert.ok(dense.kbps <= bound, `${dense.kbps} kbit/s over ${dense.seconds} s, bound ${bound}`);
});
