/**
 * A full disk (issue 13, point 4), on a real small filesystem: a tmpfs of a
 * few MiB the test mounts as DATA_DIR, with the database outside it so that
 * what fills up is the media's disk. An upload (multipart or a tus PATCH)
 * that hits ENOSPC answers 507 and leaves nothing behind, a job that hits it
 * waits for space without using an attempt, `/readyz` fails below
 * MIN_FREE_BYTES and new uploads are refused up front, and everything works
 * again once space returns. Mounting needs root; without it these tests fail.
 */
import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { attachments, jobs, uploads } from "../../db/schema.ts";
import { freeBytes } from "../../lib/storage/disk_space.ts";
import { fsck } from "../../lib/storage/fsck.ts";
import { checkReadiness } from "../../lib/setup/readiness.ts";
import { startWorker } from "../../lib/processing/worker.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

const MiB = 1024 * 1024;

/** A tmpfs of `sizeMiB` mounted on a new directory; dispose to unmount and remove it. */
async function smallDisk(sizeMiB: number): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "offchat-small-disk-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", dir],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!mount.success) {
    await Deno.remove(dir);
    throw new Error(
      `Cannot mount a tmpfs on "${dir}" (this test needs root): ${
        new TextDecoder().decode(mount.stderr).trim()
      }`,
    );
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      const umount = (args: string[]) =>
        new Deno.Command("umount", { args, stdout: "null", stderr: "null" }).output();
      // libSQL may close a database file on the disk a moment after its client: then the
      // mount is detached now and freed once that descriptor goes (a lazy unmount).
      if (!(await umount([dir])).success && !(await umount(["-l", dir])).success) {
        throw new Error(`Cannot unmount "${dir}"`);
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A test context whose DATA_DIR is `disk` and whose database file is elsewhere. */
async function contextOn(
  disk: string,
  env: Record<string, string>,
): Promise<TestContext & { dbDir: string }> {
  const dbDir = await Deno.makeTempDir({ prefix: "offchat-db-" });
  const ctx = await createTestContext({
    dataDir: disk,
    worker: false,
    env: { DATABASE_URL: `file:${dbDir}/offchat.db`, ...env },
  });
  const dispose = ctx[Symbol.asyncDispose].bind(ctx);
  return Object.assign(ctx, {
    dbDir,
    async [Symbol.asyncDispose]() {
      await dispose();
      await Deno.remove(dbDir, { recursive: true });
    },
  });
}

/** Writes zeros to `path` until the disk is full, or has only `leaveBytes` free. */
async function fill(path: string, leaveBytes = 0): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true });
  // Large writes first, then page-sized ones for the last pages.
  for (const size of [64 * 1024, 4096]) {
    const chunk = new Uint8Array(size);
    while (leaveBytes === 0 || await freeBytes(path) > leaveBytes) {
      try {
        await file.write(chunk);
      } catch {
        break; // full for writes of this size
      }
    }
  }
}

function multipart(messageId: string, bytes: Uint8Array): FormData {
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), "big.mp4");
  return form;
}

async function assertInsufficientStorage(response: Response, what: string): Promise<void> {
  assert.equal(response.status, 507, what);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.ok(response.headers.get("retry-after"), `${what}: Retry-After`);
  assert.equal((await body(response)).code, "insufficient_storage", what);
}

function tusCreate(ctx: TestContext, messageId: string, size: number): Promise<Response> {
  return ctx.request("alice", "/api/chat/videos/uploads/", {
    method: "POST",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-length": String(size),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("v.mp4")}`,
    },
  });
}

