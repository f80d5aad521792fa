import assert from "node:assert/strict";
import { fixture, type FixtureName } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  listFiles,
  localPath,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

interface Expected {
  container: string;
  mime: string;
  codec: string;
  audio: string | null;
  width: number;
  height: number;
  rotation: number;
  duration: [number, number];
}

const FORMATS: Record<string, Expected & { name: FixtureName }> = {
  "H.264 MP4": {
    name: "h264.mp4",
    container: "mp4",
    mime: "video/mp4",
    codec: "h264",
    audio: "aac",
    width: 320,
    height: 240,
    rotation: 0,
    duration: [1.9, 2.1],
  },
  "VP9 WebM": {
    name: "vp9.webm",
    container: "webm",
    mime: "video/webm",
    codec: "vp9",
    audio: "opus",
    width: 320,
    height: 240,
    rotation: 0,
    duration: [0.9, 1.1],
  },
  "Theora OGG": {
    name: "theora.ogv",
    container: "ogg",
    mime: "video/ogg",
    codec: "theora",
    audio: "vorbis",
    width: 320,
    height: 240,
    rotation: 0,
    duration: [0.9, 1.1],
  },
  "MPEG-4 AVI": {
    name: "mpeg4.avi",
    container: "avi",
    mime: "video/x-msvideo",
    codec: "mpeg4",
    audio: "mp3",
    width: 320,
    height: 240,
    rotation: 0,
    duration: [0.9, 1.1],
  },
  "H.264 MKV": {
    name: "h264.mkv",
    container: "mkv",
    mime: "video/x-matroska",
    codec: "h264",
    audio: null,
    width: 320,
    height: 240,
    rotation: 0,
    duration: [0.9, 1.1],
  },
  "H.264 MOV": {
    name: "h264.mov",
    container: "mov",
    mime: "video/quicktime",
    codec: "h264",
    audio: "aac",
    width: 320,
    height: 240,
    rotation: 0,
    duration: [0.9, 1.1],
  },
  "portrait MP4 (rotation 90)": {
    name: "portrait.mp4",
    container: "mp4",
    mime: "video/mp4",
    codec: "h264",
    audio: "aac",
    width: 240,
    height: 320,
    rotation: 90,
    duration: [1.9, 2.1],
  },
};

for (const [label, expected] of Object.entries(FORMATS)) {
  Deno.test(`upload: ${label} is accepted with its metadata and gets a thumbnail`, async () => {
    await using ctx = await createTestContext();
    const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
    const response = await uploadFile(ctx, "alice", messageId, await fixture(expected.name));
    const created = await body(response);
    assert.equal(response.status, 201, JSON.stringify(created));
    assert.equal(created.container, expected.container);
    assert.equal(created.mime_type, expected.mime);
    assert.equal(created.codec, expected.codec);
    assert.equal(created.audio_codec, expected.audio);
    assert.equal(created.width, expected.width);
    assert.equal(created.height, expected.height);
    assert.deepEqual(created.video_dimensions, [expected.width, expected.height]);
    assert.equal(created.rotation, expected.rotation);
    assert.equal(created.file_type, "video");
    assert.equal(created.status, "processing");
    const duration = created.duration as number;
    assert.ok(duration >= expected.duration[0] && duration <= expected.duration[1], `${duration}`);
    assert.match(String(created.duration_formatted), /^0:0[12]$/);
    assert.equal(created.fps, 25);
    assert.ok((created.bitrate as number) > 0);
    assert.match(String(created.sha256), /^[0-9a-f]{64}$/);
    assert.match(String(created.uploaded_at), /^\d{4}-\d\d-\d\dT/);

    const done = await waitForProcessed(ctx, "alice", String(created.id));
    assert.equal(done.status, "ready", JSON.stringify(done));
    assert.ok(done.processed_at);
    const thumb = await ctx.app.request(localPath(String(done.thumbnail_url)));
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get("content-type"), "image/jpeg");
    const jpeg = new Uint8Array(await thumb.arrayBuffer());
    assert.ok(jpeg.length > 100);
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8]);
    // Stored under media/YYYY/MM/DD/<uuid>.<ext>, posters/YYYY/MM/DD/<uuid>/thumbnail.jpg.
    const files = await listFiles(ctx.dataDir);
    assert.ok(
      files.some((f) => /^media\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\.\w+$/.test(f)),
      `${files}`,
    );
    assert.ok(
      files.some((f) => /^posters\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\/thumbnail\.jpg$/.test(f)),
    );
  });
}

Deno.test("upload: a portrait video's thumbnail is upright", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("portrait.mp4")),
  );
  const done = await waitForProcessed(ctx, "alice", String(created.id));
  const path = `${ctx.dataDir}/${
    (await listFiles(ctx.dataDir)).find((f) =>
      f.startsWith("posters/") && f.endsWith("/thumbnail.jpg")
    )
  }`;
  const out = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", path],
    stdout: "piped",
  }).output();
  const [width, height] = new TextDecoder().decode(out.stdout).trim().split(",").map(Number);
  assert.equal(done.status, "ready");
  assert.equal(width, 320);
  assert.ok(height! > width!, `${width}x${height}`);
});

Deno.test("upload: a 0.4 s clip gets a non-empty thumbnail", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  assert.ok((created.duration as number) < 0.5);
  const done = await waitForProcessed(ctx, "alice", String(created.id));
  assert.equal(done.status, "ready", JSON.stringify(done));
  const thumb = await ctx.app.request(localPath(String(done.thumbnail_url)));
  assert.equal(thumb.status, 200);
  assert.ok((await thumb.arrayBuffer()).byteLength > 100);
});

