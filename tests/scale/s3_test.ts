/**
 * `STORAGE=s3` end to end against a real S3-speaking server: s3rver (an npm
 * dependency of the project) on an ephemeral port and a temp directory,
 * started by the test. Multipart and tus uploads, the jobs (probe,
 * thumbnail, stripped copy, rendition, ladder, storyboard), Range and full
 * responses, presigned redirects, delete; after a delete, a refusal and an
 * expiry no object is left in the bucket.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import S3rver from "s3rver";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import * as tus from "tus-js-client";
import { eq } from "drizzle-orm";
import { activityLog, attachments, uploads } from "../../db/schema.ts";
import { ffmpeg, fixture, lavfi, X264 } from "../_fixtures.ts";
import { fsck } from "../../lib/storage/fsck.ts";
import { startServer } from "../faults/_server.ts";
import { multipartBody } from "../faults/_faults.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  localPath,
  LOOPBACK,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

const BUCKET = "offchat-test";
const PART_MB = 5;

/** Koa's context, as far as the operations below use it. */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  status: number;
  type: string;
  body: unknown;
}

function xmlError(ctx: KoaContext, status: number, code: string): void {
  ctx.status = status;
  ctx.type = "application/xml";
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${code}</Message></Error>`;
}

/**
 * Two multipart operations s3rver 3.7 lacks (it answers "method not allowed")
 * and `@tus/s3-store` uses: ListParts (`GET /<bucket>/<key>?uploadId=`), to
 * find a resumed upload's offset, and AbortMultipartUpload (`DELETE
 * /<bucket>/<key>?uploadId=`), to drop an unfinished one. They read and
 * remove the parts s3rver itself keeps for an upload
 * (`<dir>/<bucket>/._S3rver_uploads/<upload id>/<part number>` and its
 * `.md5`), so they answer from the server's real state.
 */
function multipartOperations(directory: string) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const uploadId = ctx.query.uploadId;
    const match = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (!uploadId || !match || !/^[0-9a-f]+$/.test(uploadId) || ctx.query.partNumber) {
      return await next();
    }
    if (ctx.method !== "GET" && ctx.method !== "DELETE") return await next();
    const dir = `${directory}/${match[1]}/._S3rver_uploads/${uploadId}`;
    const names = await Array.fromAsync(Deno.readDir(dir)).catch(() => null);
    if (!names) return xmlError(ctx, 404, "NoSuchUpload");
    if (ctx.method === "DELETE") {
      await Deno.remove(dir, { recursive: true });
      ctx.status = 204;
      return;
    }
    const parts = [];
    for (const { name } of names) {
      if (!/^\d+$/.test(name)) continue;
      const info = await Deno.stat(`${dir}/${name}`);
      const md5 = await Deno.readTextFile(`${dir}/${name}.md5`);
      parts.push({ number: Number(name), size: info.size, md5, at: info.mtime! });
    }
    parts.sort((a, b) => a.number - b.number);
    ctx.status = 200;
    ctx.type = "application/xml";
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n` +
      `<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
      `<Bucket>${match[1]}</Bucket><Key>${match[2]}</Key><UploadId>${uploadId}</UploadId>` +
      `<MaxParts>10000</MaxParts><IsTruncated>false</IsTruncated>` +
      parts.map((p) =>
        `<Part><PartNumber>${p.number}</PartNumber><LastModified>${p.at.toISOString()}` +
        `</LastModified><ETag>"${p.md5}"</ETag><Size>${p.size}</Size></Part>`
      ).join("") +
      `</ListPartsResult>`;
  };
}

/** s3rver on 127.0.0.1 and an ephemeral port, its objects in a temp directory. */
async function startS3(): Promise<{
  endpoint: string;
  client: S3Client;
  /** `<event name> <key>` of each object created or removed, in order. */
  events: string[];
  /** Multipart uploads begun and neither completed nor aborted (their parts use space). */
  unfinished(): Promise<number>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const directory = await Deno.makeTempDir({ prefix: "offchat-s3-" });
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: BUCKET, configs: [] }],
  });
  // s3rver names a completed multipart upload "ObjectCreated:Post" (a single PUT is
  // "ObjectCreated:Put"); its ETag for one is the MD5 of the whole, not S3's `<md5>-<parts>`.
  (server as unknown as { middleware: unknown[] }).middleware.unshift(
    multipartOperations(directory),
  );
  const events: string[] = [];
  server.on(
    "event",
    (event: { Records: { eventName: string; s3: { object: { key: string } } }[] }) => {
      for (const record of event.Records) {
        events.push(
          `${record.eventName} ${record.s3.object.key}`,
        );
      }
    },
  );
  const { port } = await server.run() as { port: number };
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  return {
    endpoint,
    client,
    events,
    async unfinished() {
      const uploads = `${directory}/${BUCKET}/._S3rver_uploads`;
      return (await Array.fromAsync(Deno.readDir(uploads)).catch(() => [])).length;
    },
    async [Symbol.asyncDispose]() {
      client.destroy();
      await server.close();
      await Deno.remove(directory, { recursive: true });
    },
  };
}

/**
 * Every object key in the bucket (one page: s3rver cannot make continuation
 * tokens under Deno, whose node:crypto lacks the DES cipher s3rver encrypts
 * them with, so no listing here may need a second page).
 */
async function objects(client: S3Client): Promise<string[]> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (listed.Contents ?? []).map((o) => o.Key!).sort();
}

/** The environment of a service on that bucket. */
function s3Env(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    STORAGE: "s3",
    S3_ENDPOINT: endpoint,
    S3_BUCKET: BUCKET,
    S3_REGION: "us-east-1",
    S3_FORCE_PATH_STYLE: "1",
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_PART_SIZE_MB: String(PART_MB),
    ...extra,
  };
}

/**
 * A 2 s H.264 clip of noise at a very high bitrate: larger than one part of
 * a multipart upload, and over the rendition and ladder thresholds.
 */
async function largeClip(dir: string): Promise<string> {
  const path = `${dir}/large.mp4`;
  const args = lavfi(2, ["-c:a", "aac"], [
    "-vf",
    "noise=alls=80:allf=t",
    ...X264,
    "-qp",
    "5",
  ], "mp4");
  await ffmpeg([...args, "-y", path]);
  return path;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** GETs `url` (a public URL of the context) as `user`. */
async function get(
  ctx: TestContext,
  url: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await ctx.app.request(localPath(String(url)), { headers });
}

Deno.test("s3: multipart upload, jobs, Range and full responses, delete; nothing left", async () => {
  await using s3 = await startS3();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-s3-clip-" });
  try {
    const clip = await largeClip(scratch);
    const bytes = await Deno.readFile(clip);
    assert.ok(bytes.length > PART_MB * 1024 * 1024, `${bytes.length} bytes: more than one part`);

    await using ctx = await createTestContext({ env: s3Env(s3.endpoint) });
    const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
    const created = await uploadFile(ctx, "alice", messageId, clip);
    assert.equal(created.status, 201, await created.clone().text());
    const attachment = await body(created);
    const done = await waitForProcessed(ctx, "alice", String(attachment.id), 60_000);
    assert.equal(done.status, "ready", JSON.stringify(done));

    const [row] = await ctx.deps.db.select().from(attachments)
      .where(eq(attachments.id, String(attachment.id)));
    const stored = await objects(s3.client);
    for (const key of [row!.storageKey, row!.thumbnailKey, row!.strippedKey, row!.playbackKey]) {
      assert.ok(key && stored.includes(key), `${key} is in the bucket`);
    }
    assert.ok(row!.hlsKey && stored.some((k) => k.startsWith(`${row!.hlsKey}/`)), "the ladder");
    assert.ok(
      s3.events.includes(`ObjectCreated:Post ${row!.storageKey}`),
      `the original arrived as a multipart upload: ${s3.events.join(", ")}`,
    );
    // The admin view sizes the bucket by kind; the data directory holds no media.
    const usage = await body<{
      disk: { by_kind: Record<string, { bytes: number; files: number }> };
      bucket: { name: string; by_kind: Record<string, { bytes: number; files: number }> };
    }>(
      await ctx.app.request("/api/admin/storage", {
        headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
      }),
    );
    assert.equal(usage.bucket.name, BUCKET);
    assert.deepEqual(usage.bucket.by_kind.originals, { bytes: bytes.length, files: 1 });
    assert.equal(usage.bucket.by_kind.hls!.files > 1, true);
    assert.deepEqual(usage.disk.by_kind.originals, { bytes: 0, files: 0 });
    // Requests to the bucket are counted by operation and outcome.
    const metrics = await (await ctx.app.request("/metrics", {}, LOOPBACK)).text();
    for (const operation of ["CreateMultipartUpload", "UploadPart", "PutObject"]) {
      assert.match(
        metrics,
        new RegExp(
          `^offchat_storage_requests_total\\{operation="${operation}",outcome="ok"\\} [1-9]`,
          "m",
        ),
        operation,
      );
    }
    // The jobs read the upload's own file, kept as their local copy: nothing was downloaded.
    assert.doesNotMatch(metrics, /operation="GetObject"/);
    // fsck lists the bucket: every row has its objects, every object its row.
    assert.deepEqual((await fsck({ ...ctx.deps, dataDir: ctx.dataDir })).issues, []);
    // Nothing stays in the data directory but the database and the process's own files.
    assert.deepEqual(
      (await listFiles(ctx.dataDir)).filter((f) => !/^(offchat\.db|\.secret|tmp\/)/.test(f)),
      [],
    );

    // The exact upload (the uploader's original), whole and in ranges.
    const original = String(done.original_url);
    const whole = await get(ctx, original);
    assert.equal(whole.status, 200);
    assert.equal(sha256(new Uint8Array(await whole.arrayBuffer())), sha256(bytes));
    assert.equal(whole.headers.get("etag"), `"${row!.sha256}"`);
    assert.equal(whole.headers.get("content-type"), "video/mp4");
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.match(whole.headers.get("content-disposition") ?? "", /^attachment; filename=/);
    assert.ok(whole.headers.get("last-modified"));
    assert.equal(whole.headers.get("x-content-type-options"), "nosniff");
    const from = PART_MB * 1024 * 1024 - 10;
    const range = await get(ctx, original, { range: `bytes=${from}-${from + 2_000_000 - 1}` });
    assert.equal(range.status, 206);
    assert.equal(
      range.headers.get("content-range"),
      `bytes ${from}-${from + 1_999_999}/${bytes.length}`,
    );
    assert.deepEqual(
      new Uint8Array(await range.arrayBuffer()),
      bytes.subarray(from, from + 2_000_000),
    );
    const tail = await get(ctx, original, { range: `bytes=${bytes.length - 100}-` });
    assert.equal(tail.status, 206);
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(bytes.length - 100));
    const unchanged = await get(ctx, original, { "if-none-match": `"${row!.sha256}"` });
    assert.equal(unchanged.status, 304);
    await unchanged.body?.cancel();
    const unsatisfiable = await get(ctx, original, { range: `bytes=${bytes.length}-` });
    assert.equal(unsatisfiable.status, 416);
    assert.equal(unsatisfiable.headers.get("content-range"), `bytes */${bytes.length}`);
    await unsatisfiable.body?.cancel();

    // What a receiver gets: the stripped download, the rendition, the thumbnail, the ladder.
    const bobDownload = await ctx.request("bob", `/api/chat/attachments/${attachment.id}`)
      .then(body);
    const download = await get(ctx, bobDownload.url);
    assert.equal(download.status, 200);
    const downloaded = new Uint8Array(await download.arrayBuffer());
    assert.equal(downloaded.length, Number(download.headers.get("content-length")));
    const stream = await get(ctx, done.stream_url, { range: "bytes=0-1023" });
    assert.equal(stream.status, 206);
    assert.equal(stream.headers.get("content-type"), "video/mp4");
    assert.equal((await stream.arrayBuffer()).byteLength, 1024);
    const thumbnail = await get(ctx, done.thumbnail_url);
    assert.equal(thumbnail.status, 200);
    assert.equal(thumbnail.headers.get("content-type"), "image/jpeg");
    const jpeg = new Uint8Array(await thumbnail.arrayBuffer());
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8]);
    const master = await get(ctx, done.hls_url);
    assert.equal(master.status, 200);
    assert.match(await master.text(), /^#EXTM3U/);

    // Delete: every object of the attachment goes.
    const removed = await ctx.request("alice", `/api/chat/attachments/${attachment.id}`, {
      method: "DELETE",
    });
    assert.equal(removed.status, 204);
    assert.deepEqual(await objects(s3.client), []);
    assert.equal(await s3.unfinished(), 0);
    const gone = await get(ctx, original);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("s3: a refused upload leaves no object", async () => {
  await using s3 = await startS3();
  await using ctx = await createTestContext({ env: s3Env(s3.endpoint) });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([new Uint8Array(6 * 1024 * 1024).fill(7)]), "clip.mp4");
  const refused = await ctx.request("alice", "/api/chat/videos/upload/", {
    method: "POST",
    body: form,
  });
  assert.equal(refused.status, 415);
  await refused.body?.cancel();
  assert.deepEqual(await objects(s3.client), []);
  assert.equal(await s3.unfinished(), 0);
});

/** Serves a test context's app on an ephemeral port; dispose to stop. */
function serve(ctx: TestContext): Deno.HttpServer<Deno.NetAddr> & { origin: string } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req, info) => ctx.app.fetch(req, { remoteAddr: info.remoteAddr }),
  );
  return Object.assign(server, { origin: `http://127.0.0.1:${server.addr.port}` });
}

