import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as tus from "tus-js-client";
import { eq, isNull } from "drizzle-orm";
import { attachments, uploads } from "../../db/schema.ts";
import { parseConfig } from "../../lib/config/config.ts";
import { denoRunArgs } from "../../lib/config/permissions.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  diskPath,
  freePort,
  listFiles,
  type TestContext,
  waitForProcessed,
} from "../_helpers.ts";

const root = new URL("../..", import.meta.url).pathname;
const ENDPOINT_PATH = "/api/chat/videos/uploads/";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Serves a test context's app on an ephemeral port; dispose to stop. */
function serve(
  ctx: TestContext,
  seen: string[] = [],
): Deno.HttpServer<Deno.NetAddr> & { origin: string } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req, info) => {
      seen.push(req.method);
      return ctx.app.fetch(req, { remoteAddr: info.remoteAddr });
    },
  );
  return Object.assign(server, { origin: `http://127.0.0.1:${server.addr.port}` });
}

/**
 * A TCP proxy to `port` that cuts every connection once it has forwarded
 * `cutAfter` bytes from the client: a phone losing its network mid-upload.
 */
function flakyProxy(port: number, cutAfter: number): { origin: string; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      open.add(client).add(upstream);
      const cut = () => {
        for (const conn of [client, upstream]) {
          if (open.delete(conn)) conn.close();
        }
      };
      pipes.push((async () => {
        let forwarded = 0;
        const buffer = new Uint8Array(64 * 1024);
        try {
          while (true) {
            const n = await client.read(buffer);
            if (n === null) break;
            const allowed = Math.min(n, cutAfter - forwarded);
            if (allowed > 0) await upstream.write(buffer.subarray(0, allowed));
            forwarded += allowed;
            if (forwarded >= cutAfter) break;
          }
        } catch {
          // the other side went away
        }
        cut();
      })());
      pipes.push((async () => {
        try {
          await upstream.readable.pipeTo(client.writable, { preventClose: true });
        } catch {
          // cut
        }
        cut();
      })());
    }
  })();
  return {
    origin: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of open) conn.close();
      open.clear();
      await Promise.allSettled(pipes);
    },
  };
}

interface TusRun {
  upload: tus.Upload;
  /** Settles with the final response's body (the Attachment JSON) or the error. */
  done: Promise<Record<string, unknown>>;
  /** Every progress event's offset: the first is where this run started. */
  offsets: number[];
  /** The attachment id header of the final response, once `done` settled. */
  attachmentId(): string | undefined;
}

/** Starts a tus-js-client upload of `bytes` (no retries: a failure ends it). */
function startTus(
  endpoint: string,
  token: string,
  bytes: Uint8Array,
  options: {
    messageId: string;
    fileName?: string;
    uploadUrl?: string;
    chunkSize?: number;
  },
): TusRun {
  const offsets: number[] = [];
  let upload!: tus.Upload;
  let attachmentId: string | undefined;
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    upload = new tus.Upload(Buffer.from(bytes), {
      endpoint,
      // Only what is set: an explicit `undefined` replaces the client's defaults.
      ...(options.uploadUrl ? { uploadUrl: options.uploadUrl } : {}),
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      headers: { authorization: `Bearer ${token}` },
      metadata: { message_id: options.messageId, filename: options.fileName ?? "clip.mp4" },
      retryDelays: [],
      onProgress(sent) {
        offsets.push(sent);
      },
      onSuccess(payload) {
        attachmentId = payload.lastResponse.getHeader("offchat-attachment-id");
        const text = payload.lastResponse.getBody();
        resolve(text ? JSON.parse(text) : {});
      },
      onError: reject,
    });
    upload.start();
  });
  return { upload, done, offsets, attachmentId: () => attachmentId };
}

/**
 * Uploads through a proxy that cuts the connection after `fraction` of the
 * bytes; returns the upload's URL on `origin` and the offset the server kept.
 */