function tusPatch(
  ctx: TestContext,
  location: string,
  bytes: Uint8Array,
  offset = 0,
): Promise<Response> {
  return ctx.request("alice", location, {
    method: "PATCH",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
}

/** The part of a tus Location the app routes (it is relative to the endpoint). */
/** After a fault, `deno task fsck` would find nothing: no row without its file, no stray file. */
async function assertFsckClean(ctx: TestContext): Promise<void> {
  const report = await fsck({ ...ctx.deps, dataDir: ctx.dataDir });
  assert.deepEqual(report.issues, [], "fsck finds nothing");
}

function uploadPath(location: string): string {
  return `/api/chat/videos/uploads/${location.split("/").pop()}`;
}

for (const layout of ["elsewhere", "on the small disk"] as const) {
  Deno.test(`disk full: a multipart upload that hits ENOSPC gets 507 and leaves nothing (database ${layout})`, async () => {
    await using disk = await smallDisk(8);
    await using ctx = layout === "elsewhere"
      ? await contextOn(disk.dir, { MIN_FREE_BYTES: "0" })
      : await createTestContext({ dataDir: disk.dir, worker: false, env: { MIN_FREE_BYTES: "0" } });
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const before = await freeBytes(disk.dir);

    const response = await ctx.request("alice", "/api/chat/videos/upload/", {
      method: "POST",
      body: multipart(messageId, new Uint8Array(12 * MiB).fill(7)),
    });
    await assertInsufficientStorage(response, "the upload larger than the disk");
    assert.deepEqual(await listFiles(`${disk.dir}/tmp`), [], "the partial file is removed");
    assert.equal((await ctx.deps.db.select().from(attachments)).length, 0, "no row");
    assert.ok(await freeBytes(disk.dir) >= before - 64 * 1024, "the space is given back");
    await assertFsckClean(ctx);

    // Nothing else was affected: the next upload that fits goes through.
    const ok = await uploadFile(ctx, "alice", messageId, await fixture("short.mp4"));
    assert.equal(ok.status, 201);
  });
}

Deno.test("disk full: a tus PATCH that hits ENOSPC gets 507 and the upload is removed", async () => {
  await using disk = await smallDisk(8);
  await using ctx = await contextOn(disk.dir, { MIN_FREE_BYTES: "0" });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const size = 12 * MiB;
  const created = await tusCreate(ctx, messageId, size);
  assert.equal(created.status, 201);
  const location = uploadPath(created.headers.get("location")!);

  const response = await tusPatch(ctx, location, new Uint8Array(size).fill(7));
  await assertInsufficientStorage(response, "the PATCH larger than the disk");
  assert.deepEqual(await listFiles(`${disk.dir}/tus`), [], "the partial bytes are removed");
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 0, "no upload row");
  const gone = await ctx.request("alice", location, {
    method: "HEAD",
    headers: { "tus-resumable": "1.0.0" },
  });
  assert.equal(gone.status, 404);
  await assertFsckClean(ctx);

  // The disk has room again for an upload that fits.
  const video = await Deno.readFile(await fixture("short.mp4"));
  const again = await tusCreate(ctx, messageId, video.length);
  assert.equal(again.status, 201);
  const done = await tusPatch(ctx, uploadPath(again.headers.get("location")!), video);
  assert.equal(done.status, 200);
  assert.equal((await body(done)).status, "processing");
});

Deno.test("disk full: a job that hits ENOSPC waits for space without using an attempt", async () => {
  await using disk = await smallDisk(8);
  await using ctx = await contextOn(disk.dir, { MIN_FREE_BYTES: "0" });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("short.mp4"));
  assert.equal(uploaded.status, 201);
  const { id } = await body<{ id: string }>(uploaded);

  const filler = `${disk.dir}/filler`;
  await fill(filler);
  const retryMs = 200;
  const reports: string[] = [];
  let worker = startWorker(ctx.deps, {
    concurrency: 1,
    pollMs: 20,
    diskFullRetryMs: retryMs,
    onJobEnd: (report) => reports.push(`${report.kind}:${report.outcome}`),
  });
  try {
    // Wait until every job has run once against the full disk.
    const kinds = (await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id)))
      .length;
    const deadline = Date.now() + 30_000;
    while (reports.length < kinds && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(reports.length >= kinds, `every job ran (${reports.join(", ")})`);
  } finally {
    await worker.stop();
  }
  const rows = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
  // A job with nothing to write (no ladder for a short clip) may finish; none may fail.
  const waiting = rows.filter((job) => job.status !== "done");
  assert.ok(waiting.length > 0, "some job needed the disk");
  for (const job of waiting) {
    assert.equal(job.status, "queued", `${job.kind} is queued again (${job.lastError})`);
    assert.equal(job.attempts, 0, `${job.kind} used no attempt`);
    assert.match(job.lastError ?? "", /No space left on device|ENOSPC/);
  }
  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  assert.equal(row?.status, "processing", "the attachment has not failed");
  assert.deepEqual(await listFiles(`${disk.dir}/tmp`), [], "no partial output is left");

  // Space returns: the jobs run again after their delay, by themselves, and finish.
  await Deno.remove(filler);
  worker = startWorker(ctx.deps, { concurrency: 1, pollMs: 20, diskFullRetryMs: retryMs });
  try {
    const done = await waitForProcessed(ctx, "alice", id);
    assert.equal(done.status, "ready");
  } finally {
    await worker.stop();
  }
  await assertFsckClean(ctx);
});

Deno.test("disk full: below MIN_FREE_BYTES /readyz fails and uploads are refused up front", async () => {
  await using disk = await smallDisk(8);
  await using ctx = await contextOn(disk.dir, { MIN_FREE_BYTES: String(4 * MiB) });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const filler = `${disk.dir}/filler`;
  await fill(filler, 2 * MiB);

  const ready = await ctx.request(null, "/readyz");
  assert.equal(ready.status, 503);
  const checks = (await body<{ checks: Record<string, { ok: boolean; detail?: string }> }>(ready))
    .checks;
  assert.deepEqual(checks.disk_space, { ok: false, detail: "less than MIN_FREE_BYTES free" });
  assert.equal(checks.storage?.ok, true, "the disk can still be written");

  const video = await Deno.readFile(await fixture("short.mp4"));
  const refused = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: multipart(messageId, video),
  });
  await assertInsufficientStorage(refused, "a multipart upload");
  await assertInsufficientStorage(await tusCreate(ctx, messageId, video.length), "a tus creation");
  assert.deepEqual(await listFiles(`${disk.dir}/tmp`), []);
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 0);
  await assertFsckClean(ctx);

  // Space returns: ready again, and uploads are taken, with nothing restarted.
  await Deno.remove(filler);
  assert.deepEqual((await checkReadiness(ctx.deps)).disk_space, { ok: true });
  const accepted = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: multipart(messageId, video),
  });
  assert.equal(accepted.status, 201);
});
