import assert from "node:assert/strict";
import { and, eq, ne } from "drizzle-orm";
import { attachments, jobs } from "../../../db/schema.ts";
import { newId } from "../../../lib/core/ids.ts";
import { expireLeasesOf, JobQueue, retryDelayMs } from "../../../lib/processing/jobs.ts";
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

/** A queue for worker `workerId` whose clock reads `at()`, so a test can move time. */
function queueOf(
  ctx: TestContext,
  options: { workerId: string; leaseMs: number; at?: () => Date },
): JobQueue {
  const at = options.at ?? (() => new Date());
  return new JobQueue({
    db: ctx.deps.db,
    workerId: options.workerId,
    leaseMs: options.leaseMs,
    clock: at,
  });
}

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
  let now = t0;
  const [workerA, workerB] = ["worker-a", "worker-b"].map((workerId) =>
    queueOf(ctx, { workerId, leaseMs: 1000, at: () => now })
  );
  const first = await workerA!.claim();
  assert.ok(first);
  assert.equal(first.attachmentId, attachmentId);
  assert.equal(first.attempts, 1);
  // worker-a dies here without finishing. Nobody may take the job while the lease holds.
  now = new Date(t0.getTime() + 500);
  assert.equal(await workerB!.claim(), null);
  now = new Date(t0.getTime() + 1500);
  const reclaimed = await workerB!.claim();
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

Deno.test("jobs: a run that lost its lease cannot touch the re-claim of its own worker", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const t0 = Date.now();
  let now = new Date(t0);
  // A worker's slots share its id: the stale run and the re-claim write as the same worker.
  const queue = queueOf(ctx, { workerId: "w", leaseMs: 1000, at: () => now });
  const stale = await queue.claim();
  assert.ok(stale);
  now = new Date(t0 + 1500); // the first slot stalled past its lease
  const current = await queue.claim();
  assert.equal(current?.id, stale.id);
  assert.equal(current.attempts, 2);

  assert.equal(await queue.extend(stale), false);
  await queue.progress(stale, 0.5);
  await queue.complete(stale);
  await queue.fail(stale, "late failure");
  const jobRow = async () =>
    (await ctx.deps.db.select().from(jobs).where(eq(jobs.id, current.id)))[0]!;
  const attachmentStatus = async () =>
    (await ctx.deps.db.select().from(attachments).where(eq(attachments.id, attachmentId)))[0]!
      .status;
  let row = await jobRow();
  assert.equal(row.status, "running");
  assert.equal(row.attempts, 2);
  assert.equal(row.lockedUntil, t0 + 2500);
  assert.equal(row.progress, null);
  assert.equal(row.lastError, null);
  assert.equal(await attachmentStatus(), "processing");

  assert.equal(await queue.extend(current), true);
  await queue.progress(current, 0.5);
  assert.equal((await jobRow()).progress, 0.5);
  await queue.complete(current);
  row = await jobRow();
  assert.equal(row.status, "done");
  assert.equal(await attachmentStatus(), "ready");
});

Deno.test("jobs: two workers never hold the same job", async () => {
  await using ctx = await createTestContext({ worker: false });
  await uploadWithoutWorker(ctx);
  await uploadWithoutWorker(ctx);
  const claims = await Promise.all(
    ["a", "b", "c", "d"].map((workerId) => queueOf(ctx, { workerId, leaseMs: 60_000 }).claim()),
  );
  const held = claims.filter((c) => c !== null).map((c) => c!.id);
  assert.equal(held.length, 2);
  assert.equal(new Set(held).size, 2);
  assert.equal(await queueOf(ctx, { workerId: "e", leaseMs: 60_000 }).claim(), null);
});

Deno.test("jobs: an upload's jobs are claimed before a backfill's, however old", async () => {
  await using ctx = await createTestContext({ worker: false });
  const backfilled = await uploadWithoutWorker(ctx);
  await ctx.deps.db.update(jobs).set({ batchId: "batch-1", runAfter: 0 })
    .where(eq(jobs.attachmentId, backfilled));
  const uploaded = await uploadWithoutWorker(ctx);
  const queue = queueOf(ctx, { workerId: "w", leaseMs: 60_000 });
  assert.equal((await queue.claim())?.attachmentId, uploaded);
  assert.equal((await queue.claim())?.attachmentId, backfilled);
  assert.equal(await queue.claim(), null);
});