async function cutOffUpload(
  origin: string,
  token: string,
  bytes: Uint8Array,
  messageId: string,
  fraction: number,
): Promise<{ url: string; offset: number }> {
  const port = Number(new URL(origin).port);
  const proxy = flakyProxy(port, Math.floor(bytes.length * fraction));
  try {
    const run = startTus(`${proxy.origin}${ENDPOINT_PATH}`, token, bytes, { messageId });
    await assert.rejects(run.done);
    const url = run.upload.url!.replace(proxy.origin, origin);
    // The server notices the cut when its read fails: wait for the bytes to land.
    let offset = 0;
    for (let i = 0; i < 100 && offset === 0; i++) {
      offset = await headOffset(url, token);
      if (offset === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { url, offset };
  } finally {
    await proxy.close();
  }
}

/**
 * Sends a request's headers and the start of its body over a raw connection,
 * then reads the answer without sending the rest.
 */
async function partialPost(
  port: number,
  path: string,
  headers: Record<string, string>,
  start: Uint8Array,
): Promise<Response> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    `POST ${path} HTTP/1.1`,
    `host: 127.0.0.1:${port}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(head));
  await conn.write(start);
  let received = new Uint8Array(0);
  const buffer = new Uint8Array(16 * 1024);
  const text = () => new TextDecoder().decode(received);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received = new Uint8Array([...received, ...buffer.subarray(0, n)]);
    const end = text().indexOf("\r\n\r\n");
    if (end < 0) continue;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text())?.[1] ?? 0);
    if (received.length >= end + 4 + length) break;
  }
  const [statusLine, ...lines] = text().slice(0, text().indexOf("\r\n\r\n")).split("\r\n");
  const responseHeaders = new Headers(
    lines.map((
      line,
    ) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]),
  );
  return new Response(text().slice(text().indexOf("\r\n\r\n") + 4) || null, {
    status: Number(statusLine!.split(" ")[1]),
    headers: responseHeaders,
  });
}

async function headOffset(url: string, token: string): Promise<number> {
  const response = await fetch(url, {
    method: "HEAD",
    headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(response.status, 200);
  return Number(response.headers.get("upload-offset"));
}

Deno.test("uploads: tus-js-client uploads in chunks and the attachment ends ready", async () => {
  await using ctx = await createTestContext();
  const methods: string[] = [];
  await using server = serve(ctx, methods);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const bytes = await Deno.readFile(await fixture("h264.mp4"));
  const run = startTus(`${server.origin}${ENDPOINT_PATH}`, await ctx.token("alice"), bytes, {
    messageId,
    fileName: "../../holiday\r\n.mp4",
    chunkSize: 16 * 1024,
  });
  const attachment = await run.done;
  assert.equal(attachment.status, "processing");
  assert.equal(attachment.file_name, "holiday.mp4");
  assert.equal(attachment.file_size, bytes.length);
  assert.equal(attachment.sha256, sha256(bytes));
  assert.equal(
    methods.filter((m) => m === "PATCH").length,
    Math.ceil(bytes.length / (16 * 1024)),
    "one PATCH per 16 KiB chunk",
  );
  const done = await waitForProcessed(ctx, "alice", String(attachment.id));
  assert.equal(done.status, "ready");
  assert.ok(done.thumbnail_url);
  assert.equal(run.attachmentId(), attachment.id);
  // No bytes of the upload are left behind; only its record, until it expires.
  assert.deepEqual(await listFiles(`${ctx.dataDir}/tus`), []);
  const [record] = await ctx.deps.db.select().from(uploads);
  assert.equal(record?.attachmentId, attachment.id);

  // A client that lost the last answer resumes: HEAD says complete and names the attachment.
  const again = startTus(`${server.origin}${ENDPOINT_PATH}`, await ctx.token("alice"), bytes, {
    messageId,
    uploadUrl: run.upload.url!,
  });
  assert.deepEqual(await again.done, {});
  assert.equal(again.attachmentId(), attachment.id);
  const count = await body(
    await ctx.request("alice", `/api/chat/messages/${messageId}/attachments`),
  );
  assert.equal((count.attachments as unknown[]).length, 1, "no second attachment");
  const late = await fetch(run.upload.url!, {
    method: "PATCH",
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "tus-resumable": "1.0.0",
      "upload-offset": "0",
      "content-type": "application/offset+octet-stream",
    },
    body: bytes.subarray(0, 100),
  });
  assert.equal(late.status, 409);
  assert.equal(late.headers.get("upload-offset"), String(bytes.length));
  await late.body?.cancel();
  // It no longer counts as unfinished.
  assert.equal(
    (await ctx.deps.db.select().from(uploads).where(isNull(uploads.attachmentId))).length,
    0,
  );
  const log = await body<{ items: { action: string }[] }>(
    await ctx.app.request("/api/admin/activity", {
      headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
    }),
  );
  assert.ok(log.items.some((a) => a.action === "video.upload"));
});

Deno.test("uploads: an upload cut off halfway resumes from the server's offset", async () => {
  await using ctx = await createTestContext({ worker: false });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const token = await ctx.token("alice");
  const bytes = await Deno.readFile(await fixture("padded.mp4"));
  const endpoint = `${server.origin}${ENDPOINT_PATH}`;

  const { url, offset } = await cutOffUpload(server.origin, token, bytes, messageId, 0.5);
  assert.match(url, /\/api\/chat\/videos\/uploads\/[0-9a-f-]{36}$/);
  assert.ok(offset > 0 && offset < bytes.length, `partial: ${offset} of ${bytes.length}`);

  const second = startTus(endpoint, token, bytes, { messageId, uploadUrl: url });
  const attachment = await second.done;
  assert.ok(second.offsets[0]! >= offset, "resumed, not restarted");
  assert.equal(attachment.file_size, bytes.length);
  assert.equal(attachment.sha256, sha256(bytes));
  const stored = await ctx.deps.db.select().from(attachments)
    .where(eq(attachments.id, String(attachment.id)));
  const file = await Deno.readFile(diskPath(ctx, stored[0]!.storageKey));
  assert.equal(sha256(file), sha256(bytes), "the stored file is the source, byte for byte");
});

Deno.test("uploads: only the creator may HEAD, PATCH or DELETE an upload", async () => {
  await using ctx = await createTestContext({ worker: false });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const bytes = await Deno.readFile(await fixture("padded.mp4"));
  const alice = await ctx.token("alice");
  const { url, offset } = await cutOffUpload(server.origin, alice, bytes, messageId, 0.2);

  const bob = { authorization: `Bearer ${await ctx.token("bob")}`, "tus-resumable": "1.0.0" };
  const attempts = [
    await fetch(url, { method: "HEAD", headers: bob }),
    await fetch(url, {
      method: "PATCH",
      headers: {
        ...bob,
        "upload-offset": String(offset),
        "content-type": "application/offset+octet-stream",
      },
      body: new Uint8Array(10),
    }),
    await fetch(url, { method: "DELETE", headers: bob }),
    await fetch(url, { headers: { authorization: bob.authorization } }),
  ];
  const missing = await fetch(url.replace(/[0-9a-f]{4}$/, "0000"), {
    method: "DELETE",
    headers: bob,
  });
  for (const response of [...attempts, missing]) {
    assert.equal(response.status, 404);
    await response.body?.cancel();
  }
  assert.equal(await headOffset(url, alice), offset, "nothing was written or removed");

  const removed = await fetch(url, {
    method: "DELETE",
    headers: { authorization: `Bearer ${alice}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(removed.status, 204);
  assert.deepEqual(await listFiles(`${ctx.dataDir}/tus`), []);
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 0);
});

