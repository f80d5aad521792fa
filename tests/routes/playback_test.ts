import assert from "node:assert/strict";
import { JobQueue } from "../../lib/processing/jobs.ts";
import { runJob } from "../../lib/processing/processing.ts";
import { fixture, type FixtureName } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

interface Probed {
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    profile?: string;
    side_data_list?: { rotation?: number }[];
  }[];
  format: { format_name: string };
}

async function ffprobe(target: string, extra: string[] = []): Promise<Probed> {
  const out = await new Deno.Command("ffprobe", {
    args: ["-v", "error", ...extra, "-show_streams", "-show_format", "-of", "json", target],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** ffprobe's CSV output for some entries of the first video stream. */
async function ffprobeCsv(path: string, entries: string): Promise<string> {
  const out = await new Deno.Command("ffprobe", {
    args: [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      entries,
      "-of",
      "csv=p=0",
      path,
    ],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** Uploads a fixture, waits for processing, and saves what /stream serves to a temp file. */
async function streamed(
  ctx: TestContext,
  name: FixtureName,
): Promise<{ attachment: Record<string, unknown>; path: string; bytes: Uint8Array }> {
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture(name)));
  const attachment = await waitForProcessed(ctx, "alice", String(created.id), 60_000);
  assert.equal(attachment.status, "ready", JSON.stringify(attachment));
  const response = await ctx.app.request(localPath(String(attachment.stream_url)));
  assert.equal(response.status, 200);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const path = `${ctx.dataDir}/served-${name}`;
  await Deno.writeFile(path, bytes);
  return { attachment, path, bytes };
}

function moovFirst(bytes: Uint8Array): boolean {
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, Math.min(bytes.length, 1 << 16)));
  const moov = text.indexOf("moov");
  const mdat = text.indexOf("mdat");
  return moov >= 0 && (mdat < 0 || moov < mdat);
}

const EXPECTED: [FixtureName, "original" | "remux" | "transcode"][] = [
  ["h264.mp4", "original"],
  ["moov_end.mp4", "remux"],
  ["h264.mov", "remux"],
  ["h264.mkv", "remux"],
  ["vp9.webm", "transcode"],
  ["theora.ogv", "transcode"],
  ["mpeg4.avi", "transcode"],
  ["hevc.mov", "transcode"],
];

for (const [name, plan] of EXPECTED) {
  Deno.test(`playback: ${name} streams as ${plan}, H.264 in a faststart MP4`, async () => {
    await using ctx = await createTestContext();
    const { attachment, path, bytes } = await streamed(ctx, name);
    assert.equal(attachment.playback, plan);
    const probed = await ffprobe(path);
    assert.match(probed.format.format_name, /mp4/);
    const video = probed.streams.find((s) => s.codec_type === "video")!;
    assert.equal(video.codec_name, "h264");
    assert.equal(video.pix_fmt, "yuv420p");
    const audio = probed.streams.find((s) => s.codec_type === "audio");
    if (attachment.has_audio) assert.equal(audio?.codec_name, "aac");
    assert.ok(moovFirst(bytes), "moov before mdat");
    const upload = await Deno.readFile(await fixture(name));
    const packets = (file: string) => ffprobeCsv(file, "packet=size,flags");
    if (plan === "original") {
      // The original's packets, in a copy without its metadata.
      assert.equal(await packets(path), await packets(await fixture(name)));
    }
    // The uploader's original_url is always the exact upload.
    const original = await ctx.app.request(localPath(String(attachment.original_url)));
    assert.deepEqual(new Uint8Array(await original.arrayBuffer()), upload);
  });
}

Deno.test("playback: a moov-at-end MP4 is remuxed, not re-encoded", async () => {
  await using ctx = await createTestContext();
  const { path } = await streamed(ctx, "moov_end.mp4");
  const packets = (file: string) => ffprobeCsv(file, "packet=size");

  assert.equal(await packets(path), await packets(await fixture("moov_end.mp4")));
});

Deno.test("playback: portrait sources stay upright in the rendition and the thumbnail", async () => {
  await using ctx = await createTestContext();
  for (const name of ["portrait_hevc.mov", "portrait.mp4"] as const) {
    const { attachment, path } = await streamed(ctx, name);
    assert.equal(attachment.width, 240);
    assert.equal(attachment.height, 320);
    const video = (await ffprobe(path)).streams.find((s) => s.codec_type === "video")!;
    const rotation = video.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? 0;
    const sideways = Math.abs(rotation) % 180 === 90;
    const [w, h] = sideways ? [video.height!, video.width!] : [video.width!, video.height!];
    assert.ok(h > w, `${name}: displayed ${w}x${h}`);
    if (name === "portrait_hevc.mov") assert.equal(rotation, 0, "transcodes are upright pixels");
    const thumb = await ctx.app.request(localPath(String(attachment.thumbnail_url)));
    const thumbPath = `${ctx.dataDir}/thumb-${name}.jpg`;
    await Deno.writeFile(thumbPath, new Uint8Array(await thumb.arrayBuffer()));
    const t = (await ffprobe(thumbPath)).streams[0]!;
    assert.ok(t.height! > t.width!, `${name} thumbnail ${t.width}x${t.height}`);
  }
});

Deno.test("playback: metadata includes audio and colour details", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const withAudio = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")),
  );
  assert.equal(withAudio.has_audio, true);
  assert.equal(withAudio.audio_channels, 1);
  assert.equal(withAudio.audio_sample_rate, 48000);
  assert.equal(withAudio.hdr, false);
  assert.equal(withAudio.pix_fmt, "yuv420p");
  assert.equal(withAudio.playback, null);
  const silent = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mkv")));
  assert.equal(silent.has_audio, false);
  assert.equal(silent.audio_channels, null);
});

