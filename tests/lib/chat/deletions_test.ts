import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { attachments } from "../../../db/schema.ts";
import { finishDeletions, storedKeys } from "../../../lib/chat/attachments.ts";
import { fsck } from "../../../lib/storage/fsck.ts";
import { fixture } from "../../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../../_helpers.ts";

/** An attachment of alice's, processed, and its row. */
async function processed(ctx: TestContext) {
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("short.mp4"));
  assert.equal(uploaded.status, 201);
  const { id } = await body<{ id: string }>(uploaded);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  return row!;
}

async function exists(ctx: TestContext, key: string): Promise<boolean> {
  return await ctx.deps.storage.stat(key) !== null;
}

Deno.test("deletions: one killed after its transaction is finished by the sweep, once its grace is over", async () => {
  await using ctx = await createTestContext();
  const killed = await processed(ctx);
  const recent = await processed(ctx);
  const keys = storedKeys(killed);
  assert.ok(keys.length >= 3, "the original, the thumbnail and more");
  // What a process killed between the deletion's commit and its file removal leaves: the
  // row marked deleted (two minutes ago), the files still there.
  const now = ctx.deps.clock().getTime();
  await ctx.deps.db.update(attachments).set({ deletedAt: now - 120_000 })
    .where(eq(attachments.id, killed.id));
  await ctx.deps.db.update(attachments).set({ deletedAt: now - 1000 })
    .where(eq(attachments.id, recent.id));
  const before = await fsck({ ...ctx.deps, dataDir: ctx.dataDir });
  assert.ok(
    before.issues.some((issue) => issue.type === "unowned_file"),
    "fsck sees the leftovers",
  );

  assert.equal(await finishDeletions(ctx.deps, { graceMs: 60_000, limit: 10 }), 1);
  for (const key of keys) assert.equal(await exists(ctx, key), false, `${key} is removed`);
  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, killed.id));
  assert.ok(row!.filesRemovedAt !== null, "the deletion is noted as finished");
  // The one deleted a second ago is left to the process that is deleting it.
  for (const key of storedKeys(recent)) assert.equal(await exists(ctx, key), true);
  assert.equal(await finishDeletions(ctx.deps, { graceMs: 60_000, limit: 10 }), 0);

  // Its grace over, it is finished too, and nothing is left for fsck.
  assert.equal(await finishDeletions(ctx.deps, { graceMs: 0, limit: 10 }), 1);
  assert.deepEqual((await fsck({ ...ctx.deps, dataDir: ctx.dataDir })).issues, []);
});

Deno.test("deletions: a deletion that runs to its end notes that its files are gone", async () => {
  await using ctx = await createTestContext();
  const attachment = await processed(ctx);
  const deleted = await ctx.request("alice", `/api/chat/attachments/${attachment.id}`, {
    method: "DELETE",
  });
  assert.equal(deleted.status, 204);
  const [row] = await ctx.deps.db.select().from(attachments)
    .where(eq(attachments.id, attachment.id));
  assert.ok(row!.deletedAt !== null && row!.filesRemovedAt !== null);
  for (const key of storedKeys(attachment)) assert.equal(await exists(ctx, key), false);
  assert.equal(await finishDeletions(ctx.deps, { graceMs: 0, limit: 10 }), 0);
});
