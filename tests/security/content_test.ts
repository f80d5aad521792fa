/**
 * Point 3 of the threat model: the client's claims (file name, type) never
 * decide anything; every media response is locked down; uploader metadata
 * is never echoed.
 */
import assert from "node:assert/strict";
import { ffmpeg, ffprobeJson, fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
  waitForProcessed,
} from "../_helpers.ts";
import { storedPath } from "./_world.ts";

const HOSTILE_NAMES = [
  "../../etc/passwd",
  "..\\..\\windows\\system32\\evil.mp4",
  "line\r\nSet-Cookie: session=stolen\r\n\r\n<html>.mp4",
  `quo"te's; filename="other.exe".mp4`,
  "видео 日本語 فيديو.mp4",
  `${"long-".repeat(70)}.mp4`,
  "ctl\u0000\u0007\u001b[31mred\u007f.mp4",
  "\u202eexe.mp4",
  "%2e%2e%2fetc%2fpasswd.mp4",
  "<script>alert(1)</script>.mp4",
  "img%03d.png",
  "file:/etc/passwd",
  "...",
];

/** A multipart body whose file name travels as RFC 5987 `filename*`, so CR, LF and NUL arrive as such. */
async function uploadNamed(
  ctx: TestContext,
  messageId: string,
  name: string,
  video: Uint8Array,
): Promise<Response> {
  const boundary = "----offchat-names";
  const enc = new TextEncoder();
  const head = enc.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n${messageId}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; ` +
      `filename*=UTF-8''${
        encodeURIComponent(name).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)
      }\r\nContent-Type: text/html\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const bytes = new Uint8Array(head.length + video.length + tail.length);
  bytes.set(head);
  bytes.set(video, head.length);
  bytes.set(tail, head.length + video.length);
  return await ctx.app.request("/api/chat/videos/upload/", {
    method: "POST",
    body: bytes,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "content-type": `multipart/form-data; boundary=${boundary}`,
    },
  });
}

/** RFC 6266 with RFC 8187: a quoted ASCII `filename`, optionally an encoded `filename*`. */
const DISPOSITION =
  /^attachment; filename="(?:[\x20-\x21\x23-\x5b\x5d-\x7e])*"(?:; filename\*=UTF-8''[A-Za-z0-9!#$&+.^_`|~%-]*)?$/;

Deno.test("content: hostile file names are stored as labels and give valid Content-Disposition", async () => {
  // Every name goes to one message, more than MAX_ATTACHMENTS_PER_MESSAGE's default.
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_ATTACHMENTS_PER_MESSAGE: "100" },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  for (const name of HOSTILE_NAMES) {
    const response = await uploadNamed(ctx, messageId, name, video);
    assert.equal(response.status, 201, JSON.stringify(name));
    const attachment = await body(response);
    const stored = String(attachment.file_name);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(stored, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069/\\]/, name);
    assert.ok(Array.from(stored).length <= 255 && stored.length > 0, name);
    assert.equal(attachment.mime_type, "video/mp4", "the type comes from the content");
    const storedAt = await storedPath(ctx, String(attachment.id));
    assert.match(
      storedAt.slice(ctx.dataDir.length),
      /^\/media\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\.mp4$/,
    );
    const download = await ctx.app.request(localPath(String(attachment.url)));
    assert.equal(download.status, 200);
    await download.body?.cancel();
    const disposition = download.headers.get("content-disposition") ?? "";
    assert.match(disposition, DISPOSITION, JSON.stringify(name));
    const encoded = /filename\*=UTF-8''(.*)$/.exec(disposition)?.[1];
    assert.equal(
      encoded ? decodeURIComponent(encoded) : /filename="(.*)"/.exec(disposition)![1],
      stored,
    );
    assert.equal(download.headers.get("content-type"), "video/mp4");
  }
});

