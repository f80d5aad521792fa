import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { configureLogging } from "../../lib/observability/logging.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  LOOPBACK,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";

/** The log records written while `fn` runs, each the JSON line the service would print. */
async function captureLogs<T>(fn: (lines: Record<string, unknown>[]) => Promise<T>): Promise<T> {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  await configureLogging({
    write: (line) => {
      raw.push(line);
      lines.push(JSON.parse(line));
    },
  });
  try {
    const result = await fn(lines);
    // One JSON object per line, each ending the line.
    for (const line of raw) assert.match(line, /^\{.*\}\n$/);
    return result;
  } finally {
    await reset();
  }
}

/** The value of the sample `name{labels…}` (labels matched as a subset), or 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => got[key] === value)) return Number(match[3]);
  }
  return 0;
}

async function metricsText(ctx: TestContext): Promise<string> {
  const response = await ctx.app.request("/metrics", {}, LOOPBACK);
  assert.equal(response.status, 200);
  return await response.text();
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("observability: every answer has an X-Request-Id; a sane incoming one is kept", async () => {
  await using ctx = await createTestContext({ worker: false });
  const generated = await ctx.app.request("/healthz");
  assert.match(generated.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  const kept = await ctx.app.request("/healthz", { headers: { "x-request-id": "edge-42.a_b" } });
  assert.equal(kept.headers.get("x-request-id"), "edge-42.a_b");
  for (const insane of ["a b", "x".repeat(129), '"><script>', "é"]) {
    const replaced = await ctx.app.request("/healthz", { headers: { "x-request-id": insane } });
    assert.match(replaced.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/, insane);
  }
  // Errors and unknown routes too.
  const missing = await ctx.request("alice", "/api/chat/nothing-here");
  assert.equal(missing.status, 404);
  assert.ok(missing.headers.get("x-request-id"));
  const unauthorized = await ctx.request(null, "/api/chat/conversations");
  assert.equal(unauthorized.status, 401);
  assert.ok(unauthorized.headers.get("x-request-id"));
});

Deno.test("observability: one JSON log line per request and per job, with route patterns and no token", async () => {
  await using ctx = await createTestContext({ env: { HLS_MIN_DURATION: "0" } });
  await captureLogs(async (lines) => {
    const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
    const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4"));
    assert.equal(uploaded.status, 201);
    const id = (await body<{ id: string }>(uploaded)).id;
    const ready = await waitForProcessed(ctx, "alice", id);
    assert.equal(ready.status, "ready");

    // A media URL carries its token in the query; the HLS ladder's in the path.
    const streamUrl = localPath(ready.stream_url as string);
    const hlsUrl = localPath(ready.hls_url as string);
    const stream = await ctx.app.request(streamUrl, { headers: { range: "bytes=0-99" } });
    assert.equal(stream.status, 206);
    await stream.body?.cancel();
    const playlist = await ctx.app.request(hlsUrl);
    assert.equal(playlist.status, 200);
    await playlist.body?.cancel();

    const http = lines.filter((line) => line.logger === "offchat.http");
    const of = (response: Response) =>
      http.filter((line) => line.requestId === response.headers.get("x-request-id"));
    const [streamLine, ...moreStream] = of(stream);
    assert.deepEqual(moreStream, []);
    assert.equal(streamLine?.route, "/api/chat/videos/:id/stream");
    assert.equal(streamLine?.message, "GET /api/chat/videos/:id/stream 206");
    assert.equal(streamLine?.method, "GET");
    assert.equal(streamLine?.status, 206);
    assert.equal(streamLine?.bytes, 100);
    assert.equal(streamLine?.userId, "alice");
    assert.equal(streamLine?.level, "INFO");
    assert.equal(typeof streamLine?.ms, "number");
    const [hlsLine, ...moreHls] = of(playlist);
    assert.deepEqual(moreHls, []);
    assert.equal(hlsLine?.route, "/api/chat/videos/:id/hls/:token/:file");
    const [uploadLine] = of(uploaded);
    assert.equal(uploadLine?.route, "/api/chat/videos/upload");
    assert.equal(uploadLine?.status, 201);

    // No token anywhere: not the media tokens, not the bearer tokens.
    const tokens = [
      new URL(ready.stream_url as string).searchParams.get("token")!,
      hlsUrl.split("/hls/")[1]!.split("/")[0]!,
      await ctx.token("alice"),
    ];
    const everything = JSON.stringify(lines);
    for (const token of tokens) assert.ok(!everything.includes(token.slice(-24)), token);
    assert.ok(!everything.includes("token="));

    // One line per job run: kind, attachment, outcome, duration, how ffmpeg ended.
    const jobs = lines.filter((line) => line.logger === "offchat.job" && line.attachmentId === id);
    assert.ok(jobs.length >= 3, JSON.stringify(jobs));
    const thumbnails = jobs.filter((line) => line.kind === "thumbnail");
    assert.equal(thumbnails.length, 1);
    const thumbnail = thumbnails[0]!;
    assert.equal(thumbnail.outcome, "done");
    assert.equal(thumbnail.message, "job thumbnail done");
    assert.equal(typeof thumbnail.ms, "number");
    assert.deepEqual(thumbnail.tool, { name: "ffmpeg", code: 0, signal: null, timedOut: false });
    assert.equal(thumbnail.cause, undefined);
  });
});

Deno.test("observability: metrics count requests by route and status, upload bytes, jobs", async () => {
  await using ctx = await createTestContext();
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const before = await metricsText(ctx);
  const file = await fixture("h264.mp4");
  const size = (await Deno.stat(file)).size;

  const uploaded = await uploadFile(ctx, "alice", messageId, file);
  assert.equal(uploaded.status, 201);
  const id = (await body<{ id: string }>(uploaded)).id;
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  await ctx.request("alice", `/api/chat/attachments/${id}`).then((r) => r.body?.cancel());
  await ctx.request("bob", `/api/chat/attachments/${id}`).then((r) => r.body?.cancel());

  // A resumable upload: created, then every byte in one PATCH.
  const bytes = await Deno.readFile(file);
  const b64 = (text: string) => btoa(text);
  const created = await ctx.request("alice", "/api/chat/videos/uploads/", {
    method: "POST",
    headers: {
      "tus-resumable": "1.0.0",
      "upload-length": String(bytes.length),
      "upload-metadata": `message_id ${b64(messageId)},filename ${b64("clip.mp4")}`,
    },
  });
  assert.equal(created.status, 201);
  const location = created.headers.get("location")!;
  const patched = await ctx.request(
    "alice",
    new URL(location, "http://offchat.test/api/chat/videos/uploads/").pathname,
    {
      method: "PATCH",
      headers: {
        "tus-resumable": "1.0.0",
        "upload-offset": "0",
        "content-type": "application/offset+octet-stream",
      },
      body: bytes,
    },
  );
  assert.equal(patched.status, 200);
  await patched.body?.cancel();

  const after = await metricsText(ctx);
  const requests = (route: string, status: string, text: string) =>
    sample(text, "offchat_http_requests_total", { method: "GET", route, status });
  // Alice's read, and waitForProcessed's polls before it.
  assert.ok(requests("/api/chat/attachments/:id", "200", after) >= 2);
  assert.equal(requests("/api/chat/attachments/:id", "200", before), 0);
  assert.equal(requests("/api/chat/attachments/:id", "404", after), 1); // bob is not in it
  assert.equal(
    sample(after, "offchat_http_request_duration_seconds_count", {
      route: "/api/chat/attachments/:id",
      status: "404",
    }),
    1,
  );
  assert.equal(
    sample(after, "offchat_http_requests_total", {
      method: "POST",
      route: "/api/chat/videos/upload",
      status: "201",
    }),
    1,
  );
  // The multipart body is the file plus the form's boundaries and headers.
  const multipart = sample(after, "offchat_upload_bytes_total", { protocol: "multipart" }) -
    sample(before, "offchat_upload_bytes_total", { protocol: "multipart" });
  assert.ok(multipart > size && multipart < size + 2048, `${multipart} for ${size}`);
  assert.equal(sample(after, "offchat_upload_bytes_total", { protocol: "tus" }), bytes.length);

  // The jobs ran in this app's worker, and the queue comes from the database.
  assert.equal(
    sample(after, "offchat_job_duration_seconds_count", { kind: "thumbnail", outcome: "done" }),
    1,
  );
  assert.ok(sample(after, "offchat_jobs", { kind: "thumbnail", status: "done" }) >= 1);
  assert.ok(sample(after, "offchat_attachments", { status: "ready" }) >= 1);
  assert.ok(sample(after, "process_resident_memory_bytes") > 0);

  // Another app in the same process has a registry of its own.
  await using other = await createTestContext({ worker: false });
  assert.equal(sample(await metricsText(other), "offchat_upload_bytes_total"), 0);
});

Deno.test("observability: a failing ffmpeg is counted by cause and logged with its exit code", async () => {
  // `false` stands in for ffmpeg: it exits 1 at once (uploads still probe with the real ffprobe).
  await using ctx = await createTestContext({ env: { FFMPEG_PATH: "false" } });
  await captureLogs(async (lines) => {
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4"));
    assert.equal(uploaded.status, 201);
    const id = (await body<{ id: string }>(uploaded)).id;
    await waitFor(
      "a failed thumbnail run",
      async () =>
        sample(await metricsText(ctx), "offchat_ffmpeg_failures_total", {
          kind: "thumbnail",
          cause: "exit",
        }) >= 1,
    );
    // The run the metric counted (an earlier attempt on a loaded machine may have failed
    // before ffmpeg started, and its line rightly names no tool).
    const failed = lines.find((line) =>
      line.logger === "offchat.job" && line.kind === "thumbnail" && line.attachmentId === id &&
      line.cause === "exit"
    );
    assert.ok(failed, "a job line");
    assert.notEqual(failed.outcome, "done");
    assert.equal(failed.level, failed.outcome === "retry" ? "WARN" : "ERROR");
    assert.deepEqual(failed.tool, { name: "ffmpeg", code: 1, signal: null, timedOut: false });
    assert.equal(failed.cause, "exit");
  });
});

Deno.test("observability: /metrics takes METRICS_TOKEN as a Bearer token when it is set", async () => {
  const token = "metrics-token-0123456789";
  await using ctx = await createTestContext({ worker: false, env: { METRICS_TOKEN: token } });
  for (
    const [headers, why] of [
      [{}, "no token"],
      [{ authorization: "Bearer metrics-token-012345678X" }, "a wrong token"],
      [{ authorization: `Bearer ${await ctx.token("alice", { admin: true })}` }, "a user token"],
    ] as const
  ) {
    // Even from this host.
    const refused = await ctx.app.request("/metrics", { headers }, LOOPBACK);
    assert.equal(refused.status, 401, why);
    assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="metrics"');
    assert.equal((await body(refused)).code, "unauthorized");
  }
  const scraped = await ctx.app.request("/metrics", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(scraped.status, 200);
  assert.match(scraped.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  assert.match(await scraped.text(), /# TYPE offchat_http_requests_total counter/);
});

Deno.test("observability: without METRICS_TOKEN, /metrics answers this host only, not through a proxy", async () => {
  await using ctx = await createTestContext({ worker: false });
  const remote = await ctx.app.request("/metrics", {}, {
    remoteAddr: { hostname: "203.0.113.9" },
  });
  assert.equal(remote.status, 403);
  await remote.body?.cancel();
  const proxied = await ctx.app.request("/metrics", {
    headers: { "x-forwarded-for": "203.0.113.9" },
  }, LOOPBACK);
  assert.equal(proxied.status, 403);
  await proxied.body?.cancel();
  const ipv6 = await ctx.app.request("/metrics", {}, { remoteAddr: { hostname: "::1" } });
  assert.equal(ipv6.status, 200);
  await ipv6.body?.cancel();
});

Deno.test("observability: the SSE gauge goes up while an event stream is open and back down", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const uploaded = await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4"));
  const id = (await body<{ id: string }>(uploaded)).id;
  const gauge = async () => sample(await metricsText(ctx), "offchat_sse_connections");
  assert.equal(await gauge(), 0);
  // No worker: its jobs wait in the queue, which /metrics reads from the database.
  const queue = await metricsText(ctx);
  assert.ok(sample(queue, "offchat_jobs", { kind: "thumbnail", status: "queued" }) >= 1);
  assert.match(queue, /^offchat_jobs_queued_age_seconds\{kind="thumbnail"\} \d/m);
  // No worker: the attachment stays processing, so the stream stays open.
  const events = await ctx.request("alice", `/api/chat/attachments/${id}/events`);
  assert.equal(events.status, 200);
  const reader = events.body!.getReader();
  assert.match(new TextDecoder().decode((await reader.read()).value), /event: progress/);
  assert.equal(await gauge(), 1);
  await reader.cancel();
  await waitFor("the gauge back at 0", async () => (await gauge()) === 0);
});