Deno.test("playback: ffprobe reads the signed stream_url over real HTTP with Range", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("hevc.mov")));
  const attachment = await waitForProcessed(ctx, "alice", String(created.id), 60_000);
  let ranged = 0;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (req.headers.has("range")) ranged++;
    return ctx.app.fetch(req);
  });
  const url = String(attachment.stream_url).replace(
    "http://offchat.test",
    `http://127.0.0.1:${server.addr.port}`,
  );
  const probed = await ffprobe(url);
  const video = probed.streams.find((s) => s.codec_type === "video")!;
  assert.equal(video.codec_name, "h264");
  assert.equal(video.width, 320);
  assert.ok(ranged > 0, "ffprobe asked for byte ranges");
});

Deno.test("playback: the events stream reports rising progress, then ready, then closes", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("long.avi")));
  const response = await ctx.app.request(localPath(String(created.events_url)));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const text = await response.text(); // the server closes the stream after `ready`
  const events = text.split("\n\n").filter((block) => block.includes("event:")).map((block) => {
    const event = /^event: ?(.*)$/m.exec(block)![1]!;
    const data = JSON.parse(/^data: ?(.*)$/m.exec(block)![1]!);
    return { event, data };
  });
  const percents = events.filter((e) => e.event === "progress").map((e) =>
    e.data.percent as number
  );
  const statuses = events.filter((e) => e.event === "status").map((e) => e.data.status as string);
  assert.equal(statuses[0], "processing");
  assert.match(text, /^retry: 2000$/m);
  assert.equal(statuses.at(-1), "ready");
  assert.ok(percents.length >= 3, `progress events: ${percents}`);
  for (let i = 1; i < percents.length; i++) {
    assert.ok(percents[i]! > percents[i - 1]!, `${percents}`);
  }
  assert.equal(percents.at(-1), 100);
  // Each output is reported once, as it lands; the playable moment no later than ready.
  const outputs = events.filter((e) => e.event === "output").map((e) => e.data.kind as string);
  assert.deepEqual(outputs, ["thumbnail", "stripped", "progressive", "hls", "storyboard"]);
  const playable = events.findIndex((e) => e.event === "playable" && e.data.playable === true);
  assert.ok(playable >= 0 && playable < events.findIndex((e) => e.data.status === "ready"));
  // A late subscriber gets the final state at once; one that saw it is told to stop (204).
  const late = await (await ctx.app.request(localPath(String(created.events_url)))).text();
  assert.match(late, /"status":"ready"/);
  assert.match(late, /^id: final$/m);
  const seen = await ctx.app.request(localPath(String(created.events_url)), {
    headers: { "last-event-id": "final" },
  });
  assert.equal(seen.status, 204);
  // The events URL is for this attachment only; without a token it is 401.
  const anonymous = await ctx.app.request(`/api/chat/attachments/${created.id}/events`);
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
});

Deno.test("playback: the storyboard VTT points into a signed sprite sheet", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await streamed(ctx, "h264.mp4");
  assert.ok(attachment.storyboard_url, "storyboard_url is set when ready");
  const vtt = await ctx.app.request(localPath(String(attachment.storyboard_url)));
  assert.equal(vtt.status, 200);
  assert.match(vtt.headers.get("content-type") ?? "", /^text\/vtt/);
  const text = await vtt.text();
  assert.match(text, /^WEBVTT/);
  const cues = [...text.matchAll(/^(\S+) --> (\S+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$/gm)];
  assert.equal(cues.length, 2, text); // 2 s at one tile per second
  assert.equal(cues[0]![1], "00:00:00.000");
  assert.equal(cues[1]![5], "0");
  assert.equal(cues[1]![4], "160");
  const sprite = await ctx.app.request(localPath(cues[0]![3]!));
  assert.equal(sprite.status, 200);
  assert.equal(sprite.headers.get("content-type"), "image/jpeg");
  const path = `${ctx.dataDir}/sprite.jpg`;
  await Deno.writeFile(path, new Uint8Array(await sprite.arrayBuffer()));
  const image = (await ffprobe(path)).streams[0]!;
  assert.equal(image.width, 320);
  assert.equal(image.height, 120);
  // The sprite's token is for the storyboard only.
  const token = new URL(cues[0]![3]!).searchParams.get("token");
  const misuse = await ctx.app.request(`/api/chat/videos/${attachment.id}/stream?token=${token}`);
  assert.equal(misuse.status, 401);
  await misuse.body?.cancel();
});

