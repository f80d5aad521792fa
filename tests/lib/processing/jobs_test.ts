import assert from "node:assert/strict";
import { and, eq, ne } from "drizzle-orm";
import { attachments, jobs } from "../../../db/schema.ts";
import { claimJob, failJob, retryDelayMs } from "../../../lib/processing/jobs.ts";
import { runJob } from "../../../lib/processing/processing.ts";
import { startWorker } from "../../../lib/processing/worker.ts";
import { fixture } from "../../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../../_helpers.ts";

/** Uploads a clip with no worker running and keeps only its thumbnail job, so claims are predictable. */
async function uploadWithoutWorker(ctx: TestContext): Promise<string> {
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  assert.equal(created.status, "processing");
  await ctx.deps.db.delete(jobs).where(
    and(eq(jobs.attachmentId, String(created.id)), ne(jobs.kind, "thumbnail")),
  );
  return String(created.id);
}

Deno.test("jobs: a killed worker's job is re-claimed once its lease expires", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const t0 = new Date();
  const first = await claimJob(ctx.deps.db, "worker-a", 1000, t0);
  assert.ok(first);
  assert.equal(first.attachmentId, attachmentId);
  assert.equal(first.attempts, 1);
  // worker-a dies here without finishing. Nobody may take the job while the lease holds.
  assert.equal(await claimJob(ctx.deps.db, "worker-b", 1000, new Date(t0.getTime() + 500)), null);
  const reclaimed = await claimJob(ctx.deps.db, "worker-b", 1000, new Date(t0.getTime() + 1500));
  assert.ok(reclaimed);
  assert.equal(reclaimed.id, first.id);
  assert.equal(reclaimed.attempts, 2);
  assert.equal(reclaimed.lockedBy, "worker-b");

  // A real worker (whose clock is well past the lease) finishes the job.
  const worker = startWorker({ ...ctx.deps, clock: () => new Date(Date.now() + 10_000) }, {
    concurrency: 1,
    pollMs: 20,
    leaseMs: 1000,
  });
  try {
    const done = await waitForProcessed(ctx, "alice", attachmentId);
    assert.equal(done.status, "ready");
    assert.ok(done.thumbnail_url);
  } finally {
    await worker.stop();
  }
});

Deno.test("jobs: two workers never hold the same job", async () => {
  await using ctx = await createTestContext({ worker: false });
  await uploadWithoutWorker(ctx);
  await uploadWithoutWorker(ctx);
  const now = new Date();
  const claims = await Promise.all(
    ["a", "b", "c", "d"].map((w) => claimJob(ctx.deps.db, w, 60_000, now)),
  );
  const held = claims.filter((c) => c !== null).map((c) => c!.id);
  assert.equal(held.length, 2);
  assert.equal(new Set(held).size, 2);
  assert.equal(await claimJob(ctx.deps.db, "e", 60_000, now), null);
});

Deno.test("jobs: failures retry with backoff, then the attachment fails with the reason", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  let now = new Date();
  for (let attempt = 1; attempt <= 3; attempt++) {
    const job = await claimJob(ctx.deps.db, "w", 60_000, now);
    assert.ok(job, `attempt ${attempt}`);
    assert.equal(job.attempts, attempt);
    const outcome = await failJob(ctx.deps.db, job, "w", `boom ${attempt}`, now);
    assert.equal(outcome, attempt < 3 ? "retry" : "failed");
    if (attempt < 3) {
      // Not runnable again before the backoff has passed.
      assert.equal(await claimJob(ctx.deps.db, "w", 60_000, now), null);
      now = new Date(now.getTime() + retryDelayMs(attempt));
    }
  }
  const [row] = await ctx.deps.db.select().from(attachments).where(
    eq(attachments.id, attachmentId),
  );
  assert.equal(row!.status, "failed");
  assert.equal(row!.error, "boom 3");
  const [job] = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, attachmentId));
  assert.equal(job!.status, "failed");
  const json = await body(await ctx.request("alice", `/api/chat/attachments/${attachmentId}`));
  assert.equal(json.status, "failed");
  assert.equal(json.error, "boom 3");
  assert.equal(json.stream_url, null);
});

