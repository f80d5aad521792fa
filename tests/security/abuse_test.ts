/**
 * Point 7 of the threat model: per-user rate limit, concurrent-upload cap and
 * storage quota.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { TokenBuckets } from "../../routes/_rate_limit.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  LOOPBACK,
  TEST_SECRET,
  type TestContext,
} from "../_helpers.ts";
import { assertNothingLeft, assertProblem, snapshot, uploadBytes } from "./_world.ts";

Deno.test("rate limit: token buckets refill continuously and say exactly how long to wait", () => {
  const buckets = new TokenBuckets({ capacity: 2, periodMs: 60_000 });
  assert.equal(buckets.take("a", 0), 0);
  assert.equal(buckets.take("a", 0), 0);
  assert.equal(buckets.take("a", 0), 30_000);
  assert.equal(buckets.take("b", 0), 0, "another key has its own bucket");
  assert.equal(buckets.take("a", 29_999), 1);
  assert.equal(buckets.take("a", 30_000), 0);
  const few = new TokenBuckets({ capacity: 1, periodMs: 1000, maxKeys: 2 });
  few.take("x", 0);
  few.take("y", 0);
  few.take("z", 0);
  assert.equal(few.take("x", 0), 0, "the least recently used key was forgotten");
});

Deno.test("rate limit: 429 with Retry-After per user; forged tokens count against the address", async () => {
  await using ctx = await createTestContext({ worker: false, env: { RATE_LIMIT_PER_MINUTE: "5" } });
  const { messageId } = await conversationWithMessage(ctx, "alice"); // 2 of alice's 5
  for (let i = 0; i < 3; i++) {
    const ok = await ctx.request("alice", "/api/chat/conversations");
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  }
  const limited = await ctx.request("alice", "/api/chat/conversations");
  assert.equal(limited.status, 429);
  const retryAfter = Number(limited.headers.get("retry-after"));
  assert.ok(retryAfter >= 1 && retryAfter <= 12, `Retry-After ${retryAfter}`);
  const problem = await assertProblem(limited, "limited", [429]);
  assert.equal(problem.code, "too_many_requests");
  // Bob has his own allowance.
  const bob = await ctx.request("bob", "/api/chat/conversations");
  assert.equal(bob.status, 200);
  await bob.body?.cancel();
  // A token that is not valid cannot spend Bob's allowance: it counts against the address.
  const forged = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("bob")
    .setExpirationTime("1h").sign(new TextEncoder().encode("x".repeat(40)));
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) {
    const response = await ctx.app.request("/api/chat/conversations", {
      headers: { authorization: `Bearer ${forged}` },
    });
    statuses.push(response.status);
    await response.body?.cancel();
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
  const stillBob = await ctx.request("bob", "/api/chat/conversations");
  assert.equal(stillBob.status, 200);
  await stillBob.body?.cancel();
  // /healthz is outside the limit.
  const health = await ctx.app.request("/healthz");
  assert.equal(health.status, 200);
  await health.body?.cancel();
  assert.ok(messageId);
});

Deno.test("rate limit: media bytes are not counted; media tokens count in their user's media allowance", async () => {
  await using ctx = await createTestContext({ worker: false, env: { RATE_LIMIT_PER_MINUTE: "4" } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const attachment = await body(await uploadBytes(ctx, "alice", messageId, video, "a.mp4"));
  // Three of alice's four spent; a player's range requests after the first byte do not
  // count (a download from byte 0 does: audit_log_flood_test.ts).
  for (let i = 1; i <= 30; i++) {
    const range = await ctx.app.request(
      String(attachment.url).replace("http://offchat.test", ""),
      { headers: { range: `bytes=${i}-${i + 100}` } },
    );
    assert.equal(range.status, 206);
    await range.body?.cancel();
  }
  const events = String(attachment.events_url).replace("http://offchat.test", "");
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const response = await ctx.app.request(events);
    statuses.push(response.status);
    await response.body?.cancel();
  }
  assert.deepEqual(statuses, [200, 200, 200, 200, 429], "a media token counts against its user");
  // …in an allowance of its own: alice's API requests are not the worse for it.
  const own = await ctx.request("alice", "/api/chat/conversations");
  assert.equal(own.status, 200);
  await own.body?.cancel();
});

/** A multipart upload whose file part stalls until `release()` is called. */
function stalledUpload(messageId: string): { body: ReadableStream<Uint8Array>; release(): void } {
  const boundary = "----offchat-stall";
  const enc = new TextEncoder();
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(enc.encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n${messageId}\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n` +
          "Content-Type: video/mp4\r\n\r\n",
      ));
      controller.enqueue(new Uint8Array(1000));
      await released;
      controller.enqueue(enc.encode(`\r\n--${boundary}--\r\n`));
      controller.close();
    },
  });
  return { body, release: () => release() };
}

/** Posts alice's multipart upload whose file part stalls (see `stalledUpload`), unanswered yet. */
async function postStalled(ctx: TestContext, messageId: string) {
  const stalled = stalledUpload(messageId);
  const response = ctx.app.request("/api/chat/videos/upload/", {
    method: "POST",
    body: stalled.body,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "content-type": "multipart/form-data; boundary=----offchat-stall",
    },
  });
  return { response, release: stalled.release };
}

Deno.test("upload cap: a user's second concurrent upload is 429 with Retry-After; the slot is freed after", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_CONCURRENT_UPLOADS: "1" },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const stalled = await postStalled(ctx, messageId);
  const first = stalled.response;
  // Its body is being read: it holds the user's one slot.
  await until(() => ctx.deps.uploadAdmission.counts.busy === 1);
  for (const path of ["/api/chat/videos/upload/", "/api/chat/videos/upload"]) {
    const second = await ctx.request("alice", path, { method: "POST", body: new FormData() });
    assert.equal(second.status, 429, path);
    assert.ok(Number(second.headers.get("retry-after")) >= 1);
    await assertProblem(second, "second upload", [429]);
  }
  // Another user is not held up by Alice's upload.
  const bobs = await conversationWithMessage(ctx, "bob");
  const bob = await uploadBytes(ctx, "bob", bobs.messageId, video, "b.mp4");
  assert.equal(bob.status, 201);
  await bob.body?.cancel();
  stalled.release();
  const done = await first;
  assert.equal(done.status, 415, "the stalled upload ends (zero bytes are not a video)");
  await done.body?.cancel();
  const third = await uploadBytes(ctx, "alice", messageId, video, "c.mp4");
  assert.equal(third.status, 201, "the slot was released");
  await third.body?.cancel();
});

Deno.test("quota: USER_QUOTA_BYTES refuses before reading when Content-Length says so, and on the byte count", async () => {
  const video = await Deno.readFile(await fixture("h264.mp4"));
  await using ctx = await createTestContext({
    worker: false,
    env: { USER_QUOTA_BYTES: String(Math.floor(video.length * 1.5)) },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const first = await uploadBytes(ctx, "alice", messageId, video, "a.mp4");
  assert.equal(first.status, 201);
  const attachment = await body(first);
  const before = await snapshot(ctx);
  // With a Content-Length: refused before the body is read.
  const form1 = new FormData();
  form1.append("message_id", messageId);
  form1.append("file", new Blob([video]), "b.mp4");
  const encoded1 = new Response(form1);
  const bytes1 = new Uint8Array(await encoded1.arrayBuffer());
  const declared = await ctx.app.request("/api/chat/videos/upload/", {
    method: "POST",
    body: bytes1,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "content-type": encoded1.headers.get("content-type")!,
      "content-length": String(bytes1.length),
    },
  });
  const problem = await assertProblem(declared, "declared", [413]);
  assert.match(String(problem.detail), /quota/);
  // Chunked, no Content-Length: cut off by the byte counter at what is left.
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([video]), "c.mp4");
  const encoded = new Response(form);
  const chunked = await ctx.app.request("/api/chat/videos/upload/", {
    method: "POST",
    body: encoded.body,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "content-type": encoded.headers.get("content-type")!,
    },
  });
  await assertProblem(chunked, "chunked", [413]);
  await assertNothingLeft(ctx, before);
  // Another user's quota is their own; deleting frees Alice's.
  const bobs = await conversationWithMessage(ctx, "bob");
  const bob = await uploadBytes(ctx, "bob", bobs.messageId, video, "d.mp4");
  assert.equal(bob.status, 201);
  await bob.body?.cancel();
  const deleted = await ctx.request("alice", `/api/chat/attachments/${attachment.id}`, {
    method: "DELETE",
  });
  assert.equal(deleted.status, 204);
  const again = await uploadBytes(ctx, "alice", messageId, video, "e.mp4");
  assert.equal(again.status, 201);
  await again.body?.cancel();
  assert.ok(TEST_SECRET);
});

/** Resolves once `ready()` holds, checking after each macrotask (the state is in memory). */
async function until(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 1));
}

Deno.test("upload slots: past UPLOADS_PER_PROCESS an upload waits unread, in order; a full queue is 503 with Retry-After; a client that leaves gives up its place", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { UPLOADS_PER_PROCESS: "1", UPLOAD_QUEUE_MAX: "2", MAX_CONCURRENT_UPLOADS: "0" },
  });
  const admission = ctx.deps.uploadAdmission;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const stalled = await postStalled(ctx, messageId);
  const first = stalled.response;
  await until(() => admission.counts.busy === 1);
  // Second and third wait; the third's client then leaves.
  const second = uploadBytes(ctx, "alice", messageId, video, "b.mp4");
  await until(() => admission.counts.waiting === 1);
  const leaving = new AbortController();
  const third = ctx.app.request("/api/chat/videos/upload/", {
    method: "POST",
    body: new FormData(),
    signal: leaving.signal,
    headers: { authorization: `Bearer ${await ctx.token("alice")}` },
  });
  await until(() => admission.counts.waiting === 2);
  const metrics = await ctx.app.request("/metrics", {}, LOOPBACK);
  const text = await metrics.text();
  assert.match(text, /^offchat_upload_slots\{state="busy"\} 1$/m);
  assert.match(text, /^offchat_upload_slots\{state="waiting"\} 2$/m);
  const full = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: new FormData(),
  });
  assert.equal(full.status, 503);
  assert.equal(full.headers.get("content-type"), "application/problem+json");
  assert.equal((await body(full)).code, "unavailable");
  assert.equal(full.headers.get("retry-after"), "5");
  leaving.abort();
  assert.equal((await third).status, 400, "the leaving client's place is given up");
  assert.equal(admission.counts.waiting, 1);
  stalled.release();
  const done = await first;
  assert.equal(done.status, 415, "the stalled upload ends (zero bytes are not a video)");
  await done.body?.cancel();
  const landed = await second;
  assert.equal(landed.status, 201, "the waiting upload was read once the slot was free");
  await landed.body?.cancel();
  assert.deepEqual(admission.counts, { busy: 0, waiting: 0, refused: 1 });
  const after = await (await ctx.app.request("/metrics", {}, LOOPBACK)).text();
  assert.match(after, /^offchat_upload_queue_refused_total 1$/m);
});
