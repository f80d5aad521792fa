/**
 * Posters: the candidates the thumbnail job keeps, choosing one (or a time)
 * as the poster, the two sizes, `?time=` frames (ffmpeg runs bounded by the
 * storyboard intervals, renders rate-limited) and the ThumbHash, which
 * decodes to the poster's average colour. One processed video for the file.
 */
import assert from "node:assert/strict";
import { thumbHashToRGBA } from "thumbhash";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { observeToolRuns } from "../../lib/media/run_tool.ts";
import { POSTER_CANDIDATES } from "../../lib/media/poster.ts";
import { planStoryboard } from "../../lib/media/storyboard.ts";
import { FRAME_RENDERS_PER_MINUTE, FrameCache } from "../../routes/_frame_cache.ts";
import { ApiError } from "../../lib/core/errors.ts";
import { newId } from "../../lib/core/ids.ts";
import { storageKey } from "../../lib/storage/storage.ts";
import { attachments } from "../../db/schema.ts";
import { eq } from "drizzle-orm";

type Json = Record<string, unknown>;

async function fetchImage(ctx: TestContext, url: unknown, headers: HeadersInit = {}) {
  const response = await ctx.app.request(localPath(String(url)), { headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, etag: response.headers.get("etag"), bytes };
}

/** The average colour of a JPEG, as ffmpeg's area scaler to one pixel computes it. */
async function averageOfJpeg(bytes: Uint8Array): Promise<number[]> {
  const dir = await Deno.makeTempDir({ prefix: "offchat-poster-" });
  try {
    await Deno.writeFile(`${dir}/in.jpg`, bytes);
    const out = await new Deno.Command("ffmpeg", {
      args: [
        "-nostdin",
        "-v",
        "error",
        "-i",
        `${dir}/in.jpg`,
        "-vf",
        "scale=1:1:flags=area,format=rgb24",
        "-f",
        "rawvideo",
        "-",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return [...out.stdout.slice(0, 3)];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function putPoster(ctx: TestContext, user: string, id: string, choice: unknown) {
  return ctx.request(user, `/api/chat/attachments/${id}/poster`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(choice),
  });
}

Deno.test("posters: candidates, choosing by candidate and by time, two sizes, ?time= and thumbhash", async (t) => {
  await using ctx = await createTestContext();
  const { conversationId, messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")),
  );
  const id = String(created.id);
  const ready = await waitForProcessed(ctx, "alice", id);
  assert.equal(ready.status, "ready");

  await t.step("processing keeps the candidates, a large poster and a thumbhash", async () => {
    const candidates = ready.poster_candidates as { index: number; time: number; url: string }[];
    assert.equal(candidates.length, POSTER_CANDIDATES);
    for (const [i, c] of candidates.entries()) {
      assert.equal(c.index, i);
      assert.ok(c.time >= 0 && c.time <= 2, `candidate ${i} at ${c.time}`);
      const image = await fetchImage(ctx, c.url);
      assert.equal(image.status, 200);
      assert.deepEqual([...image.bytes.slice(0, 2)], [0xff, 0xd8]);
    }
    const poster = await fetchImage(ctx, ready.poster_url);
    const thumbnail = await fetchImage(ctx, ready.thumbnail_url);
    assert.equal(poster.status, 200);
    assert.notEqual(poster.etag, thumbnail.etag);
    // The fixture is 320×240: the poster is not enlarged, the thumbnail is 320 wide too,
    // but they are separate files of the same generation.
    assert.equal(typeof ready.thumbhash, "string");
    assert.equal(typeof ready.poster_time, "number");
  });

  let before = await fetchImage(ctx, ready.thumbnail_url);
  for (
    const [what, choice] of [["candidate", { candidate: 3 }], ["time", { time: 0.6 }]] as const
  ) {
    await t.step(`choosing the poster by ${what} changes the thumbnail and its ETag`, async () => {
      const response = await putPoster(ctx, "alice", id, choice);
      assert.equal(response.status, 200);
      const updated = await body(response);
      const after = await fetchImage(ctx, updated.thumbnail_url);
      assert.equal(after.status, 200);
      assert.notEqual(after.etag, before.etag);
      assert.notDeepEqual(after.bytes, before.bytes);
      // The old URL (same token) serves the new generation, and a stale ETag gets no 304.
      const old = await fetchImage(ctx, ready.thumbnail_url, { "if-none-match": before.etag! });
      assert.equal(old.status, 200);
      assert.equal(old.etag, after.etag);
      assert.equal((updated.poster_candidates as unknown[]).length, POSTER_CANDIDATES);
      for (const c of updated.poster_candidates as { url: string }[]) {
        assert.equal((await fetchImage(ctx, c.url)).status, 200);
      }
      before = after;
    });
  }

  await t.step("the choice is logged; others may not choose; bad choices are 400", async () => {
    const log = await body<{ items: Json[] }>(
      await ctx.app.request(`/api/admin/activity?action=attachment.poster`, {
        headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
      }),
    );
    assert.equal(log.items.length, 2);
    assert.equal(log.items[0]!.conversation_id, conversationId);
    const bob = await putPoster(ctx, "bob", id, { candidate: 0 });
    assert.equal(bob.status, 403);
    await bob.body?.cancel();
    const mallory = await putPoster(ctx, "mallory", id, { candidate: 0 });
    assert.equal(mallory.status, 404);
    await mallory.body?.cancel();
    for (
      const choice of [{ candidate: 9 }, { time: 60 }, { time: -1 }, {}, { candidate: 0, time: 1 }]
    ) {
      const response = await putPoster(ctx, "alice", id, choice);
      assert.equal(response.status, 400, JSON.stringify(choice));
      await response.body?.cancel();
    }
  });

  await t.step("?time= at 20 times runs ffmpeg at most once per storyboard interval", async () => {
    const { count } = planStoryboard({ duration: 2, width: 320, height: 240 });
    let runs = 0;
    const etags = new Set<string>();
    await observeToolRuns(() => runs++, async () => {
      for (let i = 0; i < 20; i++) {
        const frame = await fetchImage(ctx, `${ready.thumbnail_url}&time=${(i * 0.1).toFixed(1)}`);
        assert.equal(frame.status, 200);
        etags.add(frame.etag!);
      }
    });
    assert.ok(runs >= 1 && runs <= count, `${runs} ffmpeg runs for ${count} intervals`);
    assert.equal(etags.size, count);
    const again = await fetchImage(ctx, `${ready.thumbnail_url}&time=0.5`, {
      "if-none-match": [...etags][0]!,
    });
    assert.equal(again.status, 304);
  });

  await t.step("thumbhash decodes to the poster's average colour", async () => {
    const current = await body(await ctx.request("alice", `/api/chat/attachments/${id}`));
    const hash = Uint8Array.from(atob(String(current.thumbhash)), (ch) => ch.charCodeAt(0));
    assert.ok(hash.length >= 20 && hash.length <= 30, `${hash.length} bytes`);
    const { w, h, rgba } = thumbHashToRGBA(hash);
    const sum = [0, 0, 0];
    for (let p = 0; p < w * h; p++) for (let ch = 0; ch < 3; ch++) sum[ch]! += rgba[p * 4 + ch]!;
    const decoded = sum.map((s) => s / (w * h));
    const poster = await averageOfJpeg((await fetchImage(ctx, current.poster_url)).bytes);
    for (let ch = 0; ch < 3; ch++) {
      assert.ok(
        Math.abs(decoded[ch]! - poster[ch]!) <= 24,
        `channel ${ch}: thumbhash ${decoded[ch]!.toFixed(0)}, poster ${poster[ch]}`,
      );
    }
  });

  await t.step(
    "a video with only a single thumbnail (a runner's, or made before posters) gets a poster by time",
    async () => {
      const [row] = await ctx.deps.db.select().from(attachments).where(eq(attachments.id, id));
      const legacy = storageKey("thumbnails", {
        at: new Date(row!.uploadedAt),
        id: newId(),
        extension: "jpg",
      });
      await ctx.deps.storage.withLocalCopy(row!.thumbnailKey!, async (path) => {
        const copy = `${ctx.deps.storage.tempDir()}/legacy.jpg`;
        await Deno.mkdir(ctx.deps.storage.tempDir(), { recursive: true });
        await Deno.copyFile(path, copy);
        await ctx.deps.storage.putFile(copy, legacy);
      });
      await ctx.deps.storage.delete(row!.posterKey!);
      await ctx.deps.db.update(attachments).set({
        thumbnailKey: legacy,
        posterKey: null,
        posterCandidates: null,
        posterTime: null,
        thumbhash: null,
      }).where(eq(attachments.id, id));
      ctx.deps.recentAccess.clear();
      const none = await putPoster(ctx, "alice", id, { candidate: 0 });
      assert.equal(none.status, 400);
      await none.body?.cancel();
      const response = await putPoster(ctx, "alice", id, { time: 1.5 });
      assert.equal(response.status, 200);
      const updated = await body(response);
      assert.deepEqual(updated.poster_candidates, []);
      assert.equal(updated.poster_time, 1.5);
      assert.equal(typeof updated.thumbhash, "string");
      assert.equal((await fetchImage(ctx, updated.poster_url)).status, 200);
      assert.equal(await ctx.deps.storage.stat(legacy), null, "the single thumbnail is removed");
    },
  );
});

Deno.test("posters: the frame cache renders a key once, shares a running render and limits misses", async () => {
  const cache = new FrameCache();
  let renders = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const render = async () => {
    renders++;
    await gate;
    return new Uint8Array([1, 2, 3]);
  };
  const first = cache.get("k", { who: "alice", now: 0, render });
  const second = cache.get("k", { who: "alice", now: 0, render });
  release();
  assert.deepEqual((await first).result, "rendered");
  assert.deepEqual((await second).result, "hit");
  assert.equal((await cache.get("k", { who: "alice", now: 0, render })).result, "hit");
  assert.equal(renders, 1);
  for (let i = 1; i < FRAME_RENDERS_PER_MINUTE; i++) {
    await cache.get(`k${i}`, { who: "alice", now: 0, render });
  }
  await assert.rejects(
    cache.get("one more", { who: "alice", now: 0, render }),
    (error: unknown) => error instanceof ApiError && error.status === 429,
  );
  // Someone else's allowance is their own; a hit costs nothing.
  assert.equal((await cache.get("one more", { who: "bob", now: 0, render })).result, "rendered");
  assert.equal((await cache.get("k", { who: "alice", now: 0, render })).result, "hit");
});
