import assert from "node:assert/strict";
import { ApiError } from "../../../lib/core/errors.ts";
import { assertWithinLimits } from "../../../lib/media/limits.ts";
import { parseProbeOutput, probeVideo } from "../../../lib/media/probe.ts";
import { DEMUXER_ALLOWLIST, sniffContainer } from "../../../lib/media/containers.ts";
import { remuxArgs, transcodeArgs } from "../../../lib/media/rendition.ts";
import { makeThumbnail, thumbnailCandidates, thumbnailTime } from "../../../lib/media/thumbnail.ts";
import { parseToolVersion } from "../../../lib/setup/setup.ts";
import { parseConfig } from "../../../lib/config/config.ts";
import { fixture, TEST_TOOLS } from "../../_fixtures.ts";

const TEST_POLICY = parseConfig({}).renditionPolicy;

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

Deno.test("sniffContainer: magic bytes decide, names do not", () => {
  assert.equal(sniffContainer(bytes("\0\0\0\x18ftypisom\0\0\0\0"))?.name, "mp4");
  assert.equal(sniffContainer(bytes("\0\0\0\x14ftypqt  \0\0\0\0"))?.name, "mov");
  assert.equal(sniffContainer(bytes("\0\0\0\x08moov\0\0\0\0"))?.name, "mov");
  assert.equal(sniffContainer(bytes("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm"))?.name, "webm");
  assert.equal(sniffContainer(bytes("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01matroska"))?.name, "mkv");
  assert.equal(sniffContainer(bytes("OggS\0\x02\0\0"))?.name, "ogg");
  assert.equal(sniffContainer(bytes("RIFF\0\0\0\0AVI LIST"))?.name, "avi");
  assert.equal(sniffContainer(bytes("RIFF\0\0\0\0WAVEfmt "))?.name, undefined);
  assert.equal(sniffContainer(bytes("#EXTM3U\n#EXT-X-VERSION:3\n")), null);
  assert.equal(sniffContainer(bytes("ffconcat version 1.0\n")), null);
  assert.equal(sniffContainer(bytes("\0\0\0\x18ftypheic\0\0\0\0")), null);
  assert.equal(sniffContainer(bytes("ID3\x04\0\0")), null);
  assert.equal(sniffContainer(new Uint8Array(0)), null);
  // The allowlist SECURITY.md documents, made from the same table.
  assert.deepEqual(DEMUXER_ALLOWLIST, ["mov", "matroska", "ogg", "avi"]);
});

Deno.test("parseProbeOutput: rotation swaps display dimensions; cover art is not video", () => {
  const rotated = JSON.stringify({
    streams: [{
      codec_type: "video",
      codec_name: "h264",
      width: 1920,
      height: 1080,
      avg_frame_rate: "30000/1001",
      side_data_list: [{ rotation: -90 }],
    }, { codec_type: "audio", codec_name: "aac" }],
    format: { duration: "12.5", bit_rate: "5000000" },
  });
  const meta = parseProbeOutput(rotated);
  assert.equal(meta.rotation, 270);
  assert.equal(meta.width, 1080);
  assert.equal(meta.height, 1920);
  assert.equal(meta.fps, 29.97);
  assert.equal(meta.bitrate, 5000);
  assert.equal(meta.audioCodec, "aac");

  const coverArt = JSON.stringify({
    streams: [
      { codec_type: "audio", codec_name: "mp3" },
      {
        codec_type: "video",
        codec_name: "png",
        width: 500,
        height: 500,
        disposition: { attached_pic: 1 },
      },
    ],
    format: { duration: "200" },
  });
  assert.throws(
    () => parseProbeOutput(coverArt),
    (e) => e instanceof ApiError && e.code === "invalid_video",
  );
  const huge = JSON.stringify({
    streams: [{ codec_type: "video", codec_name: "h264", width: 16000, height: 16000 }],
    format: { duration: "1" },
  });
  assert.throws(() => parseProbeOutput(huge), /dimensions/);
  const days = JSON.stringify({
    streams: [{ codec_type: "video", codec_name: "h264", width: 16, height: 16 }],
    format: { duration: String(5 * 24 * 3600) },
  });
  // The duration limit is the configured one, checked on the inventory.
  assert.throws(
    () => assertWithinLimits(parseProbeOutput(days).inventory, TEST_TOOLS.limits),
    /declares 432000 s; the limit is 86400 s/,
  );
});