const TUS_PATH = "/api/chat/videos/uploads/";

/** A tus-js-client upload of `bytes` in `chunkSize` PATCHes: the final answer's JSON, or its error. */
function tusUpload(
  origin: string,
  token: string,
  bytes: Uint8Array,
  options: { messageId: string; chunkSize: number },
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    new tus.Upload(Buffer.from(bytes), {
      endpoint: `${origin}${TUS_PATH}`,
      chunkSize: options.chunkSize,
      headers: { authorization: `Bearer ${token}` },
      metadata: { message_id: options.messageId, filename: "clip.mp4" },
      retryDelays: [],
      onSuccess(payload) {
        const text = payload.lastResponse.getBody();
        resolve(text ? JSON.parse(text) : {});
      },
      onError: reject,
    }).start();
  });
}

Deno.test("s3: tus uploads go through @tus/s3-store; refused and expired ones leave no object", async () => {
  await using s3 = await startS3();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-s3-clip-" });
  try {
    const bytes = await Deno.readFile(await largeClip(scratch));
    await using ctx = await createTestContext({ env: s3Env(s3.endpoint) });
    await using server = serve(ctx);
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const alice = await ctx.token("alice");

    // 2 MiB PATCHes: pieces smaller than a part wait in `tus/<id>.part` until a part is full.
    const attachment = await tusUpload(server.origin, alice, bytes, {
      messageId,
      chunkSize: 2 * 1024 * 1024,
    });
    assert.equal(attachment.file_size, bytes.length);
    assert.equal(attachment.sha256, sha256(bytes));
    assert.ok(
      s3.events.some((e) => /^ObjectCreated:Post tus\/[0-9a-f-]{36}$/.test(e)),
      `the upload was one multipart upload: ${s3.events.join(", ")}`,
    );
    const done = await waitForProcessed(ctx, "alice", String(attachment.id), 60_000);
    assert.equal(done.status, "ready", JSON.stringify(done));
    assert.deepEqual((await objects(s3.client)).filter((k) => k.startsWith("tus/")), []);
    const download = await get(ctx, String(done.original_url));
    assert.equal(sha256(new Uint8Array(await download.arrayBuffer())), sha256(bytes));
    const removed = await ctx.request("alice", `/api/chat/attachments/${attachment.id}`, {
      method: "DELETE",
    });
    assert.equal(removed.status, 204);
    assert.deepEqual(await objects(s3.client), []);

    // Refused at the last byte (not a video): the 415, and nothing in the bucket.
    const notVideo = new Uint8Array(PART_MB * 1024 * 1024 + 1000).fill(7);
    const refused = await tusUpload(server.origin, alice, notVideo, {
      messageId,
      chunkSize: 4 * 1024 * 1024,
    }).then(() => null, (error: tus.DetailedError) => error);
    assert.equal(refused?.originalResponse?.getStatus(), 415);
    assert.deepEqual(await objects(s3.client), []);
    assert.equal(await s3.unfinished(), 0);

    // Expired halfway: a part and a trailing piece stored, then the sweep.
    const created = await fetch(`${server.origin}${TUS_PATH}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${alice}`,
        "tus-resumable": "1.0.0",
        "upload-length": String(bytes.length),
        "upload-metadata": `message_id ${btoa(messageId)}`,
      },
    });
    assert.equal(created.status, 201);
    const url = new URL(created.headers.get("location")!, server.origin).href;
    const patched = await fetch(url, {
      method: "PATCH",
      headers: {
        authorization: `Bearer ${alice}`,
        "tus-resumable": "1.0.0",
        "upload-offset": "0",
        "content-type": "application/offset+octet-stream",
      },
      body: bytes.slice(0, PART_MB * 1024 * 1024 + 1000),
    });
    assert.equal(patched.status, 204, await patched.text());
    const id = url.slice(url.lastIndexOf("/") + 1);
    assert.deepEqual(await objects(s3.client), [`tus/${id}.info`, `tus/${id}.part`]);
    assert.equal(await s3.unfinished(), 1, "the first part waits in its multipart upload");
    await ctx.deps.db.update(uploads).set({ expiresAt: Date.now() - 1 }).where(eq(uploads.id, id));
    assert.equal(await ctx.deps.resumableUploads.sweepExpired(), 1);
    assert.deepEqual(await objects(s3.client), []);
    assert.equal(await s3.unfinished(), 0, "the multipart upload was aborted");
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("s3: S3_PRESIGNED_MEDIA redirects to a short-lived URL with the headers forced", async () => {
  await using s3 = await startS3();
  await using ctx = await createTestContext({
    env: s3Env(s3.endpoint, { S3_PRESIGNED_MEDIA: "1" }),
    worker: false,
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const clip = await fixture("h264.mp4");
  const bytes = await Deno.readFile(clip);
  const attachment = await body(await uploadFile(ctx, "alice", messageId, clip, "holiday.mp4"));
  const redirect = await get(ctx, attachment.original_url);
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.get("cache-control"), "private, no-store");
  const location = new URL(redirect.headers.get("location")!);
  assert.equal(location.origin, s3.endpoint);
  assert.equal(location.searchParams.get("X-Amz-Expires"), "60");
  const direct = await fetch(location, { headers: { range: "bytes=0-99" } });
  assert.equal(direct.status, 206);
  assert.equal(direct.headers.get("content-type"), "video/mp4");
  assert.match(
    direct.headers.get("content-disposition") ?? "",
    /^attachment; filename="holiday\.mp4"/,
  );
  assert.deepEqual(new Uint8Array(await direct.arrayBuffer()), bytes.subarray(0, 100));
  // The redirect is where the download starts: it is logged as one.
  const logged = await ctx.deps.db.select().from(activityLog)
    .where(eq(activityLog.action, "video.download"));
  assert.equal(logged.length, 1);
});

Deno.test("s3: the server under the launcher's permissions (the bucket's host, nothing more) stores, processes and serves", async () => {
  await using s3 = await startS3();
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-s3-server-" });
  try {
    await using server = await startServer(dataDir, {
      env: { ...s3Env(s3.endpoint), WORKER_CONCURRENCY: "1", HLS: "0" },
      timeoutMs: 60_000,
    });
    const alice = await server.auth("alice");
    const json = { ...alice, "content-type": "application/json" };
    const conversation = await (await fetch(`${server.url}/api/chat/conversations`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ participant_ids: [] }),
    })).json();
    const message = await (await fetch(
      `${server.url}/api/chat/conversations/${conversation.id}/messages`,
      { method: "POST", headers: json, body: JSON.stringify({ body: "a video" }) },
    )).json();
    const bytes = await Deno.readFile(await fixture("h264.mp4"));
    const form = multipartBody(message.id, bytes, "clip.mp4");
    const created = await fetch(`${server.url}/api/chat/videos/upload/`, {
      method: "POST",
      headers: { ...alice, "content-type": form.contentType },
      body: form.bytes,
    });
    const attachment = await created.json();
    assert.equal(created.status, 201, `${JSON.stringify(attachment)}\n${server.output()}`);
    const deadline = Date.now() + 30_000;
    let done = attachment;
    while (done.status === "processing" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      done = await (await fetch(`${server.url}/api/chat/attachments/${attachment.id}`, {
        headers: alice,
      })).json();
    }
    assert.equal(done.status, "ready", `${JSON.stringify(done)}\n${server.output()}`);
    const stream = await fetch(done.stream_url, { headers: { range: "bytes=0-99" } });
    assert.equal(stream.status, 206);
    assert.equal((await stream.arrayBuffer()).byteLength, 100);
    const stored = await objects(s3.client);
    for (const top of ["media/", "posters/", "stripped/", "storyboards/"]) {
      assert.ok(stored.some((key) => key.startsWith(top)), `${top} in ${stored.join(", ")}`);
    }
    // A tus upload: @tus/s3-store cuts PATCHes into parts in TMPDIR, which the launcher sets.
    const tusHeaders = { ...alice, "tus-resumable": "1.0.0" };
    const createdTus = await fetch(`${server.url}${TUS_PATH}`, {
      method: "POST",
      headers: {
        ...tusHeaders,
        "upload-length": String(bytes.length),
        "upload-metadata": `message_id ${btoa(message.id)}`,
      },
    });
    assert.equal(createdTus.status, 201, `${await createdTus.text()}\n${server.output()}`);
    const patched = await fetch(new URL(createdTus.headers.get("location")!, server.url), {
      method: "PATCH",
      headers: {
        ...tusHeaders,
        "upload-offset": "0",
        "content-type": "application/offset+octet-stream",
      },
      body: bytes,
    });
    const viaTus = await patched.json();
    assert.equal(patched.status, 200, server.output());
    assert.equal(viaTus.sha256, attachment.sha256);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
    await ready.body?.cancel();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("s3: full and Range responses carry the very headers the disk sends", async () => {
  await using s3 = await startS3();
  await using onS3 = await createTestContext({ env: s3Env(s3.endpoint), worker: false });
  await using onDisk = await createTestContext({ worker: false });
  const clip = await fixture("h264.mp4");
  const requests: Record<string, string>[] = [
    {},
    { range: "bytes=0-99" },
    { range: "bytes=100-" },
    { "if-range": '"stale"', range: "bytes=0-99" },
  ];
  const seen: Record<string, string>[][] = [];
  for (const ctx of [onS3, onDisk]) {
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const attachment = await body(await uploadFile(ctx, "alice", messageId, clip, "holiday.mp4"));
    const answers: Record<string, string>[] = [];
    for (const headers of requests) {
      const response = await get(ctx, attachment.original_url, headers);
      await response.arrayBuffer();
      const kept = [...response.headers].filter(([name]) =>
        !["date", "last-modified", "x-request-id"].includes(name)
      );
      answers.push({ status: String(response.status), ...Object.fromEntries(kept) });
      assert.ok(response.headers.get("last-modified"));
    }
    seen.push(answers);
  }
  assert.deepEqual(seen[0], seen[1]);
});
