/**
 * Issue 12, point 4, over HTTP: `POST /api/admin/backfill` queues what the
 * current policy asks of attachments made under an earlier one, and
 * `GET /api/admin/backfill/{batch_id}` follows the run.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { startWorker } from "../../lib/processing/worker.ts";

interface Backfill {
  batch_id: string | null;
  dry_run: boolean;
  scanned: number;
  attachments: number;
  jobs: Record<string, number>;
  missing_originals: number;
}

interface Progress {
  batch_id: string;
  total: number;
  queued: number;
  running: number;
  done: number;
  failed: number;
}

async function asAdmin(ctx: TestContext, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${await ctx.token("root", { admin: true })}`);
  return await ctx.app.request(path, { ...init, headers });
}

function post(payload?: unknown): RequestInit {
  return payload === undefined ? { method: "POST" } : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  };
}

const NO_JOBS = { thumbnail: 0, strip: 0, subtitles: 0, rendition: 0, hls: 0, storyboard: 0 };

Deno.test("admin backfill: an attachment made without a ladder gets one after HLS_MIN_DURATION is lowered", async () => {
  // Made while only videos of a minute or more got a ladder.
  await using before = await createTestContext({ env: { HLS_MIN_DURATION: "60" } });
  const { messageId } = await conversationWithMessage(before, "alice");
  const created = await body(
    await uploadFile(before, "alice", messageId, await fixture("h264.mp4")),
  );
  const id = String(created.id);
  const made = await waitForProcessed(before, "alice", id);
  assert.equal(made.status, "ready");
  assert.equal(made.hls_url, null);
  await before.worker!.stop();

  // Restarted with ladders from 1 s; no worker yet.
  await using ctx = await createTestContext({
    dataDir: before.dataDir,
    worker: false,
    env: { HLS_MIN_DURATION: "1" },
  });
  const jobs = await countRows(ctx, "jobs");
  const activity = await countRows(ctx, "activity_log");

  const dry = await asAdmin(ctx, "/api/admin/backfill", post({ dry_run: true }));
  assert.equal(dry.status, 200);
  assert.deepEqual(await body(dry), {
    batch_id: null,
    dry_run: true,
    scanned: 1,
    attachments: 1,
    jobs: { ...NO_JOBS, hls: 1 },
    missing_originals: 0,
  });
  assert.equal(await countRows(ctx, "jobs"), jobs, "a dry run queues nothing");
  assert.equal(await countRows(ctx, "activity_log"), activity, "nor is it logged");

  const run = await asAdmin(ctx, "/api/admin/backfill", post());
  assert.equal(run.status, 202);
  const started = await body<Backfill>(run);
  assert.ok(started.batch_id);
  assert.deepEqual(started.jobs, { ...NO_JOBS, hls: 1 });
  assert.equal(started.attachments, 1);

  const again = await asAdmin(ctx, "/api/admin/backfill", post({}));
  assert.equal(again.status, 200, "the hls job is already queued");
  assert.deepEqual((await body<Backfill>(again)).jobs, NO_JOBS);

  const progressPath = `/api/admin/backfill/${started.batch_id}`;
  const queued = await asAdmin(ctx, progressPath);
  assert.equal(queued.status, 200);
  assert.deepEqual(await body(queued), {
    batch_id: started.batch_id,
    total: 1,
    queued: 1,
    running: 0,
    done: 0,
    failed: 0,
  });

  const worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20 });
  let progress: Progress;
  try {
    const deadline = Date.now() + 60_000;
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      progress = await body<Progress>(await asAdmin(ctx, progressPath));
    } while (progress.done + progress.failed < progress.total && Date.now() < deadline);
  } finally {
    await worker.stop();
  }
  assert.deepEqual(progress, { ...progress, total: 1, done: 1, failed: 0 });
  const after = await body(await ctx.request("alice", `/api/chat/attachments/${id}`));
  assert.equal(after.status, "ready");
  assert.ok(after.hls_url, "the attachment has its ladder");

  const nothing = await asAdmin(ctx, "/api/admin/backfill", post());
  assert.equal(nothing.status, 200);
  assert.deepEqual((await body<Backfill>(nothing)).jobs, NO_JOBS);

  const log = await body<{ items: { action: string; actor_id: string; detail: unknown }[] }>(
    await asAdmin(ctx, "/api/admin/activity?action=admin.backfill"),
  );
  assert.equal(log.items.length, 3, "every run but the dry one is logged");
  assert.equal(log.items.at(-1)!.actor_id, "root");
  assert.deepEqual(log.items.at(-1)!.detail, {
    batch_id: started.batch_id,
    attachments: 1,
    jobs: { ...NO_JOBS, hls: 1 },
    missing_originals: 0,
  });
});

Deno.test("admin backfill: admins only; a body that is not JSON, an unknown field or batch is refused", async () => {
  await using ctx = await createTestContext({ worker: false });
  const member = await ctx.request("alice", "/api/admin/backfill", post({ dry_run: true }));
  assert.equal(member.status, 403);
  await member.body?.cancel();
  const jobs = await countRows(ctx, "jobs");
  const activity = await countRows(ctx, "activity_log");
  for (
    const [init, status] of [
      // Read as no body, each of these would run for real: the route's media-type gate refuses them.
      [
        { method: "POST", body: '{"dry_run":true}', headers: { "content-type": "text/plain" } },
        400,
      ],
      [{
        method: "POST",
        body: "dry_run=true", // curl -d
        headers: { "content-type": "application/x-www-form-urlencoded" },
      }, 400],
      [{ method: "POST", body: new TextEncoder().encode('{"dry_run":true}') }, 400],
      [post({ dryrun: true }), 400],
      [post({ dry_run: "yes" }), 400],
    ] as const
  ) {
    const response = await asAdmin(ctx, "/api/admin/backfill", init);
    assert.equal(response.status, status, JSON.stringify(init));
    await response.body?.cancel();
  }
  assert.equal(await countRows(ctx, "jobs"), jobs);
  assert.equal(await countRows(ctx, "activity_log"), activity);

  const missing = await asAdmin(ctx, "/api/admin/backfill/01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const malformed = await asAdmin(ctx, "/api/admin/backfill/not-a-batch");
  assert.equal(malformed.status, 400);
  await malformed.body?.cancel();
});