Deno.test("upload: a text file named .mp4 is 415 and leaves nothing behind", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const response = await uploadFile(ctx, "alice", messageId, await fixture("text.mp4"), "x.mp4");
  assert.equal(response.status, 415);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.equal((await body(response)).code, "unsupported_media_type");
  assert.deepEqual(await mediaFiles(ctx.dataDir), []);
  assert.equal(await countRows(ctx, "attachments"), 0);
});

Deno.test("upload: an audio file with cover art is 422 invalid_video", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const response = await uploadFile(ctx, "alice", messageId, await fixture("cover_art.mp4"));
  const problem = await body(response);
  assert.equal(response.status, 422, JSON.stringify(problem));
  assert.equal(problem.code, "invalid_video");
  assert.deepEqual(await mediaFiles(ctx.dataDir), []);
  assert.equal(await countRows(ctx, "attachments"), 0);
});

Deno.test("upload: one byte over the limit is 413 with no file left in DATA_DIR", async () => {
  const limit = 64 * 1024;
  await using ctx = await createTestContext({ env: { MAX_UPLOAD_BYTES: String(limit) } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const source = await Deno.readFile(await fixture("h264.mp4"));
  const exact = source.length >= limit + 1 ? source.subarray(0, limit + 1) : (() => {
    const padded = new Uint8Array(limit + 1);
    padded.set(source);
    return padded;
  })();
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([exact]), "big.mp4");
  const response = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: form,
  });
  assert.equal(response.status, 413);
  assert.equal((await body(response)).code, "file_too_large");
  assert.deepEqual(await mediaFiles(ctx.dataDir), []);
  assert.equal(await countRows(ctx, "attachments"), 0);

  // Exactly at the limit passes the size check (and then fails as a truncated video, 422).
  const atLimit = new FormData();
  atLimit.append("message_id", messageId);
  atLimit.append("file", new Blob([exact.subarray(0, limit)]), "ok.mp4");
  const second = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: atLimit,
  });
  assert.notEqual(second.status, 413);
  await second.body?.cancel();
});

Deno.test("upload: a streamed body without Content-Length past the limit is 413", async () => {
  const limit = 32 * 1024;
  await using ctx = await createTestContext({ env: { MAX_UPLOAD_BYTES: String(limit) } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const boundary = "offchatboundary";
  const encoder = new TextEncoder();
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n${messageId}\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n` +
          `Content-Type: video/mp4\r\n\r\n`,
      ));
    },
    pull(controller) {
      // An endless file: the server must stop on its own.
      sent += 8192;
      controller.enqueue(new Uint8Array(8192));
      if (sent > 10 * 1024 * 1024) controller.close();
    },
  });
  const response = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    body: stream,
  });
  assert.equal(response.status, 413);
  await response.body?.cancel();
  assert.ok(sent < 1024 * 1024, `server read ${sent} bytes before refusing`);
  assert.deepEqual(await mediaFiles(ctx.dataDir), []);
});

Deno.test("upload: refused before the body when the message is not the caller's", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const path = await fixture("h264.mp4");
  const byBob = await uploadFile(ctx, "bob", messageId, path);
  assert.equal(byBob.status, 409);
  assert.equal((await body(byBob)).code, "conflict");
  const byMallory = await uploadFile(ctx, "mallory", messageId, path);
  assert.equal(byMallory.status, 404);
  await byMallory.body?.cancel();
  const anonymous = await ctx.request(null, "/api/chat/videos/upload/", {
    method: "POST",
    body: new FormData(),
  });
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  assert.deepEqual(await mediaFiles(ctx.dataDir), []);
});

Deno.test("upload: message_id after the file part and as a query parameter both work", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const bytes = await Deno.readFile(await fixture("h264.mp4"));
  const after = new FormData();
  after.append("file", new Blob([bytes]), "late.mp4");
  after.append("message_id", messageId);
  const first = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: after,
  });
  assert.equal(first.status, 201);
  await first.body?.cancel();
  const onlyFile = new FormData();
  onlyFile.append("file", new Blob([bytes]), "query.mp4");
  const second = await ctx.request("alice", `/api/chat/videos/upload?message_id=${messageId}`, {
    method: "POST",
    body: onlyFile,
  });
  assert.equal(second.status, 201);
  assert.equal((await body(second)).file_name, "query.mp4");
  const missing = new FormData();
  missing.append("file", new Blob([bytes]), "none.mp4");
  const third = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: missing,
  });
  assert.equal(third.status, 400);
  assert.match(String((await body(third)).detail), /message_id/);
  assert.equal((await listFiles(ctx.dataDir)).filter((f) => /^tmp\/.*upload-/.test(f)).length, 0);
});

Deno.test("upload: a hostile file name is stored as a plain label", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const response = await uploadFile(
    ctx,
    "alice",
    messageId,
    await fixture("h264.mp4"),
    '../../etc/pass"wd\r\n.mp4',
  );
  const created = await body(response);
  assert.equal(response.status, 201);
  assert.equal(created.file_name, "pass%22wd%0D%0A.mp4");
});

async function mediaFiles(dataDir: string): Promise<string[]> {
  return (await listFiles(dataDir)).filter((f) => !/^(offchat\.db.*|jwt_secret)$/.test(f));
}
