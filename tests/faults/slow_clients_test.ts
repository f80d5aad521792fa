/**
 * Slow and broken clients (issue 13, point 5), against the real server
 * (`serve` of lib/serving/server.ts, as main.ts runs it) on an ephemeral
 * port, with raw TCP clients. An upload body that sends nothing for
 * UPLOAD_IDLE_TIMEOUT_MS (500 ms here) is cut with 408 and its connection
 * closed: a multipart upload's temporary file is removed, a tus upload stays
 * resumable at its offset. A client that disconnects mid-upload or
 * mid-stream leaves no descriptor behind.
 *
 * Descriptors are counted in /proc/<pid>/fd, by what they point at: the
 * server's sockets on the test's port and the files under the test's data
 * directory. A plain total would also count what other test files running in
 * this process (`--parallel`) open and close meanwhile.
 */
import assert from "node:assert/strict";
import { serve } from "../../lib/serving/server.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  type TestContext,
  uploadFile,
} from "../_helpers.ts";

const IDLE_MS = 500;
/** Far above every timer under test: a condition not met by then never will be. */
const DEADLINE_MS = 20_000;
const enc = new TextEncoder();

/** Polls `condition` until it holds, failing with `what` after DEADLINE_MS. */
async function until(what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not true after ${DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What this process's descriptors point at (`socket:[inode]`, paths…), one per descriptor. */
async function descriptors(): Promise<string[]> {
  // Deno reads /proc/<pid>/fd only with --allow-all: `find` reads the links instead.
  const out = await new Deno.Command("find", {
    args: [`/proc/${Deno.pid}/fd`, "-mindepth", "1", "-printf", "%l\\n"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
}

/** This process's descriptors of TCP connections whose local port is `port` (the server side). */
async function serverSockets(port: number): Promise<number> {
  const out = await new Deno.Command("cat", {
    args: ["/proc/net/tcp", "/proc/net/tcp6"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local_address is field 1 (ADDR:PORT), st field 3 (0A: listening), inode field 9.
    if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] !== "0A" && fields[9] !== "0") {
      inodes.add(fields[9]!);
    }
  }
  const open = await descriptors();
  return open.filter((target) => inodes.has(/^socket:\[(\d+)\]$/.exec(target)?.[1] ?? "")).length;
}

/**
 * This process's descriptors of files under `dir`, but the database's and the
 * temp directory's lock (both open for as long as the process runs).
 */
async function filesUnder(dir: string): Promise<number> {
  const real = await Deno.realPath(dir);
  return (await descriptors()).filter((target) =>
    target.startsWith(`${real}/`) && !target.startsWith(`${real}/offchat.db`) &&
    !/\/tmp\/p\d+-[0-9a-f]{8}\.lock$/.test(target)
  ).length;
}

/** The files in the data directory's `tmp/` (none when it does not exist yet). */
async function tempFiles(ctx: TestContext): Promise<string[]> {
  return await listFiles(`${ctx.dataDir}/tmp`).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  });
}

/** The app of `ctx` served on an ephemeral port, as main.ts serves it. */
function serveApp(ctx: TestContext) {
  return serve(
    { hostname: "127.0.0.1", port: 0, headerTimeoutMs: 20_000 },
    (request, info) => ctx.app.fetch(request, { remoteAddr: info.remoteAddr }),
  );
}

/** Everything the server sends until it closes the connection. */
async function readUntilClosed(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
}

/** Opens a connection and sends a request head and the start of its body. */
async function startRequest(
  port: number,
  head: { method: string; path: string; headers: Record<string, string> },
  start: Uint8Array,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    `${head.method} ${head.path} HTTP/1.1`,
    `host: 127.0.0.1:${port}`,
    ...Object.entries(head.headers).map(([name, value]) => `${name}: ${value}`),
    "",
    "",
  ];
  await conn.write(enc.encode(lines.join("\r\n")));
  await conn.write(start);
  return conn;
}

const BOUNDARY = "offchat-test-boundary";

/** A multipart upload of `total` file bytes whose first `start` bytes are sent. */
async function startMultipart(
  ctx: TestContext,
  port: number,
  options: { messageId: string; total: number; start: number },
): Promise<Deno.TcpConn> {
  const preamble = enc.encode(
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="v.mp4"\r\n` +
      "content-type: video/mp4\r\n\r\n",
  );
  const epilogue = `\r\n--${BOUNDARY}--\r\n`;
  const start = new Uint8Array(preamble.length + options.start);
  start.set(preamble);
  return await startRequest(port, {
    method: "POST",
    path: `/api/chat/videos/upload/?message_id=${options.messageId}`,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
      "content-length": String(preamble.length + options.total + epilogue.length),
    },
  }, start);
}

async function createTus(ctx: TestContext, messageId: string, size: number): Promise<string> {
  const created = await ctx.request("alice", "/api/chat/videos/uploads/", {
    method: "POST",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-length": String(size),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("v.mp4")}`,
    },
  });
  assert.equal(created.status, 201);
  return `/api/chat/videos/uploads/${created.headers.get("location")!.split("/").pop()}`;
}

async function startPatch(
  ctx: TestContext,
  port: number,
  options: { path: string; total: number; start: Uint8Array },
): Promise<Deno.TcpConn> {
  return await startRequest(port, {
    method: "PATCH",
    path: options.path,
    headers: {
      authorization: `Bearer ${await ctx.token("alice")}`,
      "tus-resumable": "1.0.0",
      "upload-offset": "0",
      "content-type": "application/offset+octet-stream",
      "content-length": String(options.total),
    },
  }, options.start);
}

