/**
 * Finding 5 of the attacker's pass: a storyboard token renewed itself. The
 * track (`storyboard.vtt`) signed its sprite URLs with the same purpose as its
 * own token, so a sprite token opened the track again, which signed a fresh
 * token with a later expiry: chained, a one-hour URL lasted forever.
 */
import assert from "node:assert/strict";
import { decodeJwt, SignJWT } from "jose";
import { mediaUrlKey } from "../../lib/auth/auth.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  TEST_SECRET,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

/** A storyboard-track token for alice that expires in `seconds`, as the server signs them. */
async function trackToken(attachmentId: string, seconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ att: attachmentId, use: "storyboard" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("alice")
    .setAudience("offchat-media")
    .setIssuedAt(now)
    .setExpirationTime(now + seconds)
    .sign(await mediaUrlKey(TEST_SECRET));
}

/** The token of the first sprite URL in a storyboard track. */
function spriteToken(vtt: string): string {
  const url = vtt.match(/^(http\S+)#xywh=/m)?.[1];
  assert.ok(url, vtt);
  return new URL(url).searchParams.get("token")!;
}

Deno.test("storyboard token renewal: a sprite token opens the sprite only, and never outlives the track's token", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")));
  const id = String(created.id);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  const track = (token: string) =>
    ctx.app.request(`/api/chat/videos/${id}/storyboard.vtt?token=${token}`);
  const sprite = (token: string) =>
    ctx.app.request(`/api/chat/videos/${id}/storyboard.jpg?token=${token}`);

  // A track token with a minute left, well under MEDIA_URL_TTL (an hour).
  const first = await trackToken(id, 60);
  const opened = await track(first);
  assert.equal(opened.status, 200);
  const second = spriteToken(await opened.text());
  assert.ok(
    decodeJwt(second).exp! <= decodeJwt(first).exp!,
    "the sprite token outlives the track's",
  );

  const image = await sprite(second);
  assert.equal(image.status, 200);
  await image.body?.cancel();
  // The chain stops here: the sprite token does not open the track.
  const renewed = await track(second);
  assert.equal(renewed.status, 401);
  await renewed.body?.cancel();

  // With a bearer token, the track's sprite URLs last MEDIA_URL_TTL, and still open the sprite only.
  const withBearer = await ctx.request("alice", `/api/chat/videos/${id}/storyboard.vtt`);
  assert.equal(withBearer.status, 200);
  const third = spriteToken(await withBearer.text());
  const ttl = decodeJwt(third).exp! - decodeJwt(third).iat!;
  assert.equal(ttl, ctx.deps.config.mediaUrlTtl);
  const again = await track(third);
  assert.equal(again.status, 401);
  await again.body?.cancel();
});
