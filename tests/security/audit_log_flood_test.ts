/**
 * Flooding the audit log: media byte requests skip the rate limit (a player
 * sends many), and every download from byte 0 wrote a `video.download` row,
 * so one participant repeating `Range: bytes=0-0` wrote about 730 rows a
 * second, burying the real entries. Now a download is logged once per user
 * and attachment per window, decided in the database (so it holds across
 * processes), and every request that may write a row is rate-limited.
 */
import assert from "node:assert/strict";
import { and, eq } from "drizzle-orm";
import { activityLog } from "../../db/schema.ts";
import { DOWNLOAD_LOG_WINDOW_MS } from "../../routes/videos.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
} from "../_helpers.ts";
import { assertProblem, uploadBytes } from "./_world.ts";

async function downloadRows(ctx: TestContext, user: string): Promise<number> {
  const rows = await ctx.deps.db.select({ id: activityLog.id }).from(activityLog)
    .where(and(eq(activityLog.action, "video.download"), eq(activityLog.actorId, user)));
  return rows.length;
}

/** GETs `path` with the given headers and returns the status, the body discarded. */
async function status(
  ctx: TestContext,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<number> {
  const response = await ctx.app.request(path, { method, headers });
  await response.body?.cancel();
  return response.status;
}

Deno.test("audit log flood: 300 downloads from byte 0 by one participant, from two processes, write one row", async () => {
  let now = Date.parse("2026-01-15T10:00:00Z");
  const clock = () => new Date(now);
  // The rate limit is off here: the log must hold by itself. No worker runs, so no copy
  // without metadata is made: receivers download the upload itself.
  const env = { RATE_LIMIT_PER_MINUTE: "0", STRIP_METADATA: "0" };
  await using first = await createTestContext({ worker: false, clock, env });
  // A second set of deps on the same database: another API process.
  await using second = await createTestContext({
    worker: false,
    clock,
    env,
    dataDir: first.dataDir,
  });
  const { messageId } = await conversationWithMessage(first, "alice", ["bob"]);
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const attachment = await body(await uploadBytes(first, "alice", messageId, video, "a.mp4"));
  const alice = localPath(String(attachment.url));

  for (let batch = 0; batch < 10; batch++) {
    const statuses = await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) => status(i % 2 ? second : first, alice, { range: "bytes=0-0" }),
      ),
    );
    assert.deepEqual(new Set(statuses), new Set([206]));
  }
  assert.equal(await downloadRows(first, "alice"), 1, "300 requests, one download row");
  // Every other way of reading from byte 0 is the same download.
  for (const range of [null, "bytes=0-", "bytes=00-9", "bytes=-99999999", "bytes=5-9, 0-4"]) {
    const got = await status(second, alice, range ? { range } : {});
    assert.ok(got === 200 || got === 206, `${range}: ${got}`);
  }
  assert.equal(await downloadRows(first, "alice"), 1);

  // Another participant's download is their own row.
  const bobs = await body(await first.request("bob", `/api/chat/attachments/${attachment.id}`));
  assert.equal(await status(second, localPath(String(bobs.url))), 200);
  assert.equal(await downloadRows(first, "bob"), 1);

  // Within the window nothing more; once it has passed, the next download is logged again.
  now += DOWNLOAD_LOG_WINDOW_MS - 1;
  assert.equal(await status(first, alice, { range: "bytes=0-0" }), 206);
  assert.equal(await downloadRows(first, "alice"), 1);
  now += 1;
  assert.equal(await status(second, alice, { range: "bytes=0-0" }), 206);
  assert.equal(await downloadRows(first, "alice"), 2);
  assert.equal(await downloadRows(first, "bob"), 1);
});

