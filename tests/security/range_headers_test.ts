/**
 * Point 4 of the threat model: Range and header abuse, and bodies whose
 * framing lies, over real HTTP where the framing matters.
 */
import assert from "node:assert/strict";
import { MAX_RANGES, parseRange } from "../../lib/range.ts";
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
  assert.ok(String(problem.detail).length < 200);
  const overlapping = await ctx.request("alice", url, { headers: { range: "bytes=0-10,5-15" } });
  assert.equal(overlapping.status, 200);
  assert.equal(Number(overlapping.headers.get("content-length")), Number(attachment.file_size));
  await overlapping.body?.cancel();
});

/** Sends raw bytes to the server and returns what it answers (until it closes or 5 s pass). */
async function raw(
  port: number,
  chunks: (Uint8Array | string)[],
  closeWrite = false,
): Promise<string> {
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
    if (closeWrite) await conn.closeWrite().catch(() => {});
    const buffer = new Uint8Array(64 * 1024);
    let answer = "";
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const n = await Promise.race([
        conn.read(buffer).catch(() => null),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000)),
      ]);
      if (n === null) break;
      answer += new TextDecoder().decode(buffer.subarray(0, n));
      if (/\r\n\r\n/.test(answer) && !/transfer-encoding: chunked/i.test(answer)) break;
    }
    return answer;
  } finally {
    conn.close();
  }
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

  // A 1 MiB header: refused by the HTTP layer, the server lives on.
  const big = await raw(port, [
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(1024 * 1024)}\r\n\r\n`,
  ]);
  assert.doesNotMatch(big, /^HTTP\/1\.1 200/, "a 1 MiB header was accepted");

  // Content-Length over the limit: 413 before the body is read.
  const declared = await raw(port, [head("Content-Length: 1000000000\r\n"), preamble]);
  assert.match(declared, /^HTTP\/1\.1 413/);

  // Content-Length smaller than the body: the part after it is not the upload.
  const shortBody = preamble + "x".repeat(5000) + `\r\n--${boundary}--\r\n`;
  const short = await raw(port, [head("Content-Length: 300\r\n"), shortBody]);
  assert.match(short, /^HTTP\/1\.1 4\d\d/);

  // Content-Length larger than the body, then the client stops sending.
  const long = await raw(
    port,
    [head("Content-Length: 60000\r\n"), preamble, "x".repeat(1000)],
    true,
  );
  assert.doesNotMatch(long, /^HTTP\/1\.1 2/);

  // Chunked and endless: cut off with 413 once past the limit.
  const chunk = `${(16 * 1024).toString(16)}\r\n${"x".repeat(16 * 1024)}\r\n`;
  const endless = await raw(port, [
    head("Transfer-Encoding: chunked\r\n"),
    `${preamble.length.toString(16)}\r\n${preamble}\r\n`,
    ...Array.from({ length: 64 }, () => chunk),
  ]);
  assert.match(endless, /^HTTP\/1\.1 413/);

  // Nothing of these was kept, and the server still answers.
  await new Promise((resolve) => setTimeout(resolve, 200));
  await assertNothingLeft(ctx, before);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
});
