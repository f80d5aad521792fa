/**
 * Finding 1 of the attacker's pass: another user's resumable upload reached
 * by adding a query string to one's own upload URL. `@tus/server` took the
 * upload id from the end of the whole URL, query included, while the route
 * checked the id in the path: `HEAD /uploads/<mine>?x=/<theirs>` read the
 * victim's upload, `PATCH` wrote into it and `DELETE` removed it. Filled
 * with the attacker's video but for one byte, the victim's own client then
 * completed it, and the attacker's video was posted under the victim's name.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { attachments } from "../../db/schema.ts";
import { fixture } from "../_fixtures.ts";
import { body, conversationWithMessage, createTestContext, type TestContext } from "../_helpers.ts";

const UPLOADS = "/api/chat/videos/uploads";
const TUS = { "tus-resumable": "1.0.0" };

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function createUpload(
  ctx: TestContext,
  user: string,
  messageId: string,
  length: number,
): Promise<string> {
  const response = await ctx.request(user, UPLOADS, {
    method: "POST",
    headers: {
      ...TUS,
      "upload-length": String(length),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("holiday.mp4")}`,
    },
  });
  assert.equal(response.status, 201);
  await response.body?.cancel();
  return response.headers.get("location")!.split("/").pop()!;
}

function patch(offset: number, bytes: Uint8Array): RequestInit {
  return {
    method: "PATCH",
    headers: {
      ...TUS,
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    },
    body: bytes as Uint8Array<ArrayBuffer>,
  };
}

/** The victim's upload as its owner sees it: offset, length, and the bytes stored so far. */
async function victimView(ctx: TestContext, id: string) {
  const head = await ctx.request("v", `${UPLOADS}/${id}`, { method: "HEAD", headers: TUS });
  await head.body?.cancel();
  const stored = await Deno.readFile(`${ctx.dataDir}/tus/${id}`).catch(() => null);
  return {
    status: head.status,
    offset: head.headers.get("upload-offset"),
    length: head.headers.get("upload-length"),
    stored: stored ? sha256(stored) : null,
  };
}

async function world(ctx: TestContext) {
  const victimVideo = await Deno.readFile(await fixture("h264.mp4"));
  const attackerVideo = await Deno.readFile(await fixture("h264.mov"));
  const victim = await conversationWithMessage(ctx, "v", ["w"]);
  const attacker = await conversationWithMessage(ctx, "m", ["n"]);
  const half = Math.floor(victimVideo.length / 2);
  const victimUpload = await createUpload(ctx, "v", victim.messageId, victimVideo.length);
  const first = await ctx.request("v", `${UPLOADS}/${victimUpload}`, {
    ...patch(0, victimVideo.subarray(0, half)),
  });
  assert.equal(first.status, 204);
  const attackerUpload = await createUpload(ctx, "m", attacker.messageId, victimVideo.length);
  return { victimVideo, attackerVideo, victim, half, victimUpload, attackerUpload };
}

Deno.test("tus hijack: HEAD, PATCH and DELETE of one's own upload with ?x=/<victim's id> touch nothing of the victim's", async () => {
  await using ctx = await createTestContext({ worker: false });
  const w = await world(ctx);
  const before = await victimView(ctx, w.victimUpload);
  assert.deepEqual(
    [before.status, before.offset, before.length],
    [200, String(w.half), String(w.victimVideo.length)],
  );
  const hijack = `${UPLOADS}/${w.attackerUpload}?x=/${w.victimUpload}`;
  const attempts: [string, RequestInit][] = [
    ["HEAD", { method: "HEAD", headers: TUS }],
    ["PATCH", patch(w.half, w.attackerVideo.subarray(0, 1000))],
    ["DELETE", { method: "DELETE", headers: TUS }],
  ];
  for (const [method, init] of attempts) {
    for (
      const path of [hijack, `${hijack}/`, `${UPLOADS}/${w.attackerUpload}/?x=/${w.victimUpload}`]
    ) {
      const response = await ctx.request("m", path, init);
      const text = await response.text();
      assert.ok([400, 404].includes(response.status), `${method} ${path}: ${response.status}`);
      // Nothing of the victim's upload is shown to the attacker.
      assert.equal(response.headers.get("upload-offset"), null, `${method} ${path}`);
      assert.ok(!text.includes("holiday"), `${method} ${path}`);
    }
  }
  assert.deepEqual(await victimView(ctx, w.victimUpload), before);
  // The attacker's own upload was not touched either: nothing was acted on.
  const own = await ctx.request("m", `${UPLOADS}/${w.attackerUpload}`, {
    method: "HEAD",
    headers: TUS,
  });
  await own.body?.cancel();
  assert.equal(own.status, 200);
  assert.equal(own.headers.get("upload-offset"), "0");
});

Deno.test("tus hijack: the substitution scenario ends with no attachment of the attacker's video", async () => {
  await using ctx = await createTestContext();
  const w = await world(ctx);
  // The attacker fills the victim's upload with their own video, padded, all but the last byte.
  const padded = new Uint8Array(w.victimVideo.length - 1);
  padded.set(w.attackerVideo.subarray(0, padded.length));
  const hijack = `${UPLOADS}/${w.attackerUpload}?x=/${w.victimUpload}`;
  // It reads the victim's offset (or, refused that, guesses it) and writes from there.
  const head = await ctx.request("m", hijack, { method: "HEAD", headers: TUS });
  await head.body?.cancel();
  const offset = Number(head.headers.get("upload-offset") ?? w.half);
  const written = await ctx.request("m", hijack, patch(offset, padded.subarray(offset)));
  await written.body?.cancel();
  assert.ok([400, 404].includes(written.status), `PATCH at the victim's offset: ${written.status}`);

  // No attachment anywhere: nothing was completed on anyone's behalf.
  assert.equal((await ctx.deps.db.select().from(attachments)).length, 0);

  // The victim's client re-reads its offset and finishes with its own bytes.
  const view = await victimView(ctx, w.victimUpload);
  assert.equal(view.offset, String(w.half));
  const last = await ctx.request(
    "v",
    `${UPLOADS}/${w.victimUpload}`,
    patch(w.half, w.victimVideo.subarray(w.half)),
  );
  assert.equal(last.status, 200);
  const made = await body(last);
  assert.equal(made.uploader_id, "v");
  assert.equal(made.sha256, sha256(w.victimVideo));
  const rows = await ctx.deps.db.select().from(attachments)
    .where(eq(attachments.messageId, w.victim.messageId));
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.sha256, sha256(w.victimVideo));
  assert.equal((await ctx.deps.db.select().from(attachments)).length, 1);
});
