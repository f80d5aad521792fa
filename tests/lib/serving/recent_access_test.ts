import assert from "node:assert/strict";
import type { Attachment } from "../../../db/schema.ts";
import { RecentAccess } from "../../../lib/serving/recent_access.ts";
import { redactPaths } from "../../../lib/processing/worker.ts";

Deno.test("RecentAccess: remembers for its window, per user and role, and forgets on clear", () => {
  const access = new RecentAccess({ ttlMs: 2000, maxEntries: 2 });
  const row = { id: "a1" } as Attachment;
  const alice = { id: "alice", admin: false };
  access.set(row, alice, 1000);
  assert.equal(access.get("a1", alice, 2999), row);
  assert.equal(access.get("a1", alice, 3000), null, "expired");
  access.set(row, { id: "alice", admin: true }, 1000);
  assert.equal(access.get("a1", alice, 1500), null, "an admin check does not cover a member token");
  access.set(row, alice, 1000);
  access.set({ id: "a2" } as Attachment, alice, 1000);
  assert.equal(
    access.get("a1", { id: "alice", admin: true }, 1500),
    null,
    "oldest dropped at the bound",
  );
  access.clear();
  assert.equal(access.get("a2", alice, 1500), null);
});

Deno.test("redactPaths: absolute, relative and file: paths are hidden", () => {
  assert.equal(
    redactPaths("file:/srv/data/media/2026/01/01/x.mp4: Invalid data"),
    "<file>: Invalid data",
  );
  assert.equal(redactPaths("file:./data/tmp/job.mp4 failed"), "<file> failed");
  assert.equal(redactPaths("Error opening '/tmp/a/b.jpg'"), "Error opening '<file>'");
  assert.equal(redactPaths("ffmpeg exited with 1"), "ffmpeg exited with 1");
});
