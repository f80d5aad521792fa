import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/config.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  postJson,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { fixture } from "../_fixtures.ts";

Deno.test("dashboard: the page has a strict CSP and is revalidated; its assets are immutable", async () => {
  await using ctx = await createTestContext({ worker: false });
  const page = await ctx.app.request("/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.equal(page.headers.get("cache-control"), "no-cache");
  const csp = page.headers.get("content-security-policy")!;
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  // hls.js hands the <video> a MediaSource as a blob: URL; scripts never come from one.
  assert.match(csp, /media-src 'self' \S+ blob:(;|$)/);
  assert.doesNotMatch(csp, /script-src[^;]*blob:/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  const html = await page.text();
  assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
  assert.doesNotMatch(html, /__ASSET_BASE__/);

  const sources = [...html.matchAll(/(?:src|href)="(\/ui\/[0-9a-f]{16}\/[^"]+)"/g)].map((m) =>
    m[1]!
  );
  assert.ok(sources.some((s) => s.endsWith("/app.js")));
  assert.ok(sources.some((s) => s.endsWith("/vendor/tus.min.js")));
  for (const source of sources) {
    const asset = await ctx.app.request(source);
    assert.equal(asset.status, 200, source);
    assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(asset.headers.get("x-content-type-options"), "nosniff");
    const etag = asset.headers.get("etag")!;
    await asset.body?.cancel();
    const again = await ctx.app.request(source, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304, source);
  }
  const tus = await ctx.app.request(sources.find((s) => s.endsWith("/vendor/tus.min.js"))!);
  assert.match(tus.headers.get("content-type")!, /^text\/javascript/);
  assert.match(await tus.text(), /tus/);

  // Scripts go gzipped to a browser that takes gzip (hls.js: about a third of its size), as a
  // representation of their own (ETag, Vary), and as they are to a client that does not.
  const base = sources.find((s) => s.endsWith("/app.js"))!.replace(/app\.js$/, "");
  const plain = await ctx.app.request(`${base}vendor/hls.min.js`);
  const plainBytes = await plain.bytes();
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(plain.headers.get("vary"), "accept-encoding");
  for (const acceptEncoding of ["gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8"]) {
    const zipped = await ctx.app.request(`${base}vendor/hls.min.js`, {
      headers: { "accept-encoding": acceptEncoding },
    });
    assert.equal(zipped.headers.get("content-encoding"), "gzip", acceptEncoding);
    assert.notEqual(zipped.headers.get("etag"), plain.headers.get("etag"));
    const packed = await zipped.bytes();
    assert.ok(packed.length < plainBytes.length / 2, `${packed.length} of ${plainBytes.length}`);
    const unpacked = await new Response(
      new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).bytes();
    assert.deepEqual(unpacked, plainBytes);
  }
  const refused = await ctx.app.request(`${base}vendor/hls.min.js`, {
    headers: { "accept-encoding": "gzip;q=0, identity" },
  });
  assert.equal(refused.headers.get("content-encoding"), null);
  await refused.body?.cancel();

  const etag = page.headers.get("etag")!;
  assert.equal((await ctx.app.request("/", { headers: { "if-none-match": etag } })).status, 304);

  const stale = await ctx.app.request("/ui/0000000000000000/app.js");
  assert.equal(stale.status, 200);
  assert.equal(stale.headers.get("cache-control"), "no-cache");
  await stale.body?.cancel();
  assert.equal((await ctx.app.request(`/ui/0000000000000000/../deno.json`)).status, 404);
  assert.equal((await ctx.app.request(`/ui/0000000000000000/nothing.js`)).status, 404);
});

Deno.test("dashboard: /api/ui/config tells the limit and formats before an upload", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_UPLOAD_BYTES: "1234567" },
  });
  const config = await body<{
    max_upload_bytes: number;
    accepted_formats: { container: string; extensions: string[] }[];
    dev_login: boolean;
  }>(await ctx.app.request("/api/ui/config"));
  assert.equal(config.max_upload_bytes, 1234567);
  assert.deepEqual(config.accepted_formats.map((f) => f.container), [
    "mp4",
    "mov",
    "webm",
    "mkv",
    "ogg",
    "avi",
  ]);
  assert.equal(config.dev_login, false);
});

Deno.test("dev sign-in: off by default, and refused with a configured key", async () => {
  await using ctx = await createTestContext({ worker: false });
  const response = await postJson(ctx, "alice", "/api/dev/login", { user_id: "mallory" });
  assert.equal(response.status, 404);
  await response.body?.cancel();
  for (
    const key of [
      { JWT_SECRET: "x".repeat(32) },
      { JWT_JWKS_URL: "https://id.example/jwks" },
      { JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----" },
    ]
  ) {
    assert.throws(() => parseConfig({ DEV_LOGIN: "1", HOST: "127.0.0.1", ...key }), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /DEV_LOGIN/);
      return true;
    });
  }
  assert.throws(() => parseConfig({ DEV_LOGIN: "yes" }), /DEV_LOGIN: must be 1 or 0/);
});