Deno.test("probeVideo: the demuxer allowlist refuses content of another format", async () => {
  // A real MP4 forced through the ogg demuxer must fail, not fall back to probing.
  const tools = TEST_TOOLS;
  const path = await fixture("h264.mp4");
  const meta = await probeVideo(tools, path, {
    container: sniffContainer(bytes("\0\0\0\x18ftypisom\0\0\0\0"))!,
  });
  assert.equal(meta.codec, "h264");
  await assert.rejects(
    () => probeVideo(tools, path, { container: sniffContainer(bytes("OggS\0\x02\0\0"))! }),
    (e) => e instanceof ApiError && e.code === "invalid_video",
  );
});

Deno.test("renditions: ffmpeg's ceilings and memory limit are the configured ones", () => {
  const limits = { ...TEST_TOOLS.limits, maxPixels: 1234, maxStreams: 5 };
  const source = { path: "/x.mkv", demuxer: "matroska", width: 640, height: 360, hasAudio: true };
  for (
    const args of [
      transcodeArgs(source, "/out.mp4", { limits, policy: TEST_POLICY }),
      remuxArgs(source, "/out.mp4", limits),
    ]
  ) {
    assert.equal(args[args.indexOf("-max_pixels") + 1], "1234");
    assert.equal(args[args.indexOf("-max_streams") + 1], "5");
  }
});

Deno.test("thumbnailTime: min(1 s, half the duration)", () => {
  assert.equal(thumbnailTime(10), 1);
  assert.equal(thumbnailTime(0.4), 0.2);
  assert.equal(thumbnailTime(null), 0);
});

Deno.test("parseToolVersion: Debian, release and git builds", () => {
  assert.deepEqual(parseToolVersion("ffmpeg version 5.1.9-0+deb12u1 Copyright"), {
    version: "5.1.9-0+deb12u1",
    major: 5,
  });
  assert.deepEqual(parseToolVersion("ffprobe version n4.4.2 Copyright"), {
    version: "n4.4.2",
    major: 4,
  });
  assert.equal(parseToolVersion("ffmpeg version N-112233-gabc Copyright").major, null);
  assert.equal(parseToolVersion("ffmpeg version 3.4.8").major, 3);
});

Deno.test("makeThumbnail: a dark frame at the seek point gives way to a brighter one", async () => {
  const tools = TEST_TOOLS;
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/thumb.jpg`;
    await makeThumbnail(tools, {
      path: await fixture("black_start.mp4"),
      demuxer: "mov",
      duration: 4,
    }, out);
    const stats = await new Deno.Command("ffmpeg", {
      args: [
        "-v",
        "error",
        "-i",
        out,
        "-vf",
        "signalstats,metadata=mode=print:file=-",
        "-f",
        "null",
        "-",
      ],
      stdout: "piped",
    }).output();
    const luma = Number(/YAVG=([\d.]+)/.exec(new TextDecoder().decode(stats.stdout))![1]);
    assert.ok(luma > 40, `thumbnail luma ${luma}`);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (e) => e.name), ["thumb.jpg"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("thumbnailCandidates: first point, then a quarter, the middle, the start", () => {
  assert.deepEqual(thumbnailCandidates(10), [1, 2.5, 5, 0]);
  assert.deepEqual(thumbnailCandidates(0.4), [0.2, 0.1, 0]);
  assert.deepEqual(thumbnailCandidates(null), [0]);
});
