/**
 * Point 4 of the threat model: Range and header abuse, and bodies whose
 * framing lies, over real HTTP where the framing matters.
 */
import assert from "node:assert/strict";
import { problemBody } from "../../lib/core/errors.ts";
import { MAX_RANGES, parseRange } from "../../lib/serving/range.ts";
import { fixture } from "../_fixtures.ts";
import { body, conversationWithMessage, createTestContext, uploadFile } from "../_helpers.ts";
import { assertNothingLeft, snapshot } from "./_world.ts";

Deno.test("range: abusive specs are bounded, whatever their shape", () => {
  const size = 1000;
  const many = (n: number) => `bytes=${Array.from({ length: n }, (_, i) => `${i}-${i}`).join(",")}`;
  const cases: [string, string][] = [
    [many(MAX_RANGES + 1), "unsatisfiable"],
    [many(500), "unsatisfiable"],
    [`bytes=${"0-1,".repeat(10_000)}0-1`, "unsatisfiable"],
    ["bytes=0-500,100-600", "full"], // overlapping: served whole
    ["bytes=500-600,0-100", "full"], // decreasing order: served whole
    ["bytes=600-500", "unsatisfiable"], // a decreasing range
    ["bytes=0-99999999999999999999", "unsatisfiable"], // over 15 digits
    ["bytes=0-999999999999999", "partial"], // clamped to the end
    ["bytes=99999999999999-", "unsatisfiable"],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=--5", "unsatisfiable"],
    ["bytes=-", "unsatisfiable"],
    ["bytes=1-2-3", "unsatisfiable"],
    ["bytes=0x10-0x20", "unsatisfiable"],
    ["bytes=١-٢", "unsatisfiable"], // non-ASCII digits
    ["bytes= 1e3-2e3", "unsatisfiable"],
    ["bytes=,,,", "unsatisfiable"],
    ["bytes=", "unsatisfiable"],
    ["bytes", "unsatisfiable"],
    ["items=0-5", "full"], // another unit is ignored
    ["bytes=0-0", "partial"],
    [`bytes=${"9".repeat(100_000)}-`, "unsatisfiable"],
  ];
  for (const [header, kind] of cases) {
    assert.equal(parseRange(header, size).kind, kind, header.slice(0, 60));
  }
});

Deno.test("range: over HTTP, abuse gets 416 problems that echo at most 100 characters", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const attachment = await body(
    await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")),
  );
  const url = `/api/chat/videos/${attachment.id}/download`;
  const huge = `bytes=${"0-1,".repeat(20_000)}<script>`;
  const response = await ctx.request("alice", url, { headers: { range: huge } });
  assert.equal(response.status, 416);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const problem = await body(response);
  assert.equal(problem.code, "range_not_satisfiable");
  // The same problem+json as every other error.
  assert.deepEqual(problem, problemBody("range_not_satisfiable", String(problem.detail)));
  assert.equal(response.headers.get("content-range"), `bytes */${attachment.file_size}`);
  assert.ok(String(problem.detail).length < 200);
  assert.ok(!String(problem.detail).includes("<script>"));
  const overlapping = await ctx.request("alice", url, { headers: { range: "bytes=0-10,5-15" } });
  assert.equal(overlapping.status, 200);
  assert.equal(Number(overlapping.headers.get("content-length")), Number(attachment.file_size));
  assert.deepEqual(
    new Uint8Array(await overlapping.arrayBuffer()),
    await Deno.readFile(await fixture("h264.mp4")),
  );
});

/** What the server answered on a raw connection. */
interface RawAnswer {
  /** The whole text received. */
  text: string;
  /** Status of the first response, or null when none came. */
  status: number | null;
  /** Headers of the first response, lower-cased names. */
  headers: Map<string, string>;
  /** Body of the first response (by its Content-Length). */
  body: string;
  /** The server closed the connection (end of stream or reset) within the deadline. */
  closed: boolean;
  /** Milliseconds from the last byte sent to the answer being complete. */
  ms: number;
}

const RAW_DEADLINE_MS = 5000;

/**
 * Sends raw bytes to the server and reads its answer until the first response
 * is complete (or, with `untilClosed`, until the server closes the connection),
 * or until RAW_DEADLINE_MS pass: a hang comes back as `status: null`.
 */