async function tusOffset(ctx: TestContext, path: string): Promise<number> {
  const head = await ctx.request("alice", path, {
    method: "HEAD",
    headers: { "tus-resumable": "1.0.0" },
  });
  assert.equal(head.status, 200);
  return Number(head.headers.get("upload-offset"));
}

function assertTimedOut(answer: string): void {
  assert.match(answer, /^HTTP\/1\.1 408 /, "the answer is 408");
  assert.match(answer, /content-type: application\/problem\+json/i);
  assert.match(answer, /"code":"request_timeout"/);
}

async function assertNothingHeld(ctx: TestContext, port: number): Promise<void> {
  await until("the server's sockets are closed", async () => await serverSockets(port) === 0);
  await until(
    "no file of the data directory is open",
    async () => await filesUnder(ctx.dataDir) === 0,
  );
}

Deno.test("slow clients: a multipart upload silent for UPLOAD_IDLE_TIMEOUT_MS gets 408 and is cleaned up", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS), MIN_FREE_BYTES: "0" },
  });
  await using server = serveApp(ctx);
  const port = server.addr.port;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  using conn = await startMultipart(ctx, port, { messageId, total: 4_000_000, start: 200_000 });
  const started = performance.now();
  const answer = await readUntilClosed(conn);
  assertTimedOut(answer);
  assert.ok(performance.now() - started >= IDLE_MS * 0.9, "not before the timeout");
  assert.deepEqual(await tempFiles(ctx), [], "the partial file is removed");
  await assertNothingHeld(ctx, port);
});

Deno.test("slow clients: a tus PATCH silent for UPLOAD_IDLE_TIMEOUT_MS gets 408 and stays resumable", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS), MIN_FREE_BYTES: "0" },
  });
  await using server = serveApp(ctx);
  const port = server.addr.port;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("short.mp4"));
  const path = await createTus(ctx, messageId, video.length);
  const sent = Math.floor(video.length / 2);
  using conn = await startPatch(ctx, port, {
    path,
    total: video.length,
    start: video.subarray(0, sent),
  });
  assertTimedOut(await readUntilClosed(conn));
  await assertNothingHeld(ctx, port);

  // The bytes that arrived are kept: the client resumes where HEAD says.
  const offset = await tusOffset(ctx, path);
  assert.ok(offset > 0 && offset <= sent, `offset ${offset} of the ${sent} bytes sent`);
  const rest = await ctx.request("alice", path, {
    method: "PATCH",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    },
    body: video.subarray(offset),
  });
  assert.equal(rest.status, 200);
  assert.equal((await body(rest)).sha256, await sha256Hex(video));
});

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("slow clients: a client that disconnects mid-upload frees every descriptor", async () => {
  await using ctx = await createTestContext({ worker: false, env: { MIN_FREE_BYTES: "0" } });
  await using server = serveApp(ctx);
  const port = server.addr.port;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("short.mp4"));

  // Multipart: cut once the temporary file exists.
  const multipart = await startMultipart(ctx, port, {
    messageId,
    total: 4_000_000,
    start: 200_000,
  });
  await until(
    "the upload's temporary file is written",
    async () => (await tempFiles(ctx)).length > 0,
  );
  multipart.close();
  await until(
    "the temporary file is removed",
    async () => (await tempFiles(ctx)).length === 0,
  );
  await assertNothingHeld(ctx, port);

  // tus: cut mid-PATCH; what arrived stays resumable.
  const path = await createTus(ctx, messageId, video.length);
  const patch = await startPatch(ctx, port, {
    path,
    total: video.length,
    start: video.subarray(0, Math.floor(video.length / 2)),
  });
  await until("the PATCH's bytes are stored", async () => await tusOffset(ctx, path) > 0);
  patch.close();
  await assertNothingHeld(ctx, port);
  assert.ok(await tusOffset(ctx, path) > 0, "the upload can be resumed");
});

Deno.test("slow clients: a client that disconnects mid-stream frees every descriptor", async () => {
  await using ctx = await createTestContext({ worker: false, env: { MIN_FREE_BYTES: "0" } });
  await using server = serveApp(ctx);
  const port = server.addr.port;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  // 16 MiB: more than the socket buffers hold, so the server is mid-file when the client goes.
  const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("padded.mp4"));
  assert.equal(uploaded.status, 201);
  const { id } = await body<{ id: string }>(uploaded);

  for (const range of [null, "bytes=1-"]) {
    const conn = await startRequest(port, {
      method: "GET",
      path: `/api/chat/videos/${id}/stream`,
      headers: {
        authorization: `Bearer ${await ctx.token("alice")}`,
        ...(range ? { range } : {}),
      },
    }, new Uint8Array(0));
    const buffer = new Uint8Array(64 * 1024);
    const first = await conn.read(buffer);
    assert.ok(first !== null && first > 0, "the stream started");
    assert.match(new TextDecoder().decode(buffer.subarray(0, 12)), /^HTTP\/1\.1 20[06]/);
    conn.close();
    await until("the server's socket is closed", async () => await serverSockets(port) === 0);
    // The open-file cache keeps the file it served for a couple of seconds, on purpose:
    // at most that one handle, and none once the cache lets go of it.
    await until("only the cache's handle is left", async () => await filesUnder(ctx.dataDir) <= 1);
    ctx.deps.recentAccess.clear();
    assert.equal(await filesUnder(ctx.dataDir), 0, "no handle but the cache's");
  }
});