Deno.test("uploads: creation is refused before any byte is read", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_UPLOAD_BYTES: "1000000", MAX_UNFINISHED_UPLOADS: "2" },
  });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const alice = await ctx.token("alice");
  const metadata = (id: string) => `message_id ${btoa(id)},filename ${btoa("a.mp4")}`;
  const create = async (
    token: string,
    headers: Record<string, string>,
    streamBody = false,
  ): Promise<Response> => {
    const all = { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0", ...headers };
    if (!streamBody) {
      return await fetch(`${server.origin}${ENDPOINT_PATH}`, { method: "POST", headers: all });
    }
    // Creation-with-upload whose client sends 1 KiB of a body it announced as
    // Upload-Length bytes and then stalls: only an answer before the body ends this.
    return await partialPost(server.addr.port, ENDPOINT_PATH, {
      ...all,
      "content-type": "application/offset+octet-stream",
      "content-length": headers["upload-length"]!,
    }, new Uint8Array(1024));
  };

  const tooBig = await create(alice, {
    "upload-length": "1000001",
    "upload-metadata": metadata(messageId),
  }, true);
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.headers.get("content-type"), "application/problem+json");
  assert.equal((await body(tooBig)).code, "file_too_large");

  const notYours = await create(await ctx.token("bob"), {
    "upload-length": "100",
    "upload-metadata": metadata(messageId),
  }, true);
  assert.equal(notYours.status, 409);
  await notYours.body?.cancel();
  const notIn = await create(await ctx.token("mallory"), {
    "upload-length": "100",
    "upload-metadata": metadata(messageId),
  });
  assert.equal(notIn.status, 404);
  await notIn.body?.cancel();
  const invalid: Record<string, string>[] = [
    { "upload-length": "100" },
    { "upload-defer-length": "1", "upload-metadata": metadata(messageId) },
    { "upload-length": "-1", "upload-metadata": metadata(messageId) },
    { "upload-length": "100", "upload-metadata": "message_id !!!" },
  ];
  for (const headers of invalid) {
    const refused = await create(alice, headers);
    assert.equal(refused.status, 400, JSON.stringify(headers));
    await refused.body?.cancel();
  }

  // The per-user cap on unfinished uploads.
  for (let i = 0; i < 2; i++) {
    const ok = await create(alice, {
      "upload-length": "100",
      "upload-metadata": metadata(messageId),
    });
    assert.equal(ok.status, 201);
    const expires = Date.parse(ok.headers.get("upload-expires") ?? "");
    const expected = Date.now() + ctx.deps.config.uploadExpiry * 1000;
    assert.ok(Math.abs(expires - expected) < 5000, "Upload-Expires is UPLOAD_EXPIRY from now");
    await ok.body?.cancel();
  }
  const capped = await create(alice, {
    "upload-length": "100",
    "upload-metadata": metadata(messageId),
  });
  assert.equal(capped.status, 429);
  assert.equal(capped.headers.get("retry-after"), "60");
  await capped.body?.cancel();

  const options = await fetch(`${server.origin}${ENDPOINT_PATH}`, {
    method: "OPTIONS",
    headers: { origin: "https://elsewhere.example" },
  });
  assert.equal(options.headers.get("tus-max-size"), "1000000");
  assert.deepEqual(
    (options.headers.get("tus-extension") ?? "").split(",").sort(),
    ["creation", "creation-with-upload", "expiration", "termination"],
    "no deferred length: the size is checked before any byte",
  );
  assert.equal(options.headers.get("access-control-allow-origin"), null, "same-origin only");
  await options.body?.cancel();
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 2);
});

