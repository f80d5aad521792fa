import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { attachments, jobs } from "../../../db/schema.ts";
import { fsck } from "../../../lib/storage/fsck.ts";
import { fixture } from "../../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  diskPath,
  uploadFile,
  waitForProcessed,
} from "../../_helpers.ts";

Deno.test("fsck: finds a row naming a missing file, a file no row owns and a dead temp dir; --repair fixes all three", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  const id = String(created.id);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  const deps = { ...ctx.deps, dataDir: ctx.dataDir };
  assert.deepEqual((await fsck(deps)).issues, []);

  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  await Deno.remove(diskPath(ctx, row!.thumbnailKey!));
  const stray = row!.storageKey.replace(/[0-9a-f-]{36}/, "00000000-0000-7000-8000-000000000000");
  await Deno.writeTextFile(diskPath(ctx, stray), "left by a crash");
  await Deno.mkdir(`${ctx.dataDir}/tmp/p1-0123abcd`);
  await Deno.writeTextFile(`${ctx.dataDir}/tmp/p1-0123abcd/upload-x.part`, "partial");

  const found = await fsck(deps);
  assert.deepEqual(found.issues.map((issue) => issue.type).sort(), [
    "dead_temp_dir",
    "missing_file",
    "unowned_file",
  ]);
  assert.deepEqual(found.issues.find((issue) => issue.type === "missing_file"), {
    type: "missing_file",
    attachmentId: id,
    column: "thumbnailKey",
    key: row!.thumbnailKey,
  });
  assert.deepEqual(found.issues.find((issue) => issue.type === "unowned_file"), {
    type: "unowned_file",
    key: stray,
  });

  await fsck(deps, { repair: true });
  await assert.rejects(Deno.stat(diskPath(ctx, stray)), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(`${ctx.dataDir}/tmp/p1-0123abcd`), Deno.errors.NotFound);
  // The thumbnail is made again by its job.
  const thumbnails = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
  assert.equal(thumbnails.filter((job) => job.kind === "thumbnail").length, 2);
  const deadline = Date.now() + 30_000;
  const thumbnailKey = async () =>
    (await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id)))[0]!.thumbnailKey;
  while (!(await thumbnailKey()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.deepEqual((await fsck(deps)).issues, []);
  const after = { thumbnailKey: await thumbnailKey() };
  assert.ok(after.thumbnailKey);
});

Deno.test("fsck: a lost original makes its attachment deleted, with its other files", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  const id = String(created.id);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  await Deno.remove(diskPath(ctx, row!.storageKey));
  const deps = { ...ctx.deps, dataDir: ctx.dataDir };
  assert.equal((await fsck(deps)).issues.length, 1);
  await fsck(deps, { repair: true });
  assert.deepEqual((await fsck(deps)).issues, []);
  await assert.rejects(
    Deno.stat(diskPath(ctx, row!.thumbnailKey!)),
    Deno.errors.NotFound,
  );
  assert.equal((await ctx.request("alice", `/api/chat/attachments/${id}`)).status, 404);
});