Deno.test("jobs: a missing source file fails the job, not the worker", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const [row] = await ctx.deps.db.select().from(attachments).where(
    eq(attachments.id, attachmentId),
  );
  await ctx.deps.storage.delete(row!.storageKey);
  await ctx.deps.db.update(jobs).set({ maxAttempts: 1 }).where(eq(jobs.attachmentId, attachmentId));
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  try {
    const done = await waitForProcessed(ctx, "alice", attachmentId);
    assert.equal(done.status, "failed");
    assert.match(String(done.error), /missing/);
  } finally {
    await worker.stop();
  }
});

Deno.test("jobs: an admin reprocesses a failed attachment back to ready", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const now = new Date();
  await ctx.deps.db.update(jobs).set({ maxAttempts: 1 }).where(eq(jobs.attachmentId, attachmentId));
  const job = await claimJob(ctx.deps.db, "w", 60_000, now);
  await failJob(ctx.deps.db, job!, "w", "ffmpeg crashed", now);
  const admin = `Bearer ${await ctx.token("root", { admin: true })}`;
  const failed = await body<{ items: { id: string }[] }>(
    await ctx.app.request("/api/admin/attachments?status=failed", {
      headers: { authorization: admin },
    }),
  );
  assert.deepEqual(failed.items.map((a) => a.id), [attachmentId]);
  const byMember = await ctx.request("alice", `/api/admin/attachments/${attachmentId}/reprocess`, {
    method: "POST",
  });
  assert.equal(byMember.status, 403);
  await byMember.body?.cancel();
  const response = await ctx.app.request(`/api/admin/attachments/${attachmentId}/reprocess`, {
    method: "POST",
    headers: { authorization: admin },
  });
  assert.equal(response.status, 202);
  assert.equal((await body(response)).status, "processing");
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  try {
    assert.equal((await waitForProcessed(ctx, "alice", attachmentId)).status, "ready");
  } finally {
    await worker.stop();
  }
});

Deno.test("jobs: a job whose worker dies on every attempt fails instead of looping", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  let t = Date.now();
  for (let attempt = 1; attempt <= 3; attempt++) {
    const job = await claimJob(ctx.deps.db, `w${attempt}`, 1000, new Date(t));
    assert.ok(job, `attempt ${attempt}`);
    t += 2000; // the worker died; its lease runs out
  }
  assert.equal(await claimJob(ctx.deps.db, "w4", 1000, new Date(t)), null);
  const json = await body(await ctx.request("alice", `/api/chat/attachments/${attachmentId}`));
  assert.equal(json.status, "failed");
  assert.match(String(json.error), /stopped responding 3 times/);
});

Deno.test("jobs: a job dropped by a reprocess while running leaves no file and no key", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const stale = await claimJob(ctx.deps.db, "old-worker", 60_000, new Date());
  assert.ok(stale);
  const admin = `Bearer ${await ctx.token("root", { admin: true })}`;
  const reprocessed = await ctx.app.request(`/api/admin/attachments/${attachmentId}/reprocess`, {
    method: "POST",
    headers: { authorization: admin },
  });
  assert.equal(reprocessed.status, 202);
  await reprocessed.body?.cancel();
  // The old worker finishes after the reprocess dropped its job.
  await runJob(ctx.deps, stale, { progress: () => {} });
  const [row] = await ctx.deps.db.select().from(attachments).where(
    eq(attachments.id, attachmentId),
  );
  assert.equal(row!.thumbnailKey, null);
  assert.deepEqual((await listFiles(ctx.dataDir)).filter((f) => f.startsWith("thumbnails/")), []);
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  try {
    assert.equal((await waitForProcessed(ctx, "alice", attachmentId)).status, "ready");
  } finally {
    await worker.stop();
  }
  const thumbnails = (await listFiles(ctx.dataDir)).filter((f) => f.startsWith("thumbnails/"));
  assert.equal(thumbnails.length, 1);
});
