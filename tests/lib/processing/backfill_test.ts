/**
 * Issue 12, point 4: one command brings existing attachments to the current
 * policy. Attachments are made under one configuration, then a second
 * context on the same data directory and database runs under another, as a
 * restart with new settings does.
 */
import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { type Attachment, attachments, jobs } from "../../../db/schema.ts";
import { newId } from "../../../lib/core/ids.ts";
import {
  backfill,
  type BackfillProgress,
  backfillProgress,
} from "../../../lib/processing/backfill.ts";
import { startWorker } from "../../../lib/processing/worker.ts";
import { fixture, type FixtureName } from "../../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../../_helpers.ts";

/** Uploads `name` as alice and waits until it is processed; its id. */
async function processed(ctx: TestContext, name: FixtureName): Promise<string> {
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture(name)));
  const id = String(created.id);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  return id;
}

async function row(ctx: TestContext, id: string): Promise<Attachment> {
  const [found] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  return found!;
}

/** Polls the batch until none of its jobs is queued or running. */
async function settled(ctx: TestContext, batchId: string): Promise<BackfillProgress> {
  const deadline = Date.now() + 60_000;
  while (true) {
    const progress = await backfillProgress(ctx.deps.db, batchId);
    assert.ok(progress, "the batch has jobs");
    if (progress.queued + progress.running === 0 || Date.now() > deadline) return progress;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("backfill: what a new policy asks of old attachments is queued once, by kind, page by page", async () => {
  await using before = await createTestContext({
    env: { STRIP_METADATA: "0", HLS_MIN_DURATION: "60" },
  });
  const [open, plain, deleted, failed] = [
    await processed(before, "h264.mp4"),
    await processed(before, "h264.mp4"),
    await processed(before, "h264.mp4"),
    await processed(before, "h264.mp4"),
  ];
  await before.worker!.stop();
  assert.equal((await row(before, plain)).playback, "original");
  assert.equal((await row(before, plain)).strippedKey, null);

  // Restarted with metadata stripping, a ladder from 1 s and renditions of at most 144 lines.
  await using ctx = await createTestContext({
    dataDir: before.dataDir,
    worker: false,
    env: { STRIP_METADATA: "1", HLS_MIN_DURATION: "1", RENDITION_MAX_HEIGHT: "144" },
  });
  const gone = await ctx.request("alice", `/api/chat/attachments/${deleted}`, {
    method: "DELETE",
  });
  assert.equal(gone.status, 204);
  await ctx.deps.db.update(attachments).set({ status: "failed" })
    .where(eq(attachments.id, failed));
  // An hls job already waits for one of them (no batch): it is not queued twice.
  const t = Date.now();
  await ctx.deps.db.insert(jobs).values({
    id: newId(),
    kind: "hls",
    attachmentId: open,
    runAfter: t,
    createdAt: t,
    updatedAt: t,
  });
  const jobsBefore = await countRows(ctx, "jobs");

  const expected = { thumbnail: 0, strip: 2, subtitles: 0, rendition: 2, hls: 1, storyboard: 0 };
  const preview = await backfill(ctx.deps, { dryRun: true, pageSize: 1 });
  assert.deepEqual(preview, {
    batchId: null,
    dryRun: true,
    scanned: 2,
    attachments: 2,
    jobs: expected,
    missingOriginals: 0,
  });
  assert.equal(await countRows(ctx, "jobs"), jobsBefore, "a dry run writes nothing");

  const run = await backfill(ctx.deps, { pageSize: 1 });
  assert.ok(run.batchId);
  assert.deepEqual({ ...run, batchId: null }, { ...preview, dryRun: false });
  const queued = await ctx.deps.db.select().from(jobs).where(eq(jobs.batchId, run.batchId));
  assert.deepEqual(
    queued.map((job) => `${job.attachmentId === open ? "open" : "plain"} ${job.kind}`).sort(),
    ["open rendition", "open strip", "plain hls", "plain rendition", "plain strip"],
  );
  assert.ok(queued.every((job) => job.status === "queued" && job.maxAttempts === 3));
  assert.deepEqual(await backfillProgress(ctx.deps.db, run.batchId), {
    batchId: run.batchId,
    total: 5,
    queued: 5,
    running: 0,
    done: 0,
    failed: 0,
  });
  assert.equal(await backfillProgress(ctx.deps.db, newId()), null);

  // Everything wanted now has an open job: a second run queues nothing.
  const again = await backfill(ctx.deps, { pageSize: 2 });
  assert.equal(again.batchId, null);
  assert.deepEqual(again.jobs, {
    thumbnail: 0,
    strip: 0,
    subtitles: 0,
    rendition: 0,
    hls: 0,
    storyboard: 0,
  });
  assert.equal(await countRows(ctx, "jobs"), jobsBefore + 5);
});

Deno.test("backfill: the jobs bring a ready attachment to the policy without leaving ready, and the next run finds nothing", async () => {
  await using before = await createTestContext({
    env: { STRIP_METADATA: "0", HLS_MIN_DURATION: "60" },
  });
  const id = await processed(before, "h264.mp4");
  await before.worker!.stop();

  await using ctx = await createTestContext({
    dataDir: before.dataDir,
    worker: false,
    env: { STRIP_METADATA: "1", HLS_MIN_DURATION: "1", RENDITION_MAX_HEIGHT: "144" },
  });
  const run = await backfill(ctx.deps);
  assert.deepEqual(run.jobs, {
    thumbnail: 0,
    strip: 1,
    subtitles: 0,
    rendition: 1,
    hls: 1,
    storyboard: 0,
  });
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  const statuses = new Set<string>();
  try {
    while (true) {
      statuses.add((await row(ctx, id)).status);
      const progress = await backfillProgress(ctx.deps.db, run.batchId!);
      if (progress!.queued + progress!.running === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await worker.stop();
  }
  assert.deepEqual(await settled(ctx, run.batchId!), {
    batchId: run.batchId,
    total: 3,
    queued: 0,
    running: 0,
    done: 3,
    failed: 0,
  });
  assert.deepEqual([...statuses], ["ready"], "the attachment stays ready throughout");
  const after = await row(ctx, id);
  assert.ok(after.strippedKey);
  assert.equal(after.playback, "transcode");
  assert.ok(after.hlsKey);
  const meta = JSON.parse(after.playbackMeta!);
  assert.equal(Math.min(meta.width, meta.height), 144);

  // The rendition made under the policy is within it: nothing is queued again.
  const next = await backfill(ctx.deps);
  assert.equal(next.batchId, null);
  assert.equal(next.attachments, 0);
});

Deno.test("backfill: a ladder the policy no longer wants is removed; an attachment without its original is skipped", async () => {
  await using before = await createTestContext({ env: { HLS_MIN_DURATION: "1" } });
  const id = await processed(before, "h264.mp4");
  const lost = await processed(before, "h264.mp4");
  await before.worker!.stop();
  const ladder = (await row(before, id)).hlsKey;
  assert.ok(ladder);

  await using ctx = await createTestContext({
    dataDir: before.dataDir,
    worker: false,
    env: { HLS: "0" },
  });
  await ctx.deps.storage.delete((await row(ctx, lost)).storageKey);
  const run = await backfill(ctx.deps);
  assert.deepEqual(run.jobs, {
    thumbnail: 0,
    strip: 0,
    subtitles: 0,
    rendition: 0,
    hls: 1,
    storyboard: 0,
  });
  assert.equal(run.attachments, 1);
  assert.equal(run.missingOriginals, 1);
  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  try {
    assert.equal((await settled(ctx, run.batchId!)).done, 1);
  } finally {
    await worker.stop();
  }
  const after = await row(ctx, id);
  assert.equal(after.hlsKey, null);
  assert.equal(after.status, "ready");
  assert.equal(await ctx.deps.storage.stat(ladder), null, "the ladder's files are gone");
});
