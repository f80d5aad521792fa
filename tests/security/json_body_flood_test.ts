/**
 * Point 4 of the threat model, for the JSON routes: a token holder (or, for
 * the dev sign-in, anyone) sends a body of many megabytes to a route that
 * takes a small JSON document. It must be refused with 413 before it is read:
 * by its `Content-Length` after only the request head, and a chunked body once
 * it passes the limit, and the connection closed, over real HTTP where the
 * framing matters.
 */
import assert from "node:assert/strict";
import { MAX_JSON_BODY_BYTES } from "../../routes/_schemas.ts";
import { serve } from "../../lib/serving/server.ts";
import { body, conversationWithMessage, createTestContext } from "../_helpers.ts";
import { assertProblem } from "./_world.ts";

const FLOOD_BYTES = 10 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** A 64 KiB chunk of transfer coding: its size line, `start` padded with "A"s, CRLF. */
function floodChunk(start: string): Uint8Array {
  const data = new Uint8Array(CHUNK_BYTES).fill("A".charCodeAt(0));
  data.set(new TextEncoder().encode(start));
  const sizeLine = new TextEncoder().encode(`${data.length.toString(16)}\r\n`);
  const framed = new Uint8Array(sizeLine.length + data.length + 2);
  framed.set(sizeLine);
  framed.set(data, sizeLine.length);
  framed.set([13, 10], sizeLine.length + data.length);
  return framed;
}
// Built once, before any memory is measured.
const FIRST_CHUNK = floodChunk('{"body":"');
const NEXT_CHUNK = floodChunk("");
/** How long a raw exchange may take before it counts as a hang (a failure, not a measurement). */
const HANG_MS = 10_000;

/** What came back on a raw connection. */
interface RawAnswer {
  status: number | null;
  headers: Map<string, string>;
  body: string;
  /** The server closed the connection after its answer (rather than waiting for more bytes). */
  closed: boolean;
}

/** This isolate's heap and buffers: what a body read into memory would grow (see below). */
function isolateBytes(): number {
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * Reads what the server sends until it closes (or resets) the connection, or
 * HANG_MS pass, and parses the one HTTP/1.1 answer in it.
 */
async function readAnswer(conn: Deno.Conn): Promise<RawAnswer> {
  const deadline = Date.now() + HANG_MS;
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  let closed = false;
  while (!closed) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buffer).catch(() => null), // a reset is a close too
      new Promise<"hang">((resolve) => {
        timer = setTimeout(() => resolve("hang"), Math.max(0, deadline - Date.now()));
      }),
    ]).finally(() => clearTimeout(timer));
    if (n === "hang") break;
    if (n === null) closed = true;
    else text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return { status: null, headers: new Map(), body: "", closed };
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Map(lines.map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  }));
  return {
    status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1] ?? NaN),
    headers,
    body: text.slice(end + 4, end + 4 + Number(headers.get("content-length") ?? 0)),
    closed,
  };
}

/**
 * Sends a request head and, with `chunked`, a chunked body of `FLOOD_BYTES`
 * in 64 KiB chunks from one reused buffer (so this test never holds the
 * flood), and reads the answer until the server closes the connection (or
 * HANG_MS pass); `sample` runs after every chunk sent. The sending goes on
 * after the answer, as a flooding client's would, until the server cuts it off.
 */
async function flood(
  port: number,
  head: string,
  options: { chunked?: boolean; sample?: () => void } = {},
): Promise<RawAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new TextEncoder().encode(head));
    const answer = readAnswer(conn);
    if (options.chunked) {
      for (let sent = 0; sent < FLOOD_BYTES; sent += CHUNK_BYTES) {
        const wrote = await Promise.race([
          writeAll(conn, sent === 0 ? FIRST_CHUNK : NEXT_CHUNK).then(() => true, () => false),
          answer.then(() => false),
        ]);
        if (!wrote) break;
        options.sample?.();
      }
    }
    return await answer;
  } finally {
    conn.close();
  }
}

/** The request with its body passed through a counter that raises `read.max`. */
function countBody(request: Request, read: { max: number }): Request {
  if (request.body === null) return request;
  let count = 0;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      count += chunk.byteLength;
      read.max = Math.max(read.max, count);
      controller.enqueue(chunk);
    },
  });
  return new Request(request, { body: request.body.pipeThrough(counter) });
}

function assertTooLarge(answer: RawAnswer, label: string): void {
  assert.equal(answer.status, 413, `${label}: ${JSON.stringify(answer)}`);
  assert.equal(answer.headers.get("connection"), "close", label);
  assert.equal(answer.headers.get("content-type"), "application/problem+json", label);
  const problem = JSON.parse(answer.body);
  assert.equal(problem.code, "payload_too_large", label);
  assert.equal(problem.status, 413, label);
}