async function raw(
  port: number,
  chunks: (Uint8Array | string)[],
  options: { closeWrite?: boolean; untilClosed?: boolean } = {},
): Promise<RawAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  try {
    for (const chunk of chunks) {
      try {
        await conn.write(typeof chunk === "string" ? enc.encode(chunk) : chunk);
      } catch {
        break; // the server closed the connection: fine, read its answer
      }
    }
    if (options.closeWrite) await conn.closeWrite().catch(() => {});
    const started = Date.now();
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    let closed = false;
    const parse = () => {
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return null;
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = new Map(lines.map((line) => {
        const colon = line.indexOf(":");
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      }));
      const length = Number(headers.get("content-length") ?? 0);
      const body = text.slice(end + 4, end + 4 + length);
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1] ?? NaN);
      return { status, headers, body, complete: body.length >= length };
    };
    while (Date.now() - started < RAW_DEADLINE_MS) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buffer).catch(() => null),
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), RAW_DEADLINE_MS - (Date.now() - started));
        }),
      ]).finally(() => clearTimeout(timer));
      if (n === "timeout") break;
      if (n === null) {
        closed = true;
        break;
      }
      text += new TextDecoder().decode(buffer.subarray(0, n));
      if (!options.untilClosed && parse()?.complete) break;
    }
    const parsed = parse();
    return {
      text,
      status: parsed && Number.isFinite(parsed.status) ? parsed.status : null,
      headers: parsed?.headers ?? new Map(),
      body: parsed?.body ?? "",
      closed,
      ms: Date.now() - started,
    };
  } finally {
    conn.close();
  }
}

/** A problem+json answer with this status and code (and detail, when given). */
function assertRawProblem(
  answer: RawAnswer,
  label: string,
  status: number,
  code: string,
  detail?: RegExp,
): void {
  assert.equal(answer.status, status, `${label}: ${JSON.stringify(answer.text.slice(0, 300))}`);
  assert.equal(answer.headers.get("content-type"), "application/problem+json", label);
  const problem = JSON.parse(answer.body);
  assert.equal(problem.status, status, label);
  assert.equal(problem.code, code, label);
  if (detail) assert.match(problem.detail, detail, label);
}

/** /healthz answers 200 over a fresh connection. */
async function assertHealthy(port: number, label: string): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(RAW_DEADLINE_MS),
  });
  assert.equal(health.status, 200, `/healthz after ${label}`);
  await health.body?.cancel();
}

Deno.test("headers: oversized headers, lying Content-Length and endless chunked bodies", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_UPLOAD_BYTES: String(64 * 1024) },
  });
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => ctx.app.fetch(request, info),
  );
  const port = server.addr.port;
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const token = await ctx.token("alice");
  const before = await snapshot(ctx);
  const boundary = "----offchat-raw";
  const head = (extra: string) =>
    `POST /api/chat/videos/upload/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: multipart/form-data; boundary=${boundary}\r\n${extra}\r\n`;
  const preamble = `--${boundary}\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n` +
    `${messageId}\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n`;

  // A 1 MiB header: refused by the HTTP layer with an answer, then the connection is closed.
  const big = await raw(port, [
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(1024 * 1024)}\r\n\r\n`,
  ], { untilClosed: true });
  assert.ok(
    big.status === 400 || big.status === 431,
    `a 1 MiB header: ${JSON.stringify(big.text.slice(0, 200))}`,
  );
  assert.equal(big.headers.get("connection"), "close");
  assert.ok(big.closed, `the connection was closed (after ${big.ms} ms)`);
  await assertHealthy(port, "a 1 MiB header");

  // Content-Length over the limit: 413 before the body is read.
  const declared = await raw(port, [head("Content-Length: 1000000000\r\n"), preamble]);
  assertRawProblem(declared, "declared too large", 413, "file_too_large");
  assert.ok(declared.ms < 2000, `answered in ${declared.ms} ms, without waiting for the body`);

  // Content-Length smaller than the body: the part after it is not the upload.
  const shortBody = preamble + "x".repeat(5000) + `\r\n--${boundary}--\r\n`;
  const short = await raw(port, [head("Content-Length: 300\r\n"), shortBody]);
  assertRawProblem(short, "short Content-Length", 400, "invalid_request", /Malformed multipart/);
  await assertHealthy(port, "a short Content-Length");

  // Content-Length larger than the body, then the client stops sending: a 400 at once
  // (the end of the client's stream is seen), not a wait for bytes that never come.
  const long = await raw(
    port,
    [head("Content-Length: 60000\r\n"), preamble, "x".repeat(1000)],
    { closeWrite: true, untilClosed: true },
  );
  assertRawProblem(long, "long Content-Length", 400, "invalid_request", /interrupted/);
  assert.ok(long.closed, `the connection was closed (after ${long.ms} ms)`);
  await assertHealthy(port, "a long Content-Length");

  // Chunked and endless: cut off with 413 once past the limit.
  const chunk = `${(16 * 1024).toString(16)}\r\n${"x".repeat(16 * 1024)}\r\n`;
  const endless = await raw(port, [
    head("Transfer-Encoding: chunked\r\n"),
    `${preamble.length.toString(16)}\r\n${preamble}\r\n`,
    ...Array.from({ length: 64 }, () => chunk),
  ]);
  assertRawProblem(endless, "endless chunked", 413, "file_too_large");

  // Nothing of these was kept, and the server still answers.
  await new Promise((resolve) => setTimeout(resolve, 200));
  await assertNothingLeft(ctx, before);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
});