Deno.test("audit log flood: requests that may write are rate-limited; a player's later ranges are not", async () => {
  await using setup = await createTestContext({ worker: false });
  const { conversationId, messageId } = await conversationWithMessage(setup, "alice", ["bob"]);
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const attachment = await body(await uploadBytes(setup, "alice", messageId, video, "a.mp4"));
  const id = String(attachment.id);
  const download = localPath(String(attachment.url));
  // Another process on the same database, with a low limit.
  await using ctx = await createTestContext({
    worker: false,
    dataDir: setup.dataDir,
    env: { RATE_LIMIT_PER_MINUTE: "2" },
  });

  // A player's ranges past byte 0 are not counted, however many.
  for (let i = 1; i <= 30; i++) {
    assert.equal(await status(ctx, download, { range: `bytes=${i * 100}-${i * 100 + 99}` }), 206);
  }
  // Downloads from byte 0 are: two, then 429 with Retry-After.
  const fromZero = [];
  for (let i = 0; i < 4; i++) fromZero.push(await status(ctx, download, { range: "bytes=0-0" }));
  assert.deepEqual(fromZero, [206, 206, 429, 429]);
  const limited = await ctx.app.request(download, { headers: { range: "bytes=0-0" } });
  const problem = await assertProblem(limited, "download from byte 0", [429]);
  assert.equal(problem.code, "too_many_requests");
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  // Whatever may be answered from byte 0 is counted too.
  const variants: Record<string, string>[] = [
    {},
    { range: "bytes=00-" },
    { range: "bytes=-99999999" },
    { range: "bytes=5-9, 0-4" },
    { range: "items=0-" },
    { range: "bytes=500-", "if-range": '"stale"' },
  ];
  for (const headers of variants) {
    assert.equal(await status(ctx, download, headers), 429, JSON.stringify(headers));
  }
  assert.equal(await downloadRows(ctx, "alice"), 1);
  // What writes nothing still passes: HEAD, ranges past byte 0, the other media routes.
  assert.equal(await status(ctx, download, {}, "HEAD"), 200);
  assert.equal(await status(ctx, download, { range: "bytes=1-" }), 206);
  const stream = localPath(String(attachment.stream_url));
  assert.equal(await status(ctx, stream, { range: "bytes=0-0" }), 206);
  assert.equal(await status(ctx, stream), 200);

  // Every other operation of the API, each of which may write, is counted. (Media-token
  // requests have an allowance of their own: spend alice's bearer one first.)
  const spent = [];
  for (let i = 0; i < 3; i++) {
    const response = await ctx.request("alice", "/api/chat/conversations");
    await response.body?.cancel();
    spent.push(response.status);
  }
  assert.deepEqual(spent, [200, 200, 429]);
  const doc = await body<{ paths: Record<string, Record<string, unknown>> }>(
    await ctx.app.request("/openapi.json"),
  );
  const mediaBytes =
    /\/videos\/\{id\}\/(download|stream|thumbnail|storyboard\.jpg|hls\/\{token\}\/\{file\})$/;
  const hlsToken = await ctx.deps.auth.signMediaToken({ id: "alice", admin: false }, {
    attachmentId: id,
    purpose: "hls",
  });
  let checked = 0;
  for (const [template, operations] of Object.entries(doc.paths)) {
    const path = template.replace(
      "{id}",
      template.includes("/conversations/") ? conversationId : id,
    )
      .replace("{user_id}", "bob")
      .replace("{token}/{file}", `${hlsToken}/master.m3u8`);
    for (const method of Object.keys(operations).map((m) => m.toUpperCase())) {
      const response = await ctx.request("alice", path, {
        method,
        headers: mediaBytes.test(template) ? { range: "bytes=1-" } : {},
      });
      await response.body?.cancel();
      if (mediaBytes.test(template) && method === "GET") {
        assert.notEqual(response.status, 429, `${method} ${template} past byte 0`);
      } else {
        assert.equal(response.status, 429, `${method} ${template}`);
        checked++;
      }
    }
  }
  assert.ok(checked >= 15, `${checked} operations checked`);
  assert.equal(await downloadRows(ctx, "alice"), 1);
});