Deno.test("json body flood: 10 MB to a JSON route is refused with 413 without being read", async () => {
  await using ctx = await createTestContext({ worker: false });
  // The most body bytes any one request had read from it: the server's own reading is not
  // observable from outside, so each body is passed on through a counter.
  const read = { max: 0 };
  // The server main.ts runs; its header timeout is far longer than this test waits for a close.
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, headerTimeoutMs: 60_000 },
    (request, info) => ctx.app.fetch(countBody(request, read), info),
  );
  const port = server.addr.port;
  const { conversationId } = await conversationWithMessage(ctx, "alice");
  const path = `/api/chat/conversations/${conversationId}/messages`;
  const head = async (framing: string) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await ctx.token("alice")}\r\n` +
    `Content-Type: application/json\r\n${framing}\r\n`;

  // Declared: the 413 comes after the request head alone, and the connection is closed rather
  // than kept waiting for the body.
  const declared = await flood(port, await head(`Content-Length: ${FLOOD_BYTES}\r\n`));
  assertTooLarge(declared, "declared 10 MB");
  assert.ok(declared.closed, "declared 10 MB: the connection is closed");

  // Chunked: cut off once past the limit. Memory is measured as this isolate's heap and buffers,
  // where a body read by the server (which runs in this isolate) would be: the process's RSS is
  // shared with the other test modules that `deno test --parallel` runs at the same time.
  const before = isolateBytes();
  let peak = before;
  const chunked = await flood(port, await head("Transfer-Encoding: chunked\r\n"), {
    chunked: true,
    sample: () => peak = Math.max(peak, isolateBytes()),
  });
  peak = Math.max(peak, isolateBytes());
  assertTooLarge(chunked, "chunked 10 MB");
  assert.ok(chunked.closed, "chunked 10 MB: the connection is closed");
  assert.ok(read.max <= MAX_JSON_BODY_BYTES + CHUNK_BYTES, `the app read ${read.max} bytes`);
  const grown = peak - before;
  assert.ok(grown < 8 * 1024 * 1024, `memory grew by ${grown} bytes`);

  // Bodies of a normal size still work, chunked or not, up to the largest valid message:
  // 10,000 non-ASCII characters, each written as a 6-byte \u escape (as clients that
  // escape everything outside ASCII send them; control characters are refused anyway).
  const largest = "\u20ac".repeat(10_000);
  const escaped = `{"body":"${"\\u20ac".repeat(10_000)}"}`;
  assert.ok(escaped.length > 60_000);
  const send = async (payload: BodyInit) =>
    await fetch(`http://127.0.0.1:${port}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await ctx.token("alice")}`,
        "content-type": "application/json",
      },
      body: payload,
    });
  const plain = await send(escaped);
  assert.equal(plain.status, 201, "a body with Content-Length under the limit");
  assert.equal((await body(plain)).body, largest);
  const streamed = await send(ReadableStream.from([new TextEncoder().encode(escaped)]));
  assert.equal(streamed.status, 201, "a chunked body under the limit");
  assert.equal((await body(streamed)).body, largest);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
});

Deno.test("json body flood: every JSON route of the API refuses a body over the limit", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { DEV_LOGIN: "1", JWT_SECRET: "", HOST: "127.0.0.1" },
  });
  const { conversationId } = await conversationWithMessage(ctx, "alice");
  const doc = await body<{
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>>;
  }>(await ctx.app.request("/openapi.json"));
  const jsonRoutes = Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.entries(operations)
      .filter(([, operation]) => operation.requestBody?.content["application/json"])
      .map(([method, _]) => [method.toUpperCase(), path] as const)
  );
  assert.ok(jsonRoutes.length >= 4, `JSON routes: ${JSON.stringify(jsonRoutes)}`);
  // Valid JSON, without Content-Length (as app.request sends it): the counting path.
  const over = JSON.stringify({ body: "A".repeat(MAX_JSON_BODY_BYTES) });
  for (const [method, template] of jsonRoutes) {
    const path = template.replace("{id}", conversationId);
    const response = await ctx.request("alice", path, {
      method,
      headers: { "content-type": "application/json" },
      body: over,
    });
    const problem = await assertProblem(response, `${method} ${path}`, [413]);
    assert.equal(problem.code, "payload_too_large", `${method} ${path}`);
  }

  // Someone outside the conversation is refused before the body is parsed: malformed JSON
  // gets the same 404 as a missing conversation, not a 400 about the JSON.
  for (const route of ["messages", "participants"]) {
    const response = await ctx.request(
      "mallory",
      `/api/chat/conversations/${conversationId}/${route}`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{not json",
      },
    );
    const problem = await assertProblem(response, `outsider ${route}`, [404]);
    assert.equal(problem.code, "not_found");
  }
});
