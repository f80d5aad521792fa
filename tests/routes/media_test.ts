import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { mediaUrlKey } from "../../lib/auth/auth.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  listFiles,
  localPath,
  TEST_SECRET,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

async function readyVideo(
  ctx: TestContext,
  fileName = "clip.mp4",
): Promise<{ attachment: Record<string, unknown>; conversationId: string; messageId: string }> {
  const { conversationId, messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4"), fileName),
  );
  const attachment = await waitForProcessed(ctx, "alice", String(created.id));
  assert.equal(attachment.status, "ready");
  return { attachment, conversationId, messageId };
}

Deno.test("media: a non-participant gets the same 404 on metadata, thumbnail and download", async () => {
  await using ctx = await createTestContext();
  const { attachment, messageId } = await readyVideo(ctx);
  const id = String(attachment.id);
  const missing = "01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77";
  for (
    const path of [
      `/api/chat/attachments/${id}`,
      `/api/chat/videos/${id}/thumbnail`,
      `/api/chat/videos/${id}/download/`,
      `/api/chat/videos/${id}/stream`,
      `/api/chat/messages/${messageId}/attachments`,
    ]
  ) {
    const theirs = await ctx.request("mallory", path);
    const none = await ctx.request(
      "mallory",
      path.replace(id, missing).replace(messageId, missing),
    );
    assert.equal(theirs.status, 404, path);
    assert.equal(none.status, 404, path);
    const [a, b] = [await body(theirs), await body(none)];
    assert.equal(a.code, "not_found");
    assert.deepEqual(a, b, path);
  }
  // The participant who did not upload can read everything.
  for (const path of [`/api/chat/attachments/${id}`, `/api/chat/videos/${id}/download/`]) {
    const response = await ctx.request("bob", path);
    assert.equal(response.status, 200, path);
    await response.body?.cancel();
  }
});

Deno.test("media: download sends the original with safe headers and logs one activity row", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await readyVideo(ctx, "été vidéo.mp4");
  const original = await Deno.readFile(await fixture("h264.mp4"));
  // The uploader's download of the exact upload (receivers get the copy without metadata:
  // tests/security/metadata_privacy_test.ts).
  const response = await ctx.app.request(localPath(String(attachment.original_url)));
  assert.equal(response.status, 200);
  const headers = response.headers;
  assert.equal(headers.get("content-type"), "video/mp4");
  assert.equal(headers.get("x-content-type-options"), "nosniff");
  assert.match(headers.get("content-security-policy") ?? "", /sandbox/);
  assert.match(headers.get("cache-control") ?? "", /^private/);
  assert.equal(headers.get("accept-ranges"), "bytes");
  assert.equal(headers.get("content-length"), String(original.length));
  assert.equal(
    headers.get("content-disposition"),
    `attachment; filename="_t_ vid_o.mp4"; filename*=UTF-8''%C3%A9t%C3%A9%20vid%C3%A9o.mp4`,
  );
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), original);
  assert.equal(headers.get("etag"), `"${attachment.sha256}"`);

  const activity = await body<{ items: Record<string, unknown>[] }>(
    await ctx.app.request(`/api/admin/activity?action=video.download`, {
      headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
    }),
  );
  assert.equal(activity.items.length, 1);
  assert.equal(activity.items[0]!.actor_id, "alice");
  assert.equal(activity.items[0]!.attachment_id, attachment.id);

  // A player's later range requests are not more downloads.
  const ranged = await ctx.request(
    "alice",
    `/api/chat/videos/${attachment.id}/download?original=1`,
    {
      headers: { range: "bytes=100-199" },
    },
  );
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers.get("content-range"), `bytes 100-199/${original.length}`);
  assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), original.subarray(100, 200));
  assert.equal(await countRows(ctx, "activity_log WHERE action = 'video.download'"), 1);
});