Deno.test("dev sign-in: with DEV_LOGIN=1 and the generated secret, mints a working token", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { DEV_LOGIN: "1", HOST: "127.0.0.1", JWT_SECRET: "" },
  });
  const config = await body<{ dev_login: boolean }>(await ctx.app.request("/api/ui/config"));
  assert.equal(config.dev_login, true);
  const minted = await body<{ token: string; user_id: string; admin: boolean }>(
    await ctx.app.request("/api/dev/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: "root", admin: true }),
    }),
  );
  assert.equal(minted.user_id, "root");
  assert.equal(minted.admin, true);
  const admin = await ctx.app.request("/api/admin/storage", {
    headers: { authorization: `Bearer ${minted.token}` },
  });
  assert.equal(admin.status, 200);
  await admin.body?.cancel();
  const bad = await ctx.app.request("/api/dev/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: "no spaces" }),
  });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
});

Deno.test("admin storage: originals by status and bytes on disk by directory", async () => {
  await using ctx = await createTestContext({ worker: false });
  const conversation = await body<{ id: string }>(
    await postJson(ctx, "alice", "/api/chat/conversations", { participant_ids: [] }),
  );
  const message = await body<{ id: string }>(
    await postJson(ctx, "alice", `/api/chat/conversations/${conversation.id}/messages`, {}),
  );
  const uploaded = await uploadFile(ctx, "alice", message.id, await fixture("h264.mp4"));
  assert.equal(uploaded.status, 201);
  const attachment = await body<{ file_size: number }>(uploaded);

  const forbidden = await ctx.request("alice", "/api/admin/storage");
  assert.equal(forbidden.status, 403);
  await forbidden.body?.cancel();
  const usage = await body<{
    attachments: {
      count: number;
      original_bytes: number;
      by_status: Record<string, { count: number }>;
    };
    disk: { total_bytes: number; directories: { name: string; bytes: number }[] };
  }>(
    await ctx.app.request("/api/admin/storage", {
      headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
    }),
  );
  assert.equal(usage.attachments.count, 1);
  assert.equal(usage.attachments.original_bytes, attachment.file_size);
  assert.equal(usage.attachments.by_status.processing!.count, 1);
  const media = usage.disk.directories.find((d) => d.name === "media");
  assert.equal(media?.bytes, attachment.file_size);
  assert.ok(usage.disk.total_bytes > attachment.file_size, "the database counts too");
});

interface KindUsage {
  bytes: number;
  files: number;
}

Deno.test("admin storage: bytes on disk by kind, from originals to the database", async () => {
  await using ctx = await createTestContext({ env: { HLS_MIN_DURATION: "1" } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  // moov at the end: remuxed, so it has a rendition besides its stripped copy and its ladder.
  const created = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("moov_end.mp4")),
  );
  const done = await waitForProcessed(ctx, "alice", String(created.id));
  assert.equal(done.status, "ready");
  assert.equal(done.playback, "remux");
  await Deno.mkdir(`${ctx.dataDir}/lost+found`);
  await Deno.writeTextFile(`${ctx.dataDir}/lost+found/stray`, "12345");

  const usage = await body<{
    disk: {
      total_bytes: number;
      files: number;
      directories: ({ name: string } & KindUsage)[];
      by_kind: Record<string, KindUsage>;
    };
  }>(
    await ctx.app.request("/api/admin/storage", {
      headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
    }),
  );
  const { by_kind: kinds, directories } = usage.disk;
  assert.deepEqual(Object.keys(kinds), [
    "originals",
    "stripped_copies",
    "compact_renditions",
    "hls",
    "thumbnails",
    "storyboards",
    "subtitles",
    "temp",
    "database",
    "other",
  ]);
  const directory = (name: string) => {
    const found = directories.find((d) => d.name === name);
    return { bytes: found?.bytes ?? 0, files: found?.files ?? 0 };
  };
  assert.deepEqual(kinds.originals, { bytes: Number(created.file_size), files: 1 });
  assert.deepEqual(kinds.stripped_copies, directory("stripped"));
  assert.deepEqual(kinds.compact_renditions, directory("renditions"));
  assert.deepEqual(kinds.hls, directory("hls"));
  // Posters (poster, thumbnail, five candidates) count as thumbnails; no runner wrote a lone one.
  assert.deepEqual(kinds.thumbnails, directory("posters"));
  assert.equal(kinds.thumbnails!.files, 7);
  assert.deepEqual(kinds.storyboards, directory("storyboards"));
  for (const kind of ["stripped_copies", "compact_renditions", "storyboards"]) {
    assert.equal(kinds[kind]!.files, 1, kind);
    assert.ok(kinds[kind]!.bytes > 0, kind);
  }
  assert.ok(kinds.hls!.files > 3, "playlists, manifest and segments");
  // offchat.db and its -wal (and -shm) file, directly in DATA_DIR.
  assert.ok(kinds.database!.files >= 2 && kinds.database!.bytes > 0);
  assert.deepEqual(kinds.other, { bytes: 5, files: 1 });
  // A partition of the same walk: every byte and file is of exactly one kind.
  const all = Object.values(kinds);
  assert.equal(all.reduce((sum, k) => sum + k.bytes, 0), usage.disk.total_bytes);
  assert.equal(all.reduce((sum, k) => sum + k.files, 0), usage.disk.files);
});
