/**
 * Slow and broken clients (issue 13, point 5), against the real server as a
 * child process (tests/faults/_server.ts), with raw TCP clients. An upload
 * body that sends nothing for UPLOAD_IDLE_TIMEOUT_MS (500 ms here) is cut
 * with 408 and its connection closed: a multipart upload's temporary file is
 * removed, a tus upload stays resumable at its offset. A client that
 * disconnects mid-upload or mid-stream leaves nothing behind. After each
 * fault the checks of every fault test hold (`assertConsistent`): the
 * server's descriptors, counted in /proc/<pid>/fd, are back to their number
 * at rest, fsck finds nothing, no ffmpeg is left, and what was accepted is
 * ready with its bytes.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import { type Accepted, assertConsistent, partialUploads, started, upload } from "./_faults.ts";
import { messageOf, type ServerProcess, sha256Hex, waitFor } from "./_server.ts";

const IDLE_MS = 500;
const TUS_PATH = "/api/chat/videos/uploads/";
const enc = new TextEncoder();

/** The server at rest, with a 500 ms idle limit on upload bodies, and its baseline of open files. */
async function slowClientServer(dataDir: string) {
  return await started(dataDir, {
    UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS),
    MIN_FREE_BYTES: "0",
  });
}

/** A data directory and the server on it; disposing both kills the server and removes the directory. */
async function world() {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-slow-" });
  const rest = await slowClientServer(dataDir);
  return {
    ...rest,
    dataDir,
    async [Symbol.asyncDispose]() {
      await rest.server[Symbol.asyncDispose]();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
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
  server: ServerProcess,
  head: { method: string; path: string; headers: Record<string, string> },
  start: Uint8Array,
): Promise<Deno.TcpConn> {
  const { hostname, port } = new URL(server.url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const lines = [
    `${head.method} ${head.path} HTTP/1.1`,
    `host: ${hostname}:${port}`,
    ...Object.entries(head.headers).map(([name, value]) => `${name}: ${value}`),
    "",
    "",
  ];
  await conn.write(enc.encode(lines.join("\r\n")));
  await conn.write(start);
  return conn;
}

const BOUNDARY = "offchat-test-boundary";

/** A multipart upload of alice's of `total` file bytes, of which the first `start` are sent. */
async function startMultipart(
  server: ServerProcess,
  options: { total: number; start: number },
): Promise<Deno.TcpConn> {
  const messageId = await messageOf(server, "alice");
  const preamble = enc.encode(
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="v.mp4"\r\n` +
      "content-type: video/mp4\r\n\r\n",
  );
  const epilogue = `\r\n--${BOUNDARY}--\r\n`;
  const start = new Uint8Array(preamble.length + options.start);
  start.set(preamble);
  return await startRequest(server, {
    method: "POST",
    path: `/api/chat/videos/upload/?message_id=${messageId}`,
    headers: {
      ...(await server.auth("alice")),
      "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
      "content-length": String(preamble.length + options.total + epilogue.length),
    },
  }, start);
}

/** Creates a tus upload of alice's of `size` bytes; its path. */
async function createTus(server: ServerProcess, size: number): Promise<string> {
  const messageId = await messageOf(server, "alice");
  const created = await fetch(`${server.url}${TUS_PATH}`, {
    method: "POST",
    headers: {
      ...(await server.auth("alice")),
      "tus-resumable": "1.0.0",
      "upload-length": String(size),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("v.mp4")}`,
    },
  });
  assert.equal(created.status, 201);
  return new URL(created.headers.get("location")!, server.url).pathname;
}

/** A PATCH of `total` bytes at offset 0 of which `start` are sent. */
async function startPatch(
  server: ServerProcess,
  options: { path: string; total: number; start: Uint8Array },
): Promise<Deno.TcpConn> {
  return await startRequest(server, {
    method: "PATCH",
    path: options.path,
    headers: {
      ...(await server.auth("alice")),
      "tus-resumable": "1.0.0",
      "upload-offset": "0",
      "content-type": "application/offset+octet-stream",
      "content-length": String(options.total),
    },
  }, options.start);
}

async function tusOffset(server: ServerProcess, path: string): Promise<number> {
  const head = await fetch(`${server.url}${path}`, {
    method: "HEAD",
    headers: { ...(await server.auth("alice")), "tus-resumable": "1.0.0" },
  });
  assert.equal(head.status, 200);
  return Number(head.headers.get("upload-offset"));
}

/** Sends the rest of `video` from where the upload at `path` stands; what the test expects of it. */
async function resume(server: ServerProcess, path: string, video: Uint8Array): Promise<Accepted> {
  const offset = await tusOffset(server, path);
  const rest = await fetch(`${server.url}${path}`, {
    method: "PATCH",
    headers: {
      ...(await server.auth("alice")),
      "tus-resumable": "1.0.0",
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    },
    body: video.subarray(offset) as Uint8Array<ArrayBuffer>,
  });
  const json = await rest.json();
  assert.equal(rest.status, 200, JSON.stringify(json));
  const sha256 = await sha256Hex(video);
  assert.equal(json.sha256, sha256);
  return { id: String(json.id), user: "alice", sha256 };
}

function assertTimedOut(answer: string): void {
  assert.match(answer, /^HTTP\/1\.1 408 /, "the answer is 408");
  assert.match(answer, /content-type: application\/problem\+json/i);
  assert.match(answer, /"code":"request_timeout"/);
}

Deno.test("slow clients: a multipart upload silent for UPLOAD_IDLE_TIMEOUT_MS gets 408 and is cleaned up", async () => {
  await using at = await world();
  using conn = await startMultipart(at.server, { total: 4_000_000, start: 200_000 });
  const started = performance.now();
  assertTimedOut(await readUntilClosed(conn));
  assert.ok(performance.now() - started >= IDLE_MS * 0.9, "not before the timeout");
  assert.deepEqual(await partialUploads(at.dataDir), [], "the partial file is removed");
  await assertConsistent(at.server, { ...at, accepted: [] });
});

Deno.test("slow clients: a tus PATCH silent for UPLOAD_IDLE_TIMEOUT_MS gets 408 and stays resumable", async () => {
  await using at = await world();
  const video = await Deno.readFile(await fixture("short.mp4"));
  const path = await createTus(at.server, video.length);
  const sent = Math.floor(video.length / 2);
  using conn = await startPatch(at.server, {
    path,
    total: video.length,
    start: video.subarray(0, sent),
  });
  assertTimedOut(await readUntilClosed(conn));

  // The bytes that arrived are kept: the client resumes where HEAD says.
  const offset = await tusOffset(at.server, path);
  assert.ok(offset > 0 && offset <= sent, `offset ${offset} of the ${sent} bytes sent`);
  const accepted = [await resume(at.server, path, video)];
  await assertConsistent(at.server, { ...at, accepted });
});

Deno.test("slow clients: a client that disconnects mid-upload leaves nothing behind", async () => {
  await using at = await world();
  const video = await Deno.readFile(await fixture("short.mp4"));

  // Multipart: cut once the temporary file exists.
  const multipart = await startMultipart(at.server, { total: 4_000_000, start: 200_000 });
  await waitFor(
    "the upload's temporary file to be made",
    async () => (await partialUploads(at.dataDir)).length > 0,
  );
  multipart.close();
  await waitFor(
    "the temporary file to be removed",
    async () => (await partialUploads(at.dataDir)).length === 0,
  );

  // tus: cut mid-PATCH; what arrived stays resumable, and the upload completes later.
  const path = await createTus(at.server, video.length);
  const patch = await startPatch(at.server, {
    path,
    total: video.length,
    start: video.subarray(0, Math.floor(video.length / 2)),
  });
  await waitFor("the PATCH's bytes to be stored", async () => await tusOffset(at.server, path) > 0);
  patch.close();
  const accepted = [await resume(at.server, path, video)];
  await assertConsistent(at.server, { ...at, accepted });
});

Deno.test("slow clients: a client that disconnects mid-stream leaves nothing behind", async () => {
  await using at = await world();
  // 16 MiB: more than the socket buffers hold, so the server is mid-file when the client goes.
  const accepted = [
    await upload(at.server, "alice", await Deno.readFile(await fixture("padded.mp4"))),
  ];
  const { id } = accepted[0]!;

  for (const range of [null, "bytes=1-"]) {
    const conn = await startRequest(at.server, {
      method: "GET",
      path: `/api/chat/videos/${id}/stream`,
      headers: { ...(await at.server.auth("alice")), ...(range ? { range } : {}) },
    }, new Uint8Array(0));
    const buffer = new Uint8Array(64 * 1024);
    const first = await conn.read(buffer);
    assert.ok(first !== null && first > 0, "the stream started");
    assert.match(new TextDecoder().decode(buffer.subarray(0, 12)), /^HTTP\/1\.1 20[06]/);
    conn.close();
  }
  // The open-file cache lets go of the file it served within seconds: nothing is held after.
  await assertConsistent(at.server, { ...at, accepted });
});