Deno.test("media: single ranges serve exactly the file's bytes; 416, 304 and If-Range", async () => {
  // Ranges over the upload itself: with STRIP_METADATA=0 the stream of an original that plays
  // as it is is that file (the copy without metadata is served the same way).
  await using ctx = await createTestContext({ env: { STRIP_METADATA: "0" } });
  const { attachment } = await readyVideo(ctx);
  const original = await Deno.readFile(await fixture("h264.mp4"));
  const size = Number(attachment.file_size);
  assert.equal(size, original.length);
  const url = `/api/chat/videos/${attachment.id}/stream`;
  // A faststart H.264 MP4 plays as it is: the stream is the original, byte for byte.
  const whole = await ctx.request("alice", url);
  assert.equal(whole.status, 200);
  assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), original);
  const mid = [Math.floor(size / 3), Math.floor(size / 3) + 4095];
  // [Range, status, Content-Range, the bytes of the file it must carry: [start, end) or null]
  const cases: [string, number, string | null, [number, number] | null][] = [
    ["bytes=0-0", 206, `bytes 0-0/${size}`, [0, 1]],
    ["bytes=0-1", 206, `bytes 0-1/${size}`, [0, 2]],
    ["bytes=-500", 206, `bytes ${size - 500}-${size - 1}/${size}`, [size - 500, size]],
    ["bytes=100-", 206, `bytes 100-${size - 1}/${size}`, [100, size]],
    [`bytes=${mid[0]}-${mid[1]}`, 206, `bytes ${mid[0]}-${mid[1]}/${size}`, [mid[0]!, mid[1]! + 1]],
    // The end past the file is clamped to it.
    [`bytes=${size - 10}-${size + 1000}`, 206, `bytes ${size - 10}-${size - 1}/${size}`, [
      size - 10,
      size,
    ]],
    [`bytes=${size}-`, 416, `bytes */${size}`, null],
    ["bytes=5-1", 416, `bytes */${size}`, null],
    ["bytes=abc", 416, `bytes */${size}`, null],
    // Several ranges are answered with the whole file.
    ["bytes=0-1,4-5", 200, null, [0, size]],
  ];
  for (const [range, status, contentRange, slice] of cases) {
    const response = await ctx.request("alice", url, { headers: { range } });
    assert.equal(response.status, status, range);
    assert.equal(response.headers.get("content-range"), contentRange, range);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (slice === null) {
      assert.equal(response.headers.get("content-type"), "application/problem+json", range);
      assert.equal((JSON.parse(new TextDecoder().decode(bytes))).code, "range_not_satisfiable");
      continue;
    }
    const expected = original.subarray(slice[0], slice[1]);
    assert.equal(response.headers.get("content-length"), String(expected.length), range);
    assert.deepEqual(bytes, expected, range);
  }

  const head = await ctx.request("alice", url, { method: "HEAD" });
  const etag = head.headers.get("etag") ?? "";
  assert.match(etag, /^"[^"]+"$/, "a strong ETag");
  const lastModified = head.headers.get("last-modified") ?? "";
  assert.match(lastModified, /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
  assert.ok(Math.abs(Date.parse(lastModified) - Date.now()) < 10 * 60_000, lastModified);
  const notModified = await ctx.request("alice", url, { headers: { "if-none-match": etag } });
  assert.equal(notModified.status, 304);
  assert.equal(await notModified.text(), "");
  const unchanged = await ctx.request("alice", url, {
    headers: { "if-modified-since": lastModified },
  });
  assert.equal(unchanged.status, 304);
  await unchanged.body?.cancel();
  // If-Range with the current ETag: the range is still good.
  const freshIfRange = await ctx.request("alice", url, {
    headers: { range: "bytes=10-19", "if-range": etag },
  });
  assert.equal(freshIfRange.status, 206);
  assert.equal(freshIfRange.headers.get("content-range"), `bytes 10-19/${size}`);
  assert.deepEqual(new Uint8Array(await freshIfRange.arrayBuffer()), original.subarray(10, 20));
  // With a stale one the file changed under the client: the whole file, not a range of it.
  const staleIfRange = await ctx.request("alice", url, {
    headers: { range: "bytes=0-9", "if-range": '"stale"' },
  });
  assert.equal(staleIfRange.status, 200);
  assert.equal(staleIfRange.headers.get("content-range"), null);
  assert.equal(staleIfRange.headers.get("content-length"), String(size));
  assert.deepEqual(new Uint8Array(await staleIfRange.arrayBuffer()), original);
});