Deno.test("playback: an HDR10 HEVC source is flagged and tone-mapped to 8-bit BT.709", async () => {
  await using ctx = await createTestContext();
  const { attachment, path } = await streamed(ctx, "hdr.mov");
  assert.equal(attachment.hdr, true);
  assert.equal(attachment.pix_fmt, "yuv420p10le");
  assert.equal(attachment.playback, "transcode");
  const tags = await ffprobeCsv(path, "stream=pix_fmt,color_transfer,color_primaries");
  assert.equal(tags, "yuv420p,bt709,bt709");
});

Deno.test({
  name:
    "playback: right after ready, /stream serves the rendition to a viewer who saw the thumbnail",
  // The thumbnail route remembers the row while processing (playback not decided);
  // /stream must not serve the original from that memory once the rendition exists.
  async fn() {
    // The jobs are run here one by one, so the order is the one that hid the bug.
    await using ctx = await createTestContext({ worker: false });
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const created = await body(
      await uploadFile(ctx, "alice", messageId, await fixture("long.avi")),
    );
    const id = String(created.id);
    const queue = new JobQueue({
      db: ctx.deps.db,
      workerId: "test",
      leaseMs: 60_000,
      clock: () => new Date(),
    });
    const runNext = async (kind: string) => {
      const job = await queue.claim();
      assert.equal(job?.kind, kind);
      await runJob(ctx.deps, job!, { progress: () => {} });
      await queue.complete(job!);
    };
    await runNext("thumbnail");
    // The page shows the thumbnail while the rendition is still to be made.
    let attachment = await body(await ctx.request("alice", `/api/chat/attachments/${id}`));
    assert.equal(attachment.status, "processing");
    const thumbnail = await ctx.app.request(localPath(String(attachment.thumbnail_url)));
    assert.equal(thumbnail.status, 200);
    await thumbnail.body?.cancel();
    await runNext("strip");
    await runNext("subtitles");
    await runNext("rendition");
    await runNext("hls");
    await runNext("storyboard");
    attachment = await body(await ctx.request("alice", `/api/chat/attachments/${id}`));
    assert.equal(attachment.status, "ready");
    assert.equal(attachment.playback, "transcode");
    // Play pressed at once.
    const stream = await ctx.app.request(localPath(String(attachment.stream_url)));
    assert.equal(stream.headers.get("content-type"), "video/mp4");
    assert.equal(stream.headers.get("cache-control"), "private, max-age=3600");
    const bytes = new Uint8Array(await stream.arrayBuffer());
    assert.ok(moovFirst(bytes), "the faststart rendition, not the AVI");
  },
});

Deno.test("playback: a receiver can play as soon as the first playable output exists", async () => {
  // The jobs run here one by one, so each step of the processing can be looked at.
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("long.avi")));
  const id = String(created.id);
  const queue = new JobQueue({
    db: ctx.deps.db,
    workerId: "test",
    leaseMs: 60_000,
    clock: () => new Date(),
  });
  const view = async (user: string) =>
    await body(await ctx.request(user, `/api/chat/attachments/${id}`));
  const runNext = async (kind: string) => {
    const job = await queue.claim();
    assert.equal(job?.kind, kind);
    await runJob(ctx.deps, job!, { progress: () => {} });
    await queue.complete(job!);
  };
  assert.equal((await view("bob")).playable, false);
  await runNext("thumbnail");
  await runNext("strip");
  await runNext("subtitles");
  assert.equal((await view("bob")).playable, false); // an AVI plays only as a rendition
  await runNext("rendition");
  const early = await view("bob");
  assert.equal(early.status, "processing");
  assert.equal(early.playable, true);
  assert.equal(
    (await ctx.app.request(localPath(String(early.stream_url)), {
      headers: { range: "bytes=0-0" },
    })).status,
    206,
  );
  // The events stream says so too, with the outputs made so far.
  const abort = new AbortController();
  const events = await ctx.app.request(localPath(String(early.events_url)), {
    signal: abort.signal,
  });
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/event: status/.test(text)) text += (await reader.read()).value ?? "";
  abort.abort();
  await reader.cancel().catch(() => {});
  assert.match(text, /event: output\ndata: \{"kind":"progressive"\}/);
  assert.match(text, /event: playable\ndata: \{"playable":true\}/);
  assert.match(text, /"status":"processing"/);
  await runNext("hls");
  await runNext("storyboard");
  assert.equal((await view("bob")).status, "ready");
});
