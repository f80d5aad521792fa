/**
 * Regression: the one-query visibility check compared the participants table
 * with itself, so a user who was in any conversation could read every
 * attachment (metadata, download, stream, thumbnail). Mallory here has a
 * conversation of her own, as every real user does.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import { body, conversationWithMessage, createTestContext, uploadFile } from "../_helpers.ts";

Deno.test("visibility: a user with conversations of their own still cannot see other attachments", async () => {
  await using ctx = await createTestContext({ worker: false });
  const bobs = await conversationWithMessage(ctx, "bob");
  const attachment = await body(
    await uploadFile(ctx, "bob", bobs.messageId, await fixture("h264.mp4")),
  );
  await conversationWithMessage(ctx, "mallory", ["carol"]);
  for (
    const path of [
      `/api/chat/attachments/${attachment.id}`,
      `/api/chat/videos/${attachment.id}/download`,
      `/api/chat/videos/${attachment.id}/stream`,
      `/api/chat/attachments/${attachment.id}/events`,
    ]
  ) {
    for (const user of ["mallory", "carol"]) {
      const response = await ctx.request(user, path);
      assert.equal(response.status, 404, `${user} ${path}`);
      await response.body?.cancel();
    }
  }
  const deleted = await ctx.request("mallory", `/api/chat/attachments/${attachment.id}`, {
    method: "DELETE",
  });
  assert.equal(deleted.status, 404);
  await deleted.body?.cancel();
});