Deno.test("media: ranges beyond the in-memory size are streamed with the right bytes", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const original = await Deno.readFile(await fixture("padded.mp4"));
  const attachment = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("padded.mp4")),
  );
  const size = original.length;
  const url = `/api/chat/videos/${attachment.id}/download`;
  // Over 1 MiB (streamed from the file, not read in one go), in the middle and to the end.
  for (const [start, end] of [[1000, 3 * 1024 * 1024 + 7], [size - 2 * 1024 * 1024, size - 1]]) {
    const response = await ctx.request("alice", url, {
      headers: { range: `bytes=${start}-${end}` },
    });
    assert.equal(response.status, 206);
    assert.equal(response.headers.get("content-range"), `bytes ${start}-${end}/${size}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    assert.equal(bytes.length, end! - start! + 1);
    assert.deepEqual(bytes, original.subarray(start, end! + 1), `bytes=${start}-${end}`);
  }
});

/**
 * A media token signed the way lib/auth/auth.ts signs them (HS256 with its media
 * URL key, its audience and claims), with any expiry.
 */
async function mediaToken(
  attachmentId: string,
  purpose: string,
  expiresAt: number,
): Promise<string> {
  const key = await mediaUrlKey(TEST_SECRET);
  return await new SignJWT({ att: attachmentId, use: purpose })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("alice")
    .setAudience("offchat-media")
    .setIssuedAt(expiresAt - 3600)
    .setExpirationTime(expiresAt)
    .sign(key);
}

Deno.test("media: an expired media token is a 401", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await readyVideo(ctx);
  const now = Math.floor(Date.now() / 1000);
  const open = (token: string) =>
    ctx.app.request(`/api/chat/videos/${attachment.id}/download?token=${token}`);
  // The same token with an expiry ahead opens the file: the signature is right.
  const valid = await open(await mediaToken(String(attachment.id), "download", now + 600));
  assert.equal(valid.status, 200);
  await valid.body?.cancel();
  for (const purpose of ["download", "stream"] as const) {
    const token = await mediaToken(String(attachment.id), purpose, now - 60);
    const expired = await ctx.app.request(
      `/api/chat/videos/${attachment.id}/${purpose}?token=${token}`,
    );
    assert.equal(expired.status, 401, purpose);
    assert.equal(expired.headers.get("accept-ranges"), null);
    assert.equal((await body(expired)).code, "unauthorized", purpose);
  }
});

Deno.test("media: the thumbnail is a JPEG with a strong ETag, cached immutably, and 304s", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await readyVideo(ctx);
  const url = localPath(String(attachment.thumbnail_url));
  const response = await ctx.app.request(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "image/jpeg");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  const etag = response.headers.get("etag") ?? "";
  assert.match(etag, /^"[^"]+"$/, `a strong ETag: ${etag}`);
  assert.match(
    response.headers.get("cache-control") ?? "",
    /^private, max-age=[1-9]\d*, immutable$/,
  );
  const jpeg = new Uint8Array(await response.arrayBuffer());
  assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff], "JPEG magic");
  assert.equal(response.headers.get("content-length"), String(jpeg.length));

  const again = await ctx.app.request(url, { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("etag"), etag);
  assert.equal(await again.text(), "");
  const other = await ctx.app.request(url, { headers: { "if-none-match": '"something-else"' } });
  assert.equal(other.status, 200);
  assert.deepEqual(new Uint8Array(await other.arrayBuffer()), jpeg);
});

Deno.test("media: a signed URL opens one attachment for one purpose", async () => {
  await using ctx = await createTestContext();
  const a = await readyVideo(ctx);
  const b = await readyVideo(ctx);
  const downloadA = new URL(String(a.attachment.url));
  const tokenA = downloadA.searchParams.get("token");
  const other = await ctx.app.request(
    `/api/chat/videos/${b.attachment.id}/download?token=${tokenA}`,
  );
  assert.equal(other.status, 401);
  await other.body?.cancel();
  const wrongPurpose = await ctx.app.request(
    `/api/chat/videos/${a.attachment.id}/thumbnail?token=${tokenA}`,
  );
  assert.equal(wrongPurpose.status, 401);
  await wrongPurpose.body?.cancel();
  const noToken = await ctx.app.request(`/api/chat/videos/${a.attachment.id}/download`);
  assert.equal(noToken.status, 401);
  await noToken.body?.cancel();
});

Deno.test("media: removed participants lose access", async () => {
  await using ctx = await createTestContext();
  const { attachment, conversationId } = await readyVideo(ctx);
  const url = localPath(String(
    (await body(await ctx.request("bob", `/api/chat/attachments/${attachment.id}`))).url,
  ));
  const left = await ctx.request(
    "bob",
    `/api/chat/conversations/${conversationId}/participants/bob`,
    {
      method: "DELETE",
    },
  );
  assert.equal(left.status, 204);
  const meta = await ctx.request("bob", `/api/chat/attachments/${attachment.id}`);
  assert.equal(meta.status, 404);
  await meta.body?.cancel();
  const signed = await ctx.app.request(url);
  assert.equal(signed.status, 404);
  await signed.body?.cancel();
});

Deno.test("media: delete is for the uploader or an admin and removes the files", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await readyVideo(ctx);
  const id = String(attachment.id);
  const filesBefore = (await listFiles(ctx.dataDir)).filter((f) => /^(media|posters)\//.test(f));
  // The original; the poster, its thumbnail and five candidates.
  assert.equal(filesBefore.length, 8);

  const byBob = await ctx.request("bob", `/api/chat/attachments/${id}`, { method: "DELETE" });
  assert.equal(byBob.status, 403);
  await byBob.body?.cancel();
  const byMallory = await ctx.request("mallory", `/api/chat/attachments/${id}`, {
    method: "DELETE",
  });
  assert.equal(byMallory.status, 404);
  await byMallory.body?.cancel();

  const deleted = await ctx.request("alice", `/api/chat/attachments/${id}`, { method: "DELETE" });
  assert.equal(deleted.status, 204);
  const filesAfter = (await listFiles(ctx.dataDir)).filter((f) => /^(media|posters)\//.test(f));
  assert.deepEqual(filesAfter, []);
  const gone = await ctx.request("alice", `/api/chat/attachments/${id}`);
  assert.equal(gone.status, 404);
  await gone.body?.cancel();
  assert.equal(await countRows(ctx, "activity_log WHERE action = 'attachment.delete'"), 1);
  const again = await ctx.request("alice", `/api/chat/attachments/${id}`, { method: "DELETE" });
  assert.equal(again.status, 404);
  await again.body?.cancel();
});

Deno.test("media: an admin may delete someone else's attachment", async () => {
  await using ctx = await createTestContext();
  const { attachment } = await readyVideo(ctx);
  const response = await ctx.app.request(`/api/chat/attachments/${attachment.id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
  });
  assert.equal(response.status, 204);
});

