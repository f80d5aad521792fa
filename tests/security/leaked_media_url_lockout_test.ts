/**
 * Finding 6 of the attacker's pass: a leaked media URL locked its owner out.
 * The rate limiter charged any request carrying a valid `?token=` to that
 * token's user, even on routes that refuse media tokens: 720 requests with a
 * user's thumbnail token to `GET /api/chat/conversations?token=…` made that
 * user's own requests answer 429.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import { body, conversationWithMessage, createTestContext } from "../_helpers.ts";
import { uploadBytes } from "./_world.ts";

Deno.test("leaked media URL: sent anywhere, it never spends its owner's allowance", async () => {
  await using ctx = await createTestContext({ worker: false, env: { RATE_LIMIT_PER_MINUTE: "5" } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const attachment = await body(await uploadBytes(ctx, "alice", messageId, video, "a.mp4"));
  // Three of alice's five requests are spent. The attacker holds her download URL.
  const token = new URL(String(attachment.url)).searchParams.get("token")!;
  const misuses = [
    "/api/chat/conversations", // takes no media token at all
    `/api/chat/attachments/${attachment.id}`, // neither
    `/api/chat/videos/${attachment.id}/storyboard.vtt`, // another purpose
    `/api/chat/attachments/${attachment.id}/events`, // another purpose
  ];
  const statuses = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const response = await ctx.app.request(`${misuses[i % misuses.length]}?token=${token}`);
    statuses.add(response.status);
    await response.body?.cancel();
  }
  // Refused, then limited: counted against the sender's address.
  assert.deepEqual([...statuses].sort(), [401, 429]);
  for (let i = 0; i < 2; i++) {
    const own = await ctx.request("alice", "/api/chat/conversations");
    assert.equal(own.status, 200, "alice is not locked out");
    await own.body?.cancel();
  }
});
