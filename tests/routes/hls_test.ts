/**
 * Issue 12, point 3: adaptive streaming. A video at least HLS_MIN_DURATION
 * long gets a ladder of H.264 rungs (never above the source) in CMAF
 * segments, made by one ffmpeg run, listed in an HLS master playlist (with
 * BANDWIDTH, RESOLUTION and CODECS) and a DASH manifest over the same files.
 * A real server on an ephemeral port serves them to ffprobe and ffmpeg with
 * no header: the token is in the path, so the relative URIs resolve.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/config.ts";
import { LADDER_FILE, ladderArgs, planLadder, wantsLadder } from "../../lib/media/hls.ts";
import { ffmpeg, TEST_TOOLS } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  LOOPBACK,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

const POLICY = parseConfig({}).renditionPolicy;

Deno.test("hls: HLS is on for videos of 10 s and more, or above 1200 kbit/s, by default", () => {
  const config = parseConfig({});
  assert.deepEqual(config.hlsPolicy, { enabled: true, minDuration: 10, minBitrate: 1200 });
  const wants = (duration: number | null, bitrate: number | null = 800) =>
    wantsLadder({ duration, bitrate }, config.hlsPolicy);
  assert.equal(wants(9.9), false);
  assert.equal(wants(10), true);
  assert.equal(wants(null), false);
  // A short clip faster than a slow link gets one too: it would stall however short it is.
  assert.equal(wants(3, 1200), false);
  assert.equal(wants(3, 3700), true);
  assert.equal(wants(3, null), false);
  const noBitrateRule = parseConfig({ HLS_MIN_BITRATE: "0" }).hlsPolicy;
  assert.equal(wantsLadder({ duration: 3, bitrate: 50_000 }, noBitrateRule), false);
  assert.equal(
    wantsLadder({ duration: 600, bitrate: 9000 }, parseConfig({ HLS: "0" }).hlsPolicy),
    false,
  );
  assert.throws(() => parseConfig({ HLS: "yes" }), /HLS/);
  assert.throws(() => parseConfig({ HLS_MIN_DURATION: "-1" }), /HLS_MIN_DURATION/);
  assert.throws(() => parseConfig({ HLS_MIN_BITRATE: "1.5M" }), /HLS_MIN_BITRATE/);
});

Deno.test("hls: the rungs are never above the source or the policy, in either orientation", () => {
  const sizes = (width: number, height: number, bitrate: number | null = null) =>
    planLadder({ width, height, bitrate, hasAudio: true }, POLICY)
      .map((r) => `${r.width}x${r.height}@${r.kbps}`);
  assert.deepEqual(sizes(3840, 2160), ["640x360@700", "1280x720@2500", "1920x1080@5000"]);
  assert.deepEqual(sizes(1920, 1080), ["640x360@700", "1280x720@2500", "1920x1080@5000"]);
  assert.deepEqual(sizes(1080, 1920), ["360x640@700", "720x1280@2500", "1080x1920@5000"]);
  assert.deepEqual(sizes(1280, 720), ["640x360@700", "1280x720@2500"]);
  // A rung never spends more than the source did; a small source gets one rung at its size.
  assert.deepEqual(sizes(1280, 720, 1500), ["640x360@700", "1280x720@1500"]);
  assert.deepEqual(sizes(320, 240), ["320x240@700"]);
  // The policy's size and bitrate bound the ladder too.
  const low = planLadder({ width: 1920, height: 1080, bitrate: null, hasAudio: false }, {
    maxHeight: 720,
    maxBitrate: 2000,
  });
  assert.deepEqual(low.map((r) => `${r.height}@${r.kbps}`), ["360@700", "720@2000"]);
});

Deno.test("hls: one ffmpeg run splits one decode into every rung, keyframes on segment bounds", () => {
  const rungs = planLadder({ width: 1920, height: 1080, bitrate: null, hasAudio: true }, POLICY);
  const args = ladderArgs(
    { path: "/in.mov", demuxer: "mov", width: 1920, height: 1080, hasAudio: true, duration: 60 },
    { rungs, outDir: "/out", limits: TEST_TOOLS.limits, maxFps: 60 },
  );
  const value = (flag: string) => args[args.indexOf(flag) + 1] ?? "";
  assert.equal(args.filter((a) => a === "-i").length, 1);
  assert.match(value("-filter_complex"), /^\[0:V:0\]split=3\[s0\]\[s1\]\[s2\];/);
  assert.equal(value("-force_key_frames"), "expr:gte(t,n_forced*2)");
  assert.equal(value("-sc_threshold"), "0");
  assert.equal(value("-f"), "mov"); // the input's sniffed demuxer, forced
  assert.equal(args.at(-1), "file:/out/manifest.mpd");
  assert.equal(args[args.lastIndexOf("-f") + 1], "dash");
  assert.equal(value("-hls_playlist"), "1");
  assert.equal(value("-map_metadata"), "-1");
  assert.equal(value("-protocol_whitelist"), "file");
  for (
    const name of ["master.m3u8", "media_0.m3u8", "init-stream3.m4s", "chunk-stream0-00001.m4s"]
  ) {
    assert.match(name, LADDER_FILE);
  }
  for (const name of ["../offchat.db", "master.m3u8/", "x.mp4", ".m3u8", "media_0.m3u8?x"]) {
    assert.doesNotMatch(name, LADDER_FILE);
  }
});

/** A 1280x720 H.264/AAC MP4 of `seconds`, moov first: browser-playable as it is. */
async function landscapeClip(dir: string, seconds: number): Promise<string> {
  const path = `${dir}/clip-${seconds}.mp4`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=1280x720:rate=25:duration=${seconds}`,
    "-f",
    "lavfi",
    "-i",
    `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-shortest",
    "-movflags",
    "+faststart",
    "-metadata",
    "location=+48.8584+002.2945/",
    "-f",
    "mp4",
    "-y",
    path,
  ]);
  return path;
}