Deno.test("media: HEAD, abusive range lists, and a client that hangs up frees the file", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const attachment = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("padded.mp4")),
  );
  const url = `/api/chat/videos/${attachment.id}/download`;
  const head = await ctx.request("alice", url, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(attachment.file_size));
  assert.equal(await head.text(), "");
  const many = Array.from({ length: 300 }, (_, i) => `${i * 2}-${i * 2}`).join(",");
  const abusive = await ctx.request("alice", url, { headers: { range: `bytes=${many}` } });
  assert.equal(abusive.status, 416);
  assert.equal(abusive.headers.get("content-range"), `bytes */${attachment.file_size}`);
  await abusive.body?.cancel();

  // A client hanging up mid-stream over real HTTP: the server carries on and lets go of
  // the stream's file handle (the one the open-file cache keeps is closed at dispose).
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => ctx.app.fetch(req),
  );
  const abort = new AbortController();
  const response = await fetch(
    String(attachment.url).replace("http://offchat.test", `http://127.0.0.1:${server.addr.port}`),
    { signal: abort.signal },
  );
  const reader = response.body!.getReader();
  const first = await reader.read();
  assert.ok(first.value!.length < Number(attachment.file_size), "hung up mid-stream");
  abort.abort();
  await reader.cancel().catch(() => {});
  const mediaHandles = async () => {
    const out = await new Deno.Command("find", {
      args: [`/proc/${Deno.pid}/fd`, "-lname", `${ctx.dataDir}/media/*`],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
  };
  for (let i = 0; i < 50 && await mediaHandles() > 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await mediaHandles(), 1, "only the cached handle is left");
  const again = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`);
  assert.equal(again.status, 200);
  await again.body?.cancel();
});

Deno.test("media: behind nginx, bytes are handed over with X-Accel-Redirect after authorization", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { ACCEL_REDIRECT_PREFIX: "/_offchat_media/" },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const attachment = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4"), "clip.mp4"),
  );
  const response = await ctx.app.request(localPath(String(attachment.url)));
  assert.equal(response.status, 200);
  assert.match(
    response.headers.get("x-accel-redirect") ?? "",
    /^\/_offchat_media\/media\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\.mp4$/,
  );
  assert.equal(response.headers.get("content-type"), "video/mp4");
  assert.equal(response.headers.get("content-disposition"), 'attachment; filename="clip.mp4"');
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(await response.text(), "");
  assert.equal(await countRows(ctx, "activity_log WHERE action = 'video.download'"), 1);
  const stranger = await ctx.request("mallory", `/api/chat/videos/${attachment.id}/download`);
  assert.equal(stranger.status, 404);
  assert.equal(stranger.headers.get("x-accel-redirect"), null);
  await stranger.body?.cancel();
});