Deno.test("uploads: a completed upload that is not a video gets 415 and leaves nothing", async () => {
  await using ctx = await createTestContext({ worker: false });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const bytes = await Deno.readFile(await fixture("text.mp4"));
  const run = startTus(`${server.origin}${ENDPOINT_PATH}`, await ctx.token("alice"), bytes, {
    messageId,
  });
  const error = await run.done.then(() => null, (e: tus.DetailedError) => e);
  assert.ok(error, "the upload failed");
  assert.equal(error.originalResponse?.getStatus(), 415);
  const problem = JSON.parse(error.originalResponse!.getBody());
  assert.equal(problem.code, "unsupported_media_type");
  assert.deepEqual(await listFiles(`${ctx.dataDir}/tus`), []);
  assert.deepEqual(
    (await listFiles(ctx.dataDir)).filter((f) => f.startsWith("media/")),
    [],
  );
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 0);
  assert.equal((await ctx.deps.db.select().from(attachments)).length, 0);
});

Deno.test("uploads: an expired upload answers 410 and the sweep removes it", async () => {
  await using ctx = await createTestContext({ worker: false });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const alice = await ctx.token("alice");
  const bytes = await Deno.readFile(await fixture("padded.mp4"));
  const { url } = await cutOffUpload(server.origin, alice, bytes, messageId, 0.3);
  assert.equal((await listFiles(`${ctx.dataDir}/tus`)).length, 2, "data and its .json");

  // A day later (the row's clock is what expires it).
  await ctx.deps.db.update(uploads).set({ expiresAt: Date.now() - 1 });
  const gone = await fetch(url, {
    method: "HEAD",
    headers: { authorization: `Bearer ${alice}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(gone.status, 410);
  assert.equal(await ctx.deps.resumableUploads.sweepExpired(), 1);
  assert.deepEqual(await listFiles(`${ctx.dataDir}/tus`), []);
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 0);
  const after = await fetch(url, {
    method: "HEAD",
    headers: { authorization: `Bearer ${alice}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(after.status, 404);
});

async function startServerProcess(
  dataDir: string,
  port: number,
  secret: string,
): Promise<Deno.ChildProcess> {
  const env = { PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir, JWT_SECRET: secret };
  // The flags `deno task start` gives the server (without its launcher, which would
  // outlive a SIGKILL of its child).
  const child = new Deno.Command(Deno.execPath(), {
    args: denoRunArgs(parseConfig(env), "serve"),
    cwd: root,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      await response.body?.cancel();
      if (response.ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error("the server did not start");
}

Deno.test("uploads: an upload resumes after the server process is killed and started again", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-tus-" });
  await using ctx = await createTestContext({ worker: false, dataDir });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const token = await ctx.token("alice");
  const bytes = await Deno.readFile(await fixture("padded.mp4"));
  const port = freePort();
  const endpoint = `http://127.0.0.1:${port}${ENDPOINT_PATH}`;

  let child = await startServerProcess(dataDir, port, ctx.deps.config.jwtSecret!);
  try {
    const { url, offset } = await cutOffUpload(
      `http://127.0.0.1:${port}`,
      token,
      bytes,
      messageId,
      0.5,
    );
    assert.ok(offset > 0 && offset < bytes.length);

    child.kill("SIGKILL");
    await child.status;
    child = await startServerProcess(dataDir, port, ctx.deps.config.jwtSecret!);

    assert.equal(await headOffset(url, token), offset, "the offset survived the restart");
    const second = startTus(endpoint, token, bytes, { messageId, uploadUrl: url });
    const attachment = await second.done;
    assert.equal(attachment.sha256, sha256(bytes));
    assert.equal(attachment.status, "processing");
  } finally {
    child.kill("SIGKILL");
    await child.status.catch(() => {});
  }
});

Deno.test("uploads: two processes sweeping at once remove each expired upload once", async () => {
  await using first = await createTestContext({ worker: false });
  // A second set of deps on the same data directory and database: another process.
  await using second = await createTestContext({ worker: false, dataDir: first.dataDir });
  await using server = serve(first);
  const { messageId } = await conversationWithMessage(first, "alice");
  const alice = await first.token("alice");
  for (let i = 0; i < 3; i++) {
    const created = await fetch(`${server.origin}${ENDPOINT_PATH}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${alice}`,
        "tus-resumable": "1.0.0",
        "upload-length": "1000",
        "upload-metadata": `message_id ${btoa(messageId)}`,
      },
    });
    assert.equal(created.status, 201);
    await created.body?.cancel();
  }
  assert.equal((await listFiles(`${first.dataDir}/tus`)).length, 6);
  await first.deps.db.update(uploads).set({ expiresAt: Date.now() - 1 });
  const removed = await Promise.all([
    first.deps.resumableUploads.sweepExpired(),
    second.deps.resumableUploads.sweepExpired(),
  ]);
  assert.equal(removed[0] + removed[1], 3);
  assert.deepEqual(await listFiles(`${first.dataDir}/tus`), []);
  assert.equal((await first.deps.db.select().from(uploads)).length, 0);
});

Deno.test("uploads: unfinished uploads hold their size against USER_QUOTA_BYTES", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { USER_QUOTA_BYTES: "2000000", MAX_UNFINISHED_UPLOADS: "20" },
  });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const alice = await ctx.token("alice");
  const create = (length: number) =>
    fetch(`${server.origin}${ENDPOINT_PATH}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${alice}`,
        "tus-resumable": "1.0.0",
        "upload-length": String(length),
        "upload-metadata": `message_id ${btoa(messageId)}`,
      },
    });
  const first = await create(1_500_000);
  assert.equal(first.status, 201);
  await first.body?.cancel();
  const second = await create(1_000_000);
  assert.equal(second.status, 413);
  assert.equal((await body(second)).code, "file_too_large");
  // Exact sizes: what is left is exactly 500000 bytes.
  const over = await create(500_001);
  assert.equal(over.status, 413);
  await over.body?.cancel();
  assert.equal((await ctx.deps.db.select().from(uploads)).length, 1);
  // Concurrent creations cannot all slip under the quota.
  const racing = await Promise.all(Array.from({ length: 8 }, () => create(200_000)));
  for (const response of racing) await response.body?.cancel();
  assert.equal(racing.filter((r) => r.status === 201).length, 2);
  assert.ok(racing.every((r) => r.status === 201 || r.status === 413));
});

Deno.test("uploads: a creation that carries every byte answers 201 with the attachment", async () => {
  await using ctx = await createTestContext({ worker: false });
  await using server = serve(ctx);
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const bytes = await Deno.readFile(await fixture("h264.mp4"));
  const response = await fetch(`${server.origin}${ENDPOINT_PATH}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "tus-resumable": "1.0.0",
      "upload-length": String(bytes.length),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("one go.mp4")}`,
      "content-type": "application/offset+octet-stream",
    },
    body: bytes,
  });
  assert.equal(response.status, 201);
  assert.match(
    response.headers.get("location") ?? "",
    /^\/api\/chat\/videos\/uploads\/[0-9a-f-]{36}$/,
  );
  const attachment = await body(response);
  assert.equal(attachment.file_name, "one go.mp4");
  assert.equal(attachment.sha256, sha256(bytes));
  assert.equal(response.headers.get("offchat-attachment-id"), attachment.id);
  assert.deepEqual(await listFiles(`${ctx.dataDir}/tus`), []);
});
