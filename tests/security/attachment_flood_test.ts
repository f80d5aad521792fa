/**
 * Point 7 of the threat model, the same flood as conversation_flood_test.ts
 * one level down: every page of messages embeds each message's attachments,
 * each with five signed URLs, so a sender who attached thousands of small
 * videos to one message made every participant's message page huge and
 * costly to sign. A message now carries at most `MAX_ATTACHMENTS_PER_MESSAGE`
 * live videos, checked before the body is read and again in the transaction
 * that inserts the attachment.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import { body, conversationWithMessage, createTestContext } from "../_helpers.ts";
import { assertNothingLeft, assertProblem, snapshot, uploadBytes } from "./_world.ts";

/** A multipart body in 4 KiB chunks that counts how many chunks the server pulled. */
function countedUpload(video: Uint8Array): { body: ReadableStream<Uint8Array>; pulled(): number } {
  const boundary = "----offchat-counted";
  const enc = new TextEncoder();
  const whole = new Uint8Array([
    ...enc.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n` +
        "Content-Type: video/mp4\r\n\r\n",
    ),
    ...video,
    ...enc.encode(`\r\n--${boundary}--\r\n`),
  ]);
  let offset = 0;
  let chunks = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= whole.length) return controller.close();
      chunks++;
      controller.enqueue(whole.slice(offset, offset + 4 * 1024));
      offset += 4 * 1024;
    },
  });
  return { body, pulled: () => chunks };
}

Deno.test("attachment flood: a message carries at most MAX_ATTACHMENTS_PER_MESSAGE videos", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_ATTACHMENTS_PER_MESSAGE: "2", RATE_LIMIT_PER_MINUTE: "0" },
  });
  const video = await Deno.readFile(await fixture("h264.mp4"));
  assert.ok(video.length > 4 * 4 * 1024, "the fixture spans several chunks");
  const { conversationId, messageId } = await conversationWithMessage(ctx, "mallory", ["victim"]);
  const ids: string[] = [];
  for (const name of ["a.mp4", "b.mp4"]) {
    const response = await uploadBytes(ctx, "mallory", messageId, video, name);
    assert.equal(response.status, 201);
    ids.push(String((await body(response)).id));
  }

  const before = await snapshot(ctx);
  const third = await uploadBytes(ctx, "mallory", messageId, video, "c.mp4");
  const problem = await assertProblem(third, "third video", [409]);
  assert.equal(problem.code, "conflict");
  assert.match(String(problem.detail), /at most 2 videos/);
  await assertNothingLeft(ctx, before, "after the third video");

  // With message_id in the query, the refusal comes before the file is read.
  const counted = countedUpload(video);
  const early = await ctx.app.request(`/api/chat/videos/upload/?message_id=${messageId}`, {
    method: "POST",
    body: counted.body,
    headers: {
      authorization: `Bearer ${await ctx.token("mallory")}`,
      "content-type": "multipart/form-data; boundary=----offchat-counted",
    },
  });
  await assertProblem(early, "third video, message_id first", [409]);
  assert.ok(counted.pulled() <= 2, `the server read ${counted.pulled()} chunks of the body`);
  await counted.body.cancel().catch(() => {});
  await assertNothingLeft(ctx, before, "after the early refusal");

  // A resumable upload is refused at its creation, before any byte.
  const tus = await ctx.request("mallory", "/api/chat/videos/uploads", {
    method: "POST",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-length": String(video.length),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("d.mp4")}`,
    },
  });
  await assertProblem(tus, "resumable upload", [409]);
  await assertNothingLeft(ctx, before, "after the resumable upload");

  // The victim's page of messages stays as it was.
  const page = await body<{ messages: { attachments: unknown[] }[] }>(
    await ctx.request("victim", `/api/chat/conversations/${conversationId}/messages`),
  );
  assert.deepEqual(page.messages.map((m) => m.attachments.length), [2]);

  // A deleted video frees its place; concurrent uploads for that one place get one 201.
  const deleted = await ctx.request("mallory", `/api/chat/attachments/${ids[0]}`, {
    method: "DELETE",
  });
  assert.equal(deleted.status, 204);
  const statuses = await Promise.all(["e.mp4", "f.mp4"].map(async (name) => {
    const response = await uploadBytes(ctx, "mallory", messageId, video, name);
    await response.body?.cancel();
    return response.status;
  }));
  assert.deepEqual(statuses.toSorted(), [201, 409]);
  const list = await body<{ attachments: unknown[] }>(
    await ctx.request("victim", `/api/chat/messages/${messageId}/attachments`),
  );
  assert.equal(list.attachments.length, 2);
});
