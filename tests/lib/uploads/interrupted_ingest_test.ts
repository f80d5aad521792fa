import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { attachments, jobs } from "../../../db/schema.ts";
import { fsck } from "../../../lib/storage/fsck.ts";
import { sweepDeadOwners } from "../../../lib/storage/process_temp_dir.ts";
import { adoptInterruptedIngest, INGEST_GRACE_MS } from "../../../lib/uploads/ingest.ts";
import { fixture } from "../../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  diskPath,
  uploadFile,
} from "../../_helpers.ts";

Deno.test("ingest: an upload whose process died between its row and moving its file is finished by the sweep", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  const id = String(created.id);
  const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
  const stored = diskPath(ctx, row!.storageKey);
  const before = await Deno.readFile(stored);
  const queued = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
  assert.ok(queued.every((job) => job.runAfter <= Date.now()), "a finished upload's jobs run now");

  // The state a process killed after the commit and before the move leaves: the file in its
  // (now dead: no lock) temp directory under its staged name, the jobs still waiting.
  const dead = `${ctx.dataDir}/tmp/p1-0123abcd`;
  await Deno.mkdir(dead, { recursive: true });
  await Deno.rename(stored, `${dead}/ingest-${id}.mp4`);
  const later = Date.now() + INGEST_GRACE_MS;
  await ctx.deps.db.update(jobs).set({ runAfter: later }).where(eq(jobs.attachmentId, id));
  const deps = { ...ctx.deps, dataDir: ctx.dataDir };
  assert.deepEqual((await fsck(deps)).issues.map((issue) => issue.type).sort(), [
    "dead_temp_dir",
    "missing_file",
  ]);

  const adopted: boolean[] = [];
  await sweepDeadOwners(`${ctx.dataDir}/tmp`, {
    adopt: async (path) => void adopted.push(await adoptInterruptedIngest(ctx.deps, path)),
  });
  assert.deepEqual(adopted, [true]);
  assert.deepEqual(await Deno.readFile(stored), before);
  const runnable = await ctx.deps.db.select().from(jobs).where(eq(jobs.attachmentId, id));
  assert.ok(runnable.every((job) => job.runAfter < later), "its jobs run now");
  assert.deepEqual((await fsck(deps)).issues, []);
});