Deno.test("jobs: failures retry with backoff, then the attachment fails with the reason", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  let now = new Date();
  const queue = queueOf(ctx, { workerId: "w", leaseMs: 60_000, at: () => now });
  for (let attempt = 1; attempt <= 3; attempt++) {
    const job = await queue.claim();
    assert.ok(job, `attempt ${attempt}`);
    assert.equal(job.attempts, attempt);
    const outcome = await queue.fail(job, `boom ${attempt}`);
    assert.equal(outcome, attempt < 3 ? "retry" : "failed");
    if (attempt < 3) {
      // Not runnable again before the backoff has passed.
      assert.equal(await queue.claim(), null);
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

Deno.test("jobs: a later job that fails for good leaves a ready attachment ready", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  let now = new Date();
  const queue = queueOf(ctx, { workerId: "w", leaseMs: 1000, at: () => now });
  const thumbnail = await queue.claim();
  await runJob(ctx.deps, thumbnail!, { progress: () => {} });
  await queue.complete(thumbnail!);
  assert.equal(
    (await body(await ctx.request("alice", `/api/chat/attachments/${attachmentId}`)))
      .status,
    "ready",
  );
  // Two jobs queued afterwards (as a backfill does), with one attempt each: one
  // fails, the other's worker dies.
  const t = now.getTime();
  await ctx.deps.db.insert(jobs).values(["storyboard", "hls"].map((kind) => ({
    id: newId(),
    kind,
    attachmentId,
    maxAttempts: 1,
    runAfter: t,
    batchId: "batch-1",
    createdAt: t,
    updatedAt: t,
  })));
  const failing = await queue.claim();
  assert.equal(await queue.fail(failing!, "ffmpeg crashed"), "failed");
  assert.ok(await queue.claim(), "the second job is claimed, then its worker dies");
  now = new Date(t + 5000);
  assert.equal(await queue.failAbandoned(), 1);

  const later = await ctx.deps.db.select().from(jobs)
    .where(and(eq(jobs.attachmentId, attachmentId), eq(jobs.batchId, "batch-1")));
  assert.deepEqual(later.map((job) => job.status), ["failed", "failed"]);
  assert.deepEqual(later.map((job) => job.lastError).sort(), [
    "The worker stopped responding on every attempt",
    "ffmpeg crashed",
  ]);
  const json = await body(await ctx.request("alice", `/api/chat/attachments/${attachmentId}`));
  assert.equal(json.status, "ready");
  assert.equal(json.error, null);
  assert.ok(json.thumbnail_url);
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
  await ctx.deps.db.update(jobs).set({ maxAttempts: 1 }).where(eq(jobs.attachmentId, attachmentId));
  const queue = queueOf(ctx, { workerId: "w", leaseMs: 60_000 });
  const job = await queue.claim();
  await queue.fail(job!, "ffmpeg crashed");
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
    const job = await queueOf(ctx, {
      workerId: `w${attempt}`,
      leaseMs: 1000,
      at: () => new Date(t),
    })
      .claim();
    assert.ok(job, `attempt ${attempt}`);
    t += 2000; // the worker died; its lease runs out
  }
  assert.equal(
    await queueOf(ctx, { workerId: "w4", leaseMs: 1000, at: () => new Date(t) }).claim(),
    null,
  );
  const json = await body(await ctx.request("alice", `/api/chat/attachments/${attachmentId}`));
  assert.equal(json.status, "failed");
  assert.match(String(json.error), /stopped responding 3 times/);
});

Deno.test("jobs: a job dropped by a reprocess while running leaves no file and no key", async () => {
  await using ctx = await createTestContext({ worker: false });
  const attachmentId = await uploadWithoutWorker(ctx);
  const stale = await queueOf(ctx, { workerId: "old-worker", leaseMs: 60_000 }).claim();
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
  assert.deepEqual((await listFiles(ctx.dataDir)).filter((f) => f.startsWith("posters/")), []);
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  try {
    assert.equal((await waitForProcessed(ctx, "alice", attachmentId)).status, "ready");
  } finally {
    await worker.stop();
  }
  const thumbnails = (await listFiles(ctx.dataDir)).filter((f) => f.endsWith("/thumbnail.jpg"));
  assert.equal(thumbnails.length, 1);
});

Deno.test("jobs: a dead worker's leases end at once; the job is claimed again, its attempt counted", async () => {
  await using ctx = await createTestContext({ worker: false });
  await uploadWithoutWorker(ctx);
  const dead = queueOf(ctx, { workerId: "worker-dead", leaseMs: 60_000 });
  const live = queueOf(ctx, { workerId: "worker-live", leaseMs: 60_000 });
  const first = await dead.claim();
  assert.ok(first);
  assert.equal(await live.claim(), null, "the lease holds");
  // Another worker's jobs are not touched.
  assert.equal(await expireLeasesOf(ctx.deps.db, "worker-other", new Date()), 0);
  assert.equal(await live.claim(), null);
  assert.equal(await expireLeasesOf(ctx.deps.db, "worker-dead", new Date()), 1);
  const again = await live.claim();
  assert.equal(again?.id, first.id);
  assert.equal(again?.attempts, 2);
  // The dead run can no longer touch it.
  assert.equal(await dead.extend(first), false);
});

Deno.test("jobs: release puts a running job back at once without counting the attempt", async () => {
  await using ctx = await createTestContext({ worker: false });
  await uploadWithoutWorker(ctx);
  const stopping = queueOf(ctx, { workerId: "worker-stopping", leaseMs: 60_000 });
  const other = queueOf(ctx, { workerId: "worker-other", leaseMs: 60_000 });
  const job = await stopping.claim();
  assert.ok(job);
  assert.equal(job.attempts, 1);
  assert.equal(await stopping.release(job), true);
  assert.equal(await stopping.release(job), false, "only while this run holds it");
  const [row] = await ctx.deps.db.select().from(jobs).where(eq(jobs.id, job.id));
  assert.equal(row!.status, "queued");
  assert.equal(row!.attempts, 0);
  assert.equal(row!.lockedBy, null);
  const again = await other.claim();
  assert.equal(again?.id, job.id);
  assert.equal(again?.attempts, 1);
});

Deno.test("jobs: a live worker's job outlasting its lease is never taken: the heartbeat extends it", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("long.avi")));
  const id = String(created.id);
  // Only the transcode, which takes far longer than a 400 ms lease.
  await ctx.deps.db.delete(jobs).where(and(eq(jobs.attachmentId, id), ne(jobs.kind, "rendition")));
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20, leaseMs: 400 });
  const thief = queueOf(ctx, { workerId: "worker-thief", leaseMs: 400 });
  try {
    let running = 0;
    while (true) {
      const [job] = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
      if (job!.status === "done") break;
      if (job!.status === "running") running++;
      assert.equal(await thief.claim(), null, "the running job stays with its worker");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(running > 20, `the job ran over several leases (${running} checks)`);
    const [job] = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
    assert.equal(job!.attempts, 1);
  } finally {
    await worker.stop();
  }
});