Deno.test("content: every media response, errors included, is nosniff, sandboxed and no-referrer", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const created = await body(await uploadNamed(ctx, messageId, "clip.mp4", video));
  const attachment = await waitForProcessed(ctx, "alice", String(created.id));
  assert.equal(attachment.status, "ready");
  const id = String(attachment.id);
  const checks: [string, RequestInit, string | null][] = [];
  for (const suffix of ["download", "stream", "thumbnail", "storyboard.jpg", "storyboard.vtt"]) {
    const path = `/api/chat/videos/${id}/${suffix}`;
    checks.push(
      [path, {}, "alice"],
      [path, { method: "HEAD" }, "alice"],
      [path, { headers: { range: "bytes=0-9" } }, "alice"],
      [path, { headers: { range: "bytes=999999999-" } }, "alice"],
      [path, { headers: { "if-none-match": "*" } }, "alice"],
      [path, {}, "mallory"],
      [path, {}, null],
      [path.replace(id, "01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77"), {}, "alice"],
      [`${path}?token=forged`, {}, null],
    );
  }
  const seen = new Set<number>();
  for (const [path, init, user] of checks) {
    const response = await ctx.request(user, path, init);
    await response.body?.cancel();
    seen.add(response.status);
    const label = `${init.method ?? "GET"} ${path} ${
      JSON.stringify(init.headers ?? {})
    } as ${user}`;
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", label);
    assert.match(
      response.headers.get("content-security-policy") ?? "",
      /default-src 'none'.*sandbox/,
      label,
    );
    assert.equal(response.headers.get("referrer-policy"), "no-referrer", label);
  }
  for (const status of [200, 206, 304, 401, 404, 416]) {
    assert.ok(seen.has(status), `no ${status} seen`);
  }
});

Deno.test("content: uploader tags (title, comment, location) are never echoed", async () => {
  await using ctx = await createTestContext();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-tags-" });
  try {
    const marker = "<script>alert('tag')</script>\u001b]0;pwned\u0007";
    const tagged = `${scratch}/tagged.avi`;
    // AVI/MPEG-4 Part 2 is transcoded, so the rendition is made by the server.
    await ffmpeg([
      "-i",
      await fixture("mpeg4.avi"),
      "-c",
      "copy",
      "-metadata",
      `title=${marker}`,
      "-metadata",
      `comment=${marker}`,
      "-metadata",
      "location=+48.8584+002.2945/",
      "-f",
      "avi",
      "-y",
      tagged,
    ]);
    assert.match(JSON.stringify(await ffprobeJson(tagged)), /pwned/, "the source carries the tags");
    const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
    const created = await body(
      await uploadNamed(ctx, messageId, "tagged.avi", await Deno.readFile(tagged)),
    );
    const attachment = await waitForProcessed(ctx, "alice", String(created.id));
    assert.equal(attachment.status, "ready");
    const texts: string[] = [JSON.stringify(attachment)];
    for (
      const path of [
        `/api/chat/messages/${messageId}/attachments`,
        `/api/chat/attachments/${attachment.id}/events`,
        `/api/chat/videos/${attachment.id}/storyboard.vtt`,
      ]
    ) {
      texts.push(await (await ctx.request("bob", path)).text());
    }
    texts.push(
      await (await ctx.app.request("/api/admin/activity", {
        headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
      })).text(),
    );
    for (const text of texts) {
      assert.ok(!text.includes("pwned") && !text.includes("alert("), text.slice(0, 200));
      assert.ok(!text.includes("48.8584"), "location");
    }
    const stream = await ctx.app.request(localPath(String(attachment.stream_url)));
    const rendition = `${scratch}/rendition.mp4`;
    await Deno.writeFile(rendition, new Uint8Array(await stream.arrayBuffer()));
    const probed = await ffprobeJson(rendition) as {
      format: { tags?: Record<string, string> };
      streams: { tags?: Record<string, string> }[];
    };
    for (const tags of [probed.format.tags, ...probed.streams.map((s) => s.tags)]) {
      assert.deepEqual(Object.keys(tags ?? {}).filter((k) => /title|comment|location/.test(k)), []);
    }
    assert.doesNotMatch(JSON.stringify(probed), /pwned|48\.8584/);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