/** Runs a test tool (ffprobe or ffmpeg) that may read HTTP, and returns its stdout. */
async function tool(
  name: string,
  args: string[],
): Promise<{ ok: boolean; out: string; err: string }> {
  const result = await new Deno.Command(name, {
    args: ["-hide_banner", "-v", "error", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { ok: result.success, out: text(result.stdout), err: text(result.stderr) };
}

async function uploaded(
  ctx: TestContext,
  path: string,
): Promise<{ attachment: Record<string, unknown>; id: string }> {
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await body<{ id: string }>(await uploadFile(ctx, "alice", messageId, path));
  await waitForProcessed(ctx, "alice", created.id, 90_000);
  // The receiver's view, with the receiver's signed URLs.
  const attachment = await body(await ctx.request("bob", `/api/chat/attachments/${created.id}`));
  return { attachment, id: created.id };
}

Deno.test("hls: a ladder over HTTP with no header, every rung decoded, access per attachment", async () => {
  // The short clip is over 1200 kbit/s; with the bitrate rule off, only the 7 s one gets a ladder.
  await using ctx = await createTestContext({
    env: { HLS_MIN_DURATION: "6", HLS_MIN_BITRATE: "0" },
  });
  const dir = await Deno.makeTempDir({ prefix: "offchat-hls-" });
  try {
    const long = await uploaded(ctx, await landscapeClip(dir, 7));
    const short = await uploaded(ctx, await landscapeClip(dir, 3));
    const a = long.attachment;
    assert.equal(a.status, "ready", String(a.error));
    assert.equal(a.playable, true);
    assert.equal(short.attachment.hls_url, null);
    assert.equal(short.attachment.dash_url, null);
    // ultrafast x264 puts the clips over the 5 Mb/s policy: both have a progressive rendition.
    const kinds = (x: Record<string, unknown>) =>
      (x.renditions as { kind: string }[]).map((r) => r.kind);
    assert.deepEqual(kinds(short.attachment), ["progressive"]);
    assert.deepEqual(kinds(a), ["progressive", "hls", "hls"]);
    assert.match(String(a.hls_url), /\/api\/chat\/videos\/[0-9a-f-]+\/hls\/[^/?]+\/master\.m3u8$/);
    assert.match(String(a.dash_url), /\/hls\/[^/?]+\/manifest\.mpd$/);
    const renditions = (a.renditions as Record<string, unknown>[]).filter((r) => r.kind === "hls");
    assert.deepEqual(
      renditions.map((r) => [r.kind, r.width, r.height]),
      [["hls", 640, 360], ["hls", 1280, 720]],
    );
    for (const r of renditions) {
      assert.match(String(r.codec), /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
      assert.ok(Number(r.bitrate) > 0 && Number(r.bytes) > 0);
    }

    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => ctx.app.fetch(request),
    );
    const origin = `http://127.0.0.1:${server.addr.port}`;
    const live = (url: unknown) => String(url).replace("http://offchat.test", origin);
    const hls = live(a.hls_url);

    const master = await fetch(hls);
    assert.equal(master.status, 200);
    assert.equal(master.headers.get("content-type"), "application/vnd.apple.mpegurl");
    assert.equal(master.headers.get("x-content-type-options"), "nosniff");
    const text = await master.text();
    assert.match(
      text,
      /#EXT-X-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=640x360,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/,
    );
    assert.match(text, /RESOLUTION=1280x720,CODECS=/);
    assert.doesNotMatch(text, /48\.8584/);

    // Keyframes on the segment bounds: every rung is cut at the same times, 2 s apart.
    const cuts = async (playlist: string) =>
      (await (await fetch(hls.replace("master.m3u8", playlist))).text())
        .split("\n").filter((line) => line.startsWith("#EXTINF:"));
    const [rung0, rung1] = [await cuts("media_0.m3u8"), await cuts("media_1.m3u8")];
    assert.deepEqual(rung0, rung1);
    assert.deepEqual(rung0.slice(0, 3), [
      "#EXTINF:2.000000,",
      "#EXTINF:2.000000,",
      "#EXTINF:2.000000,",
    ]);
    // ffprobe reads the master playlist over HTTP with no header: one stream per rung, and audio.
    const http = ["-protocol_whitelist", "http,tcp,file,crypto"];
    const probe = await tool("ffprobe", [
      ...http,
      "-show_entries",
      "stream=codec_type,width,height:format=duration",
      "-of",
      "json",
      hls,
    ]);
    assert.ok(probe.ok, probe.err);
    const probed = JSON.parse(probe.out) as {
      streams: { codec_type: string; width?: number; height?: number }[];
      format: { duration: string };
    };
    assert.deepEqual(
      probed.streams.filter((s) => s.codec_type === "video").map((s) => `${s.width}x${s.height}`)
        .sort(),
      ["1280x720", "640x360"],
    );
    assert.ok(probed.streams.some((s) => s.codec_type === "audio"));
    // Every rung decodes end to end and lasts as long as the source, within one segment.
    for (const index of [0, 1]) {
      const decoded = await tool("ffmpeg", [
        ...http,
        "-i",
        hls,
        "-map",
        `0:v:${index}`,
        "-f",
        "null",
        "-",
      ]);
      assert.ok(decoded.ok, decoded.err);
      const rung = await tool("ffprobe", [
        ...http,
        "-select_streams",
        `v:${index}`,
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
        hls,
      ]);
      assert.ok(rung.ok, rung.err);
      const seconds = Number(rung.out.trim().split("\n")[0]) / 25;
      assert.ok(Math.abs(seconds - Number(a.duration)) <= 2, `rung ${index}: ${seconds} s`);
    }
    // The DASH manifest lists the same segments.
    const dash = await fetch(live(a.dash_url));
    assert.equal(dash.headers.get("content-type"), "application/dash+xml");
    assert.match(
      await dash.text(),
      /<MPD[\s\S]*media="chunk-stream\$RepresentationID\$-\$Number%05d\$\.m4s"/,
    );

    // A token opens only its own attachment's files.
    const token = String(a.hls_url).split("/hls/")[1]!.split("/")[0]!;
    const otherToken = await ctx.deps.auth.signMediaToken({ id: "bob", admin: false }, {
      attachmentId: short.id,
      purpose: "hls",
    });
    const segment = `${origin}/api/chat/videos/${long.id}/hls`;
    assert.equal((await fetch(`${segment}/${token}/init-stream0.m4s`)).status, 200);
    const refused = await fetch(`${segment}/${otherToken}/init-stream0.m4s`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    await refused.body?.cancel();
    // Another purpose's token (a stream URL's) does not open the ladder either.
    const streamToken = new URL(live(a.stream_url)).searchParams.get("token")!;
    assert.equal((await fetch(`${segment}/${streamToken}/master.m3u8`)).status, 401);
    // An expired token is refused.
    const expired = await ctx.deps.auth.signMediaToken({ id: "bob", admin: false }, {
      attachmentId: long.id,
      purpose: "hls",
      notAfter: Date.now() - 60_000,
    });
    assert.equal((await fetch(`${segment}/${expired}/master.m3u8`)).status, 401);
    // Only the ladder's own file names, nothing else in the data directory.
    for (const name of ["..%2F..%2Foffchat.db", "x.mp4", "chunk-stream9-00001.m4s"]) {
      const response = await fetch(`${segment}/${token}/${name}`);
      assert.ok([400, 404].includes(response.status), `${name}: ${response.status}`);
      await response.body?.cancel();
    }

    // The new job kind shows in the metrics.
    assert.match(
      await (await ctx.app.request("/metrics", {}, LOOPBACK)).text(),
      /^offchat_jobs\{kind="hls",status="done"\} 2$/m,
    );
    // Deleting the attachment removes its ladder.
    const files = () =>
      listFiles(ctx.dataDir).then((all) => all.filter((f) => f.startsWith("hls/")));
    assert.ok((await files()).length > 0);
    const deleted = await ctx.request("alice", `/api/chat/attachments/${long.id}`, {
      method: "DELETE",
    });
    assert.equal(deleted.status, 204);
    assert.deepEqual(await files(), []);
    assert.equal((await fetch(hls)).status, 404);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
